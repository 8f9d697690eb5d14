#!/usr/bin/env bash
# Health checking under load: wrk with a new connection per request through the VIP to
# three nginx reals (HTTP check: interval 1 s, timeout 0.5 s, fall 2, rise 2). nginx stops
# on real2: no client SYN reaches it later than fall × interval + timeout + 1 s after the
# stop, and no request fails after that point. nginx starts again: real2 takes client
# connections within rise × interval + 1 s. Each transition is logged naming service and
# real, runs the notify command, and shows in -L (weight 0 while down) and --lbd-health.
. "$(dirname "$0")/common.sh"
dr_lab_http 3
# wrk closes each connection itself (TIME_WAIT on the client): without these the client
# runs out of source ports within seconds at this rate, whatever the director does.
in_ns "$LAB_CLIENT" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
INTERVAL=1; TIMEOUT=0.5; FALL=2; RISE=2
DOWN_BOUND=$(awk -v f=$FALL -v i=$INTERVAL -v t=$TIMEOUT 'BEGIN {print f * i + t + 1}')
UP_BOUND=$(awk -v r=$RISE -v i=$INTERVAL 'BEGIN {print r * i + 1}')
NOTIFY=$LAB_DIR/notify.sh
cat > "$NOTIFY" <<EOF
#!/bin/sh
echo "\$*" >> $LAB_DIR/notify.log
EOF
chmod 755 "$NOTIFY"
: > "$LAB_DIR/notify.log"; chmod 666 "$LAB_DIR/notify.log"  # notify runs as nobody (exec-user)
# wrk's closed connections stay in FIN_WAIT (120 s by default). Once its ~32k source ports
# (connect() takes even ones) have all been used, every SYN matches one of those entries
# and follows it to its old real, as IPVS's conn_reuse_mode=1 does: a real coming back
# would get no new client at this rate. A short FIN_WAIT keeps new SYNs scheduled.
lbadm_ --set 0 2 0
lbadm_ -A -t "$LAB_VIP:80" -s rr \
  --health "check=http,path=/,interval=$INTERVAL,timeout=$TIMEOUT,fall=$FALL,rise=$RISE,notify=$NOTIFY"
for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")"; done
REAL2=$(lab_real_ns 2)
R2=$(lab_real_ip 2)
sleep 1.5
assert_eq "real1 2 real2 2 real3 2 " "$(count_answers 6 | tr '\n' ' ')" "all three reals up and answering"

# Client SYNs at real2 (not the director's checks), with absolute timestamps.
start_tcpdump "$REAL2" eth0 "$LAB_DIR/syn2.pcap" \
  "tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0 and not src host $LAB_DIRECTOR_IP"
SYNDUMP=$TCPDUMP_PID
wrk_run() {  # wrk_run SECONDS OUTFILE: new connection per request, bounded
  in_ns "$LAB_CLIENT" timeout $(( $1 + 10 )) wrk -t1 -c4 -d"$1"s -H 'Connection: close' \
    "http://$LAB_VIP/" > "$2" 2>&1 || true
}
wrk_run 2 "$LAB_DIR/wrk_before.txt"

