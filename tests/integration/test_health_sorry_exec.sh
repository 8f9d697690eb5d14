#!/usr/bin/env bash
# Health outcomes beyond one failing real: every real down with a sorry server (it answers;
# when a real recovers it stands down), every real down without one (the client gets ICMP
# port unreachable from the VIP, as IPVS answers), an exec check (the script's exit
# status decides, with the real's address in its environment), an HTTP check that wants
# a status the real does not give (down, with the reason), and on-down=expire.
. "$(dirname "$0")/common.sh"
lab_init
lab_create 4
for i in 1 2 3 4; do lab_dr_real "$i"; lab_nginx "$i"; done
for i in 1 2 3 4; do lab_wait_port "$(lab_real_ns "$i")" 80; done
lab_lbd
R1=$(lab_real_ip 1); R2=$(lab_real_ip 2); R3=$(lab_real_ip 3); R4=$(lab_real_ip 4)
FAST="interval=0.5,timeout=0.3,rise=1,fall=1"
stop_nginx() { kill "$(cat "$LAB_DIR/nginx$1/nginx.pid")"; }
start_nginx() { lab_bg "$(lab_real_ns "$1")" nginx -c "$LAB_DIR/nginx$1/nginx.conf" -e "$LAB_DIR/nginx$1/error.log"; }
wait_state() {  # wait_state REAL STATE [PORT]: until --lbd-health shows it (at most 5 s)
  local k
  for k in $(seq 1 50); do
    lbadm_ --lbd-health | grep -E -q -- "-> $1:${3:-80} +$2 " && return 0
    sleep 0.1
  done
  fail "$1 never became $2: $(lbadm_ --lbd-health)"
}

# Sorry server: real4 stands in for reals 1-3 when they are all down.
lbadm_ -A -t "$LAB_VIP:80" -s rr --health "check=tcp,$FAST,sorry=$R4"
for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")"; done
sleep 1
assert_eq "real1 1 real2 1 real3 1 " "$(count_answers 3 | tr '\n' ' ')" "reals 1-3 answer while up"
for i in 1 2 3; do stop_nginx "$i"; done
for r in "$R1" "$R2" "$R3"; do wait_state "$r" DOWN; done
assert_eq "real4 3 " "$(count_answers 3 | tr '\n' ' ')" "all reals down: the sorry server answers"
lbadm_ -L -n | grep -q -- "-> $R4:80 *Route *1 " || fail "-L should list the active sorry server: $(lbadm_ -L -n)"
echo "ok: -L -n lists the sorry server while it stands in"
lbadm_ -S -n | grep -q -- "-r $R4" && fail "-S must not save the sorry server as a real: $(lbadm_ -S -n)"
lbadm_ -S -n | grep -q -- "--health check=tcp,.*sorry=$R4" || fail "-S: $(lbadm_ -S -n)"
echo "ok: -S saves the sorry server in --health, not as a real"
start_nginx 2
wait_state "$R2" UP
assert_eq "real2 3 " "$(count_answers 3 | tr '\n' ' ')" "a real back: the sorry server stands down"
grep -q "every real is down: sorry server $R4:80 takes new connections" "$LAB_DIR/lbd.log" || fail "no sorry-on log line"
grep -q "a real is back: sorry server $R4:80 stands down" "$LAB_DIR/lbd.log" || fail "no sorry-off log line"
echo "ok: sorry server switches logged"

# Without a sorry server: port unreachable, so clients fail at once.
lbadm_ -E -t "$LAB_VIP:80" -s rr --health sorry=none
stop_nginx 2
wait_state "$R2" DOWN
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/unreach.pcap" "icmp and src host $LAB_VIP"
UDUMP=$TCPDUMP_PID
rc=0; in_ns "$LAB_CLIENT" curl -s -m 3 "http://$LAB_VIP/" >/dev/null || rc=$?
stop_tcpdump "$UDUMP"
assert_eq 7 "$rc" "all reals down, no sorry server: curl fails to connect at once (exit 7)"
tcpdump -r "$LAB_DIR/unreach.pcap" -n 2>/dev/null | grep -q "$LAB_VIP tcp port 80 unreachable" ||
  fail "expected ICMP port unreachable from the VIP: $(tcpdump -r "$LAB_DIR/unreach.pcap" -n 2>/dev/null)"
