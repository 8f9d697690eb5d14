#!/usr/bin/env bash
# ipvsadm's options on real traffic through the real lbd, configured with the real lbadm:
# persistence (-p) with its template in -L -c and PersistConn, a port-zero persistent
# service (every port), one-packet scheduling (-o: one client port spread over the reals),
# an upper threshold (-x) holding new connections off until the overload ends (--set
# shortens FIN_WAIT), --rate from the estimator, save → flush → restore of all of it, and a
# SIGHUP reload under wrk load with zero failed requests and a download spanning it.
. "$(dirname "$0")/common.sh"
lab_init
lab_create 3
V=$LAB_VIP
V2=198.18.0.101
C=$LAB_CLIENT_IP
head -c 30000000 /dev/urandom > "$LAB_DIR/big"
for i in 1 2 3; do
  ns=$(lab_real_ns "$i")
  lab_dr_real "$i"
  in_ns "$ns" ip addr add "$V2/32" dev lo
  lab_nginx "$i"
  lab_bg "$ns" socat "UDP-RECVFROM:53,bind=$V,fork" SYSTEM:"echo real$i"
done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
in_ns "$LAB_CLIENT" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
# The director's resolver asks the namespace's own loopback, where nothing answers: the
# reverse lookups of `-L` without -n fail at once and no query leaves the lab.
[ -d /etc/netns ] || LAB_EXTRA_PATHS+=(/etc/netns)  # removed at the end only if we made it
mkdir -p "/etc/netns/$LAB_DIRECTOR"
LAB_EXTRA_PATHS+=("/etc/netns/$LAB_DIRECTOR")
echo "nameserver 127.0.0.1" > "/etc/netns/$LAB_DIRECTOR/resolv.conf"
lab_lbd
R1=$(lab_real_ip 1) R2=$(lab_real_ip 2) R3=$(lab_real_ip 3)

# --- Persistence: -p 30 keeps the client on one real; -c shows the template (port 0).
lbadm_ -A -t "$V:80" -s rr -p 30
for r in "$R1" "$R2" "$R3"; do lbadm_ -a -t "$V:80" -r "$r" -g; done
got=$(for k in $(seq 1 6); do in_ns "$LAB_CLIENT" curl -s -m 5 "http://$V/"; done | sort | uniq -c)
assert_eq 1 "$(echo "$got" | wc -l)" "-p: six connections of one client go to one real ($got)"
chosen=$(echo "$got" | awk '{print $2}' | tr -d 'real')
RC=$(lab_real_ip "$chosen")
conns=$(lbadm_ -L -n -c)
tmpl=$(echo "$conns" | awk -v c="$C:0" -v v="$V:80" '$1 == "TCP" && $3 == "NONE" && $4 == c && $5 == v {print $6}')
assert_eq "$RC:80" "$tmpl" "-L -n -c lists the template: client port 0, state NONE, its real"
pc=$(lbadm_ -L -n --persistent-conn -t "$V:80")
assert_eq "1" "$(echo "$pc" | awk -v r="$RC:80" '$1 == "->" && $2 == r {print $4}')" "--persistent-conn: PersistConn 1"
case "$(lbadm_ -L -n)" in *"TCP  $V:80 rr persistent 30"*) echo "ok: -L shows persistent 30" ;;
  *) fail "-L: $(lbadm_ -L -n)" ;; esac
# Without -n, ports are named from /etc/services (addresses without a name stay numeric).
case "$(lbadm_ -L)" in *"TCP  $V:http rr persistent 30"*"  -> $R1:http "*) echo "ok: -L without -n names ports" ;;
  *) fail "-L without -n: $(lbadm_ -L)" ;; esac