T_STOP=$(date +%s.%N)
kill "$(cat "$LAB_DIR/nginx2/nginx.pid")"
# Load through the detection window (wrk gives up at once if its first connection is the
# one refused, so the window is timed by the clock, not by wrk).
wrk_run "$(awk -v b="$DOWN_BOUND" 'BEGIN {print int(b + 0.999)}')" "$LAB_DIR/wrk_detect.txt" &
DETECT_PID=$!
sleep "$(awk -v s="$T_STOP" -v b="$DOWN_BOUND" -v n="$(date +%s.%N)" 'BEGIN {w = s + b - n; print (w > 0 ? w : 0)}')"
wait "$DETECT_PID"
wrk_run 4 "$LAB_DIR/wrk_down.txt"
grep -q "Socket errors" "$LAB_DIR/wrk_down.txt" && fail "requests failed after detection: $(cat "$LAB_DIR/wrk_down.txt")"
grep -q "Non-2xx" "$LAB_DIR/wrk_down.txt" && fail "non-2xx answers after detection: $(cat "$LAB_DIR/wrk_down.txt")"
reqs=$(awk '/requests in/ {print $1}' "$LAB_DIR/wrk_down.txt")
[ "${reqs:-0}" -gt 100 ] || fail "wrk made too few requests to judge: $(cat "$LAB_DIR/wrk_down.txt")"
echo "ok: $reqs requests in the 4 s after detection, none failed"
listing=$(lbadm_ -L -n)
grep -q -- "-> $R2:80 *Route *0 " <<< "$listing" || fail "-L -n should show real2 with weight 0: $listing"
echo "ok: -L -n shows the down real with weight 0 (ipvsadm's format)"
lbadm_ -S -n | grep -q -- "-r $R2:80 -g -w 1$" || fail "-S must keep the configured weight: $(lbadm_ -S -n)"
echo "ok: -S keeps the configured weight"
lbadm_ --lbd-health | grep -E -- "-> $R2:80 +DOWN .*connect: Connection refused" >/dev/null ||
  fail "--lbd-health: $(lbadm_ --lbd-health)"
echo "ok: --lbd-health shows real2 DOWN with the connect error"

T_START=$(date +%s.%N)
lab_bg "$REAL2" nginx -c "$LAB_DIR/nginx2/nginx.conf" -e "$LAB_DIR/nginx2/error.log"
wrk_run "$(awk -v b="$UP_BOUND" 'BEGIN {print int(b + 0.999) + 1}')" "$LAB_DIR/wrk_back.txt"
stop_tcpdump "$SYNDUMP"

syn_times=$(tcpdump -r "$LAB_DIR/syn2.pcap" -n -tt 2>/dev/null | awk '{print $1}')
[ -n "$syn_times" ] || fail "no client SYN reached real2 at all"
last_down=$(echo "$syn_times" | awk -v s="$T_STOP" -v a="$T_START" '$1 >= s && $1 < a {l = $1} END {print l}')
if [ -n "$last_down" ]; then
  late=$(awk -v l="$last_down" -v s="$T_STOP" 'BEGIN {printf "%.2f", l - s}')
else
  late=0
fi
awk -v l="$late" -v b="$DOWN_BOUND" 'BEGIN {exit !(l <= b)}' ||
  fail "a client SYN reached the stopped real ${late}s after the stop (bound ${DOWN_BOUND}s)"
echo "ok: last client SYN at the stopped real ${late}s after the stop (bound ${DOWN_BOUND}s)"
# (awk reads to the end: an early exit would SIGPIPE echo, which pipefail turns into a failure)
first_up=$(echo "$syn_times" | awk -v a="$T_START" '$1 >= a && !found {print $1; found = 1}')
[ -n "$first_up" ] || fail "real2 took no client connection after nginx started again"
back=$(awk -v f="$first_up" -v a="$T_START" 'BEGIN {printf "%.2f", f - a}')
awk -v x="$back" -v b="$UP_BOUND" 'BEGIN {exit !(x <= b)}' ||
  fail "real2 took connections again only ${back}s after the start (bound ${UP_BOUND}s)"
echo "ok: real2 takes client connections again ${back}s after nginx started (bound ${UP_BOUND}s)"

grep -q "health: TCP $LAB_VIP:80: real $R2:80 is DOWN (connect: Connection refused)" "$LAB_DIR/lbd.log" ||
  fail "no DOWN log line naming service and real"
grep -q "health: TCP $LAB_VIP:80: real $R2:80 is UP (ok)" "$LAB_DIR/lbd.log" || fail "no UP log line"
echo "ok: both transitions logged with service and real"
for k in $(seq 1 20); do [ "$(wc -l < "$LAB_DIR/notify.log")" -ge 2 ] && break; sleep 0.1; done
assert_eq "down TCP $LAB_VIP:80 $R2:80 connect: Connection refused
up TCP $LAB_VIP:80 $R2:80 ok" "$(cat "$LAB_DIR/notify.log")" "the notify command ran for each transition"
echo "info: detection window: $(grep -E 'requests in|Socket errors' "$LAB_DIR/wrk_detect.txt" | tr -s ' ' | tr '\n' ' ')"