echo "ok: the client got ICMP port unreachable from the VIP"
for i in 1 2 3; do start_nginx "$i"; done
lbadm_ -D -t "$LAB_VIP:80"

# Exec check: up while $LAB_DIR/up-<real address> exists.
CHECK=$LAB_DIR/check.sh
cat > "$CHECK" <<EOF
#!/bin/sh
test -e "$LAB_DIR/up-\$LBD_REAL_ADDR" && test "\$LBD_VPORT" = 80
EOF
chmod 755 "$CHECK"
for r in "$R1" "$R2" "$R3"; do touch "$LAB_DIR/up-$r"; done
lbadm_ -A -t "$LAB_VIP:80" -s rr --health "check=exec,cmd=$CHECK,$FAST"
for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")"; done
for r in "$R1" "$R2" "$R3"; do wait_state "$r" UP; done
rm "$LAB_DIR/up-$R1"
wait_state "$R1" DOWN
lbadm_ --lbd-health | grep -E -q -- "-> $R1:80 +DOWN .*$CHECK: exit status 1" || fail "exec reason: $(lbadm_ --lbd-health)"
echo "ok: the exec check's exit status took real1 down, with the reason"
assert_eq "real2 2 real3 2 " "$(count_answers 4 | tr '\n' ' ')" "exec-down real1 gets no connections"
touch "$LAB_DIR/up-$R1"
wait_state "$R1" UP
lbadm_ -D -t "$LAB_VIP:80"

# HTTP check wanting a status the reals do not give (nginx answers 404 for /missing);
# real3 overrides the path and stays up.
lbadm_ -A -t "$LAB_VIP:80" -s rr --health "check=http,path=/missing,status=200,$FAST"
for i in 1 2; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")"; done
lbadm_ -a -t "$LAB_VIP:80" -r "$R3" --health path=/
wait_state "$R1" DOWN
wait_state "$R2" DOWN
wait_state "$R3" UP
lbadm_ --lbd-health | grep -E -q -- "-> $R1:80 +DOWN .*status 404 not in 200" || fail "http reason: $(lbadm_ --lbd-health)"
echo "ok: HTTP check with the wrong status takes the reals down, with the reason"
assert_eq "real3 3 " "$(count_answers 3 | tr '\n' ' ')" "only the real whose check passes gets connections"
lbadm_ -D -t "$LAB_VIP:80"

# keepalived's quorum: weights 2, 2, 1 (quorum 4, hysteresis 1) with real4 as sorry server.
# Two reals down leave weight 1 < 4 - 1: quorum lost, the sorry server takes every new
# connection although real3 is up; quorum-down ran. Both back (5 >= 4 + 1): gained again.
for i in 1 2 3 4; do  # (those the sections above left stopped)
  in_ns "$(lab_real_ns "$i")" ss -ltn "sport = :80" | grep -q LISTEN || start_nginx "$i"
done
for i in 1 2 3 4; do lab_wait_port "$(lab_real_ns "$i")" 80; done
: >"$LAB_DIR/quorum.log"; chmod 666 "$LAB_DIR/quorum.log"
for q in up down; do
  printf '#!/bin/sh\necho "quorum-%s $*" >> %s\n' "$q" "$LAB_DIR/quorum.log" >"$LAB_DIR/quorum-$q"
  chmod 755 "$LAB_DIR/quorum-$q"
done
lbadm_ -A -t "$LAB_VIP:80" -s wrr --health \
  "check=tcp,$FAST,sorry=$R4,quorum=4,hysteresis=1,quorum-up=$LAB_DIR/quorum-up,quorum-down=$LAB_DIR/quorum-down"