# --- Port zero: one persistent service takes every TCP port of V2.
lbadm_ -A -t "$V2:0" -s rr -p 60
for r in "$R1" "$R2" "$R3"; do lbadm_ -a -t "$V2:0" -r "$r" -g; done
a=$(in_ns "$LAB_CLIENT" curl -s -m 5 "http://$V2:80/")
case "$a" in real[123]) echo "ok: port-zero service answers on :80 ($a)" ;; *) fail "port zero: '$a'" ;; esac
rc=0; in_ns "$LAB_CLIENT" curl -s -m 3 "http://$V2:8080/" >/dev/null || rc=$?
assert_eq 7 "$rc" "port 8080 reaches the same real (nothing listens there: refused by it)"
echo "$(lbadm_ -L -n -c)" | grep -Eq "^TCP [0-9]{2}:[0-9]{2} +NONE +$C:0 +$V2:0 +198\.18\.0\.1[123]:0$" ||
  fail "no port-zero template: $(lbadm_ -L -n -c)"
grep -q "nftables update failed" "$LAB_DIR/lbd.log" && fail "the guard refused the port-zero rule"
in_ns "$LAB_DIRECTOR" nft get element netdev lbd svc_any "{ $V2 . tcp }" >/dev/null ||
  fail "the guard does not cover every port of $V2: $(in_ns "$LAB_DIRECTOR" nft list table netdev lbd)"
echo "ok: the guard covers every TCP port of $V2"

# --- One-packet scheduling: six datagrams from one client port reach all three reals.
lbadm_ -A -u "$V:53" -s rr -o
for r in "$R1" "$R2" "$R3"; do lbadm_ -a -u "$V:53" -r "$r" -g; done
ops=$(for k in $(seq 1 6); do
  echo q | in_ns "$LAB_CLIENT" timeout 3 socat -t 1 - "UDP:$V:53,sourceport=40053,reuseaddr"
done | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')
assert_eq "2 2 2 " "$ops" "-o: one client port, each real twice"
echo "$(lbadm_ -L -n -c)" | grep -q "$V:53" && fail "-o left connection entries: $(lbadm_ -L -n -c)"
case "$(lbadm_ -L -n)" in *"UDP  $V:53 rr ops"*) echo "ok: -L shows ops" ;; *) fail "-L: $(lbadm_ -L -n)" ;; esac
# Without -o, the same client port sticks to one real (its connection entry).
lbadm_ -E -u "$V:53" -s rr
same=$(for k in $(seq 1 4); do
  echo q | in_ns "$LAB_CLIENT" timeout 3 socat -t 1 - "UDP:$V:53,sourceport=40054,reuseaddr"
done | sort -u | wc -l)
assert_eq 1 "$same" "without -o one client port keeps its real"

# --- Thresholds: -x 1 on the only schedulable real; an open connection overloads it.
lbadm_ --set 900 2 300
lbadm_ -E -t "$V:80" -s rr                      # persistence off
lbadm_ -e -t "$V:80" -r "$R1" -g -w 1 -x 1
lbadm_ -e -t "$V:80" -r "$R2" -g -w 0
lbadm_ -e -t "$V:80" -r "$R3" -g -w 0
lab_bg "$LAB_CLIENT" socat "TCP:$V:80" EXEC:"sleep 20"  # open, silent, until killed
HOLD=${LAB_PIDS[-1]}
for k in $(seq 1 40); do
  [ "$(lbadm_ -L -n --thresholds -t "$V:80" | awk -v r="$R1:80" '$2 == r {print $5}')" = 1 ] && break
  sleep 0.05