lbadm_ -a -t "$LAB_VIP:80" -r "$R1" -w 2
lbadm_ -a -t "$LAB_VIP:80" -r "$R2" -w 2
lbadm_ -a -t "$LAB_VIP:80" -r "$R3" -w 1
for r in "$R1" "$R2" "$R3"; do wait_state "$r" UP; done
assert_eq "real1 2 real2 2 real3 1 " "$(count_answers 5 | tr '\n' ' ')" "quorum: the reals serve"
stop_nginx 1
wait_state "$R1" DOWN
assert_eq "real2 2 real3 1 " "$(count_answers 3 | tr '\n' ' ')" "weight 3 up: still quorum (3 is not below 4 - 1)"
stop_nginx 2
wait_state "$R2" DOWN
assert_eq "real4 3 " "$(count_answers 3 | tr '\n' ' ')" "weight 1 up: no quorum, the sorry server takes every connection"
grep -q "Lost quorum 4-1=3 > 1 for VS TCP $LAB_VIP:80" "$LAB_DIR/lbd.log" || fail "no 'Lost quorum' line: $(grep -i quorum "$LAB_DIR/lbd.log")"
start_nginx 1
wait_state "$R1" UP
assert_eq "real4 2 " "$(count_answers 2 | tr '\n' ' ')" "weight 3 up: not yet 4 + 1, the sorry server still serves"
start_nginx 2
wait_state "$R2" UP
assert_eq "real1 2 real2 2 real3 1 " "$(count_answers 5 | tr '\n' ' ')" "weight 5 up: quorum gained, the reals serve again"
grep -q "Gained quorum 4+1=5 <= 5 for VS TCP $LAB_VIP:80" "$LAB_DIR/lbd.log" || fail "no 'Gained quorum' line"
for k in $(seq 1 30); do [ "$(wc -l <"$LAB_DIR/quorum.log")" -ge 2 ] && break; sleep 0.1; done
assert_eq "quorum-down TCP $LAB_VIP:80 1 4|quorum-up TCP $LAB_VIP:80 5 4" "$(paste -sd'|' "$LAB_DIR/quorum.log")" \
  "quorum-down and quorum-up ran with the service, the weight up and the quorum"
lbadm_ -D -t "$LAB_VIP:80"

# start=down (keepalived's alpha): a new real takes nothing until rise checks pass.
lbadm_ -A -t "$LAB_VIP:80" -s rr --health "check=http,interval=1,timeout=0.5,rise=2,fall=1,start=down"
lbadm_ -a -t "$LAB_VIP:80" -r "$R1"
lbadm_ --lbd-health | grep -E -q -- "-> $R1:80 +DOWN" || fail "start=down: real1 not DOWN at once: $(lbadm_ --lbd-health)"
rc=0; in_ns "$LAB_CLIENT" curl -s -m 2 -o /dev/null "http://$LAB_VIP/" || rc=$?
assert_eq 7 "$rc" "start=down: no connection before the checks pass"
wait_state "$R1" UP
assert_eq "real1 2 " "$(count_answers 2 | tr '\n' ' ')" "start=down: served once rise=2 checks passed"
lbadm_ -D -t "$LAB_VIP:80"

# on-down=expire: an established connection to a real that goes down is cut; with the
# default (keep) it would go on.
lbadm_ -A -t "$LAB_VIP:7" -s rr --health "check=tcp,port=80,$FAST,on-down=expire"
lab_bg "$(lab_real_ns 1)" socat TCP-LISTEN:7,fork,reuseaddr EXEC:cat
lab_wait_port "$(lab_real_ns 1)" 7
lbadm_ -a -t "$LAB_VIP:7" -r "$R1"
wait_state "$R1" UP 7
coproc ECHO { in_ns "$LAB_CLIENT" timeout 20 socat -T 15 - "TCP:$LAB_VIP:7"; }
echo hello >&"${ECHO[1]}"
read -r -t 3 line <&"${ECHO[0]}" || true
assert_eq hello "$line" "echo through the VIP before the real goes down"
stop_nginx 1
wait_state "$R1" DOWN 7
echo again >&"${ECHO[1]}"
line=; read -r -t 3 line <&"${ECHO[0]}" || true
assert_eq "" "$line" "on-down=expire: the established connection to the down real is cut"
expired=$(lbadm_ --lbd-counters | awk '$1 == "drop_real_down" {print $2}')
[ "${expired:-0}" -ge 1 ] || fail "no drop_real_down counted"
echo "ok: $expired packet(s) of expired connections dropped (drop_real_down)"