done
thr=$(lbadm_ -L -n --thresholds -t "$V:80" | awk -v r="$R1:80" '$2 == r {print $3, $4, $5}')
assert_eq "1 0 1" "$thr" "--thresholds: Uthreshold 1, Lthreshold 0, one active connection"
rc=0; in_ns "$LAB_CLIENT" curl -s -m 3 "http://$V/" >/dev/null || rc=$?
assert_eq 7 "$rc" "an overloaded real gets no new connection (port unreachable: refused)"
kill -TERM "$HOLD"; wait "$HOLD" 2>/dev/null || true
ok=0
for k in $(seq 1 80); do  # FIN_WAIT is 2 s now; then the overload ends
  [ "$(in_ns "$LAB_CLIENT" curl -s -m 2 "http://$V/" 2>/dev/null)" = real1 ] && { ok=1; break; }
  sleep 0.1
done
assert_eq 1 "$ok" "the overload ends once the connection is gone"
assert_eq "Timeout (tcp tcpfin udp): 900 2 300" "$(lbadm_ -L --timeout)" "--set changed tcpfin"
lbadm_ --set 900 120 300

# --- --rate: the estimator sees the load within two 2-second periods.
for r in "$R2" "$R3"; do lbadm_ -e -t "$V:80" -r "$r" -g -w 1; done
in_ns "$LAB_CLIENT" timeout 15 wrk -t1 -c4 -d4s -H 'Connection: close' "http://$V/" > "$LAB_DIR/wrk_rate.txt"
rate=$(lbadm_ -L -n --rate -t "$V:80" | awk -v s="$V:80" '$1 == "TCP" && $2 == s {print $3, $4}')
read -r cps inpps <<< "$rate"
[ "${cps:-0}" -gt 0 ] && [ "${inpps:-0}" -gt 0 ] || fail "--rate shows no rate: $(lbadm_ -L -n --rate)"
echo "ok: --rate: $cps conn/s, $inpps packets/s in"

# --- Save → flush → restore, every option included.
lbadm_ -e -t "$V:80" -r "$R3" -g -w 2 -x 100 -y 50
lbadm_ -E -u "$V:53" -s rr -o -b flag-2
lbadm_ -E -t "$V2:0" -s rr -p 120 -M 255.255.255.0
saved=$(lbadm_ -S -n)
grep -qx -- "-A -t $V2:0 -s rr -p 120 -M 255.255.255.0" <<< "$saved" || fail "-S: $saved"
grep -qx -- "-a -t $V:80 -r $R3:80 -g -w 2 -x 100 -y 50" <<< "$saved" || fail "-S: $saved"
grep -qx -- "-A -u $V:53 -s rr -o -b flag-2" <<< "$saved" || fail "-S: $saved"
lbadm_ -C
echo "$saved" | lbadm_ -R
assert_eq "$saved" "$(lbadm_ -S -n)" "save, flush, restore gives the same rules"

# --- Host names in restored rules resolve as ipvsadm -R resolves them (the director's
# namespace gets its own /etc/hosts through ip netns exec's /etc/netns/NS).
echo "$R1 real-one" > "/etc/netns/$LAB_DIRECTOR/hosts"
printf '%s\n' "ipvsadm -A -t $V:https -s rr" "ipvsadm -a -t $V:https -r real-one:https -g -w 2" | lbadm_ -R
echo "$(lbadm_ -S -n)" | grep -qx -- "-a -t $V:443 -r $R1:443 -g -w 2" || fail "names in -R: $(lbadm_ -S -n)"
echo "$(lbadm_ -L -t "$V:443")" | grep -q -- "-> real-one:https " || fail "-L without -n: $(lbadm_ -L -t "$V:443")"
echo "ok: -R resolves host and service names; -L prints them back"
lbadm_ -D -t "$V:443"

# --- Restart restores them.
echo "$saved" > "$LAB_DIR/rules"
lab_stop_lbd
lab_lbd
assert_eq "$saved" "$(lbadm_ -S -n)" "a restarted lbd restores its rules file"

# --- A script written for ipvsadm runs unchanged with lbd's ipvsadm, ipvsadm-save and
# ipvsadm-restore (scripts/ipvsadm-compat, installed in /usr/lib/lbd/ipvsadm) first in PATH.
compat=$LAB_DIR/compat
mkdir -p "$compat"
cp "$HERE/../../scripts/ipvsadm-compat/"* "$compat/"
ln -s "$LBADM_BIN" "$compat/lbadm"
operator() { in_ns "$LAB_DIRECTOR" env PATH="$compat:$PATH" LBD_SOCKET="$LAB_SOCKET" bash -c "$1"; }
operator "ipvsadm-save -n > $LAB_DIR/ipvs.saved"
assert_eq "$saved" "$(cat "$LAB_DIR/ipvs.saved")" "ipvsadm-save -n is lbadm -S -n"
operator "ipvsadm -D -t $V2:0 && ipvsadm -e -t $V:80 -r $R1 -g -w 9 && ipvsadm -L -n | grep -q ' 9 '"
operator "ipvsadm-restore < $LAB_DIR/ipvs.saved"
assert_eq "$saved" "$(lbadm_ -S -n)" "ipvsadm-restore replaces the table with the saved one"
rc=0; out=$(operator "ipvsadm -n" 2>&1) || rc=$?
assert_eq "255:Try \`ipvsadm -h' or 'ipvsadm --help' for more information." "$rc:$out" "ipvsadm's own name in its messages"
rc=0; out=$(operator "echo '-A -t $V:80 -s rr' | ipvsadm-restore" 2>&1) || rc=$?
[ "$rc" = 0 ] || fail "ipvsadm-restore of one service failed: $out"
assert_eq "-A -t $V:80 -s rr" "$(lbadm_ -S -n)" "ipvsadm-restore flushes what the input does not have"
rc=0; out=$(operator "printf '%s\n' '-A -t $V:81' '-a -t $V:81 -r $R1 -w x' | ipvsadm-restore" 2>&1) || rc=$?
assert_eq 2 "$rc" "ipvsadm-restore with a bad line fails"
assert_eq "-A -t $V:80 -s rr" "$(lbadm_ -S -n)" "... and, unlike ipvsadm's, flushes nothing"
echo "$saved" | lbadm_ -R >/dev/null 2>&1 || { lbadm_ -C; echo "$saved" | lbadm_ -R; }
assert_eq "$saved" "$(lbadm_ -S -n)" "table back for what follows"

# --- SIGHUP reload under load: zero failed requests; a download across it completes.
lbadm_ -E -t "$V:80" -s rr
for r in "$R1" "$R2" "$R3"; do lbadm_ -e -t "$V:80" -r "$r" -g -w 1; done
lbadm_ -S -n > "$LAB_DIR/rules"
load_start "$V" 6M 8
sleep 2
# The new file: R2's weight changes, the UDP and port-zero services go (their reals with
# them), a new service comes with its real: 5 changes; every real of :80 stays.
sed -e "s|^-a -t $V:80 -r $R2:80 -g -w 1$|-a -t $V:80 -r $R2:80 -g -w 3|" \
    -e "/ -u $V:53 /d" -e "/ -t $V2:0 /d" "$LAB_DIR/rules" > "$LAB_DIR/rules.new"
echo "-A -t $V:8080 -s wlc" >> "$LAB_DIR/rules.new"
echo "-a -t $V:8080 -r $R1:8080 -g -w 1" >> "$LAB_DIR/rules.new"
mv "$LAB_DIR/rules.new" "$LAB_DIR/rules"
kill -HUP "$LAB_LBD_PID"
sleep 1
# A bad file: refused whole, the running rules stay.
after_good=$(lbadm_ -S -n)
cp "$LAB_DIR/rules" "$LAB_DIR/rules.good"
echo "-a -t $V:80 -r $R3 -w 70000" >> "$LAB_DIR/rules"
kill -HUP "$LAB_LBD_PID"
sleep 0.5
load_check "two reloads"
assert_eq "$(sort "$LAB_DIR/rules.good")" "$(echo "$after_good" | sort)" "the reload made the table the file's"
assert_eq "$after_good" "$(lbadm_ -S -n)" "a bad file left the running rules as they were"
grep -q "reload: $LAB_DIR/rules: line [0-9]*: illegal weight specified; running rules kept" "$LAB_DIR/lbd.log" ||
  fail "the refused reload is not logged with its line: $(tail -3 "$LAB_DIR/lbd.log")"
grep -q "reloaded $LAB_DIR/rules: .* 5 changes" "$LAB_DIR/lbd.log" ||
  fail "the reload did not apply exactly the 5 differences: $(grep reloaded "$LAB_DIR/lbd.log")"
for change in "-D -u $V:53" "-D -t $V2:0" "-e -t $V:80 -r $R2:80 -g -w 3" "-A -t $V:8080 -s wlc" \
              "-a -t $V:8080 -r $R1:8080 -g -w 1"; do
  grep -q -- "rules:   $change\$" "$LAB_DIR/lbd.log" || fail "the reload's log lacks [$change]: $(grep -A6 reloaded "$LAB_DIR/lbd.log")"
done
echo "ok: reload applied 5 changes, each logged as its command; a bad file none"
