#!/usr/bin/env bash
# lbadm against the real lbd: ipvsadm's messages and exit codes, a refused command changes
# nothing, -S/-C/-R round trip, -R all or nothing; lbd: a second instance on the same
# socket is refused, a rules file is restored at start, a bad one stops lbd (naming the
# line) before it touches the box, and the control socket is root-only.
. "$(dirname "$0")/common.sh"
lab_init
lab_create 1
lab_lbd
V=$LAB_VIP

# expect CODE "MESSAGE" lbadm-args...: exit code and stderr exactly, table unchanged.
expect() {
  local code=$1 msg=$2; shift 2
  local before after out rc=0
  before=$(lbadm_ -S -n)
  out=$(lbadm_ "$@" 2>&1) || rc=$?
  after=$(lbadm_ -S -n)
  assert_eq "$code:$msg" "$rc:$out" "lbadm $*"
  assert_eq "$before" "$after" "lbadm $* changed nothing"
}

lbadm_ -A -t "$V:80" -s rr
lbadm_ -a -t "$V:80" -r 198.18.0.11 -w 2
lbadm_ -a -t "$V:80" -r 198.18.0.12 -w 3
lbadm_ -A -u "$V:53"
lbadm_ -a -u "$V:53" -r 198.18.0.11
lbadm_ -a -u "$V:53" -r 198.18.0.12:5353 -m
lbadm_ -a -u "$V:53" -r 198.18.0.13:9999 -i
expect 255 "Service already exists" -A -t "$V:80"
expect 255 "Scheduler or persistence engine not found" -A -t "$V:81" -s nosuch
expect 255 "No such service" -E -t "$V:81" -s rr
expect 255 "No such service" -D -t "$V:81"
expect 255 "Service not defined" -a -t "$V:81" -r 198.18.0.11
expect 255 "Destination already exists" -a -t "$V:80" -r 198.18.0.11
expect 255 "No such destination" -e -t "$V:80" -r 198.18.0.13 -w 1
expect 255 "No such destination" -d -t "$V:80" -r 198.18.0.13
expect 2 "illegal weight specified" -a -t "$V:80" -r 198.18.0.13 -w 65536
expect 2 "You need to supply the 'real-server' option for the 'add-server' command" -a -t "$V:80"
expect 2 "Illegal 'weight' option with the 'add-service' command" -A -t "$V:82" -w 1
expect 255 "an SCTP service is not supported by lbd yet" -A --sctp-service "$V:80" -s rr
expect 255 "Scheduler or persistence engine not found" -A -t "$V:83" -p 60 --pe sip
expect 255 "Numerical result out of range" -a -t "$V:80" -r 198.18.0.13 -y 10
expect 255 "No daemon is running" --stop-daemon master
lbadm_ --start-daemon master --mcast-interface eth0 --syncid 3 || fail "--start-daemon master"
expect 255 "Daemon has already run" --start-daemon master
expect 255 "sync daemon: no interface nosuch0 (--mcast-interface)" --start-daemon backup --mcast-interface nosuch0
assert_eq "master sync daemon (mcast=eth0, syncid=3, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" \
  "$(lbadm_ -L --daemon)" "-L --daemon"
lbadm_ --stop-daemon master || fail "--stop-daemon master"
assert_eq "" "$(lbadm_ -L --daemon)" "-L --daemon with no daemon"
expect 2 "You need to supply the 'tun-port' option for the 'gue' tunnel type" -a -t "$V:80" -r 198.18.0.13 -i --tun-type gue
expect 2 "Tunnel options conflict with forward method" -a -t "$V:80" -r 198.18.0.13 -m --tun-type ipip
expect 255 "--bogus: unknown option" -L --bogus
rc=0; out=$(lbadm_ -L -n -t "$V:99" 2>&1) || rc=$?
assert_eq "1:No such service" "$rc:$out" "listing an unknown service"

saved=$(lbadm_ -S -n)
assert_eq "-A -t 198.18.0.100:80 -s rr
-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 2
-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 3
-A -u 198.18.0.100:53 -s wlc
-a -u 198.18.0.100:53 -r 198.18.0.11:53 -g -w 1
-a -u 198.18.0.100:53 -r 198.18.0.12:5353 -m -w 1
-a -u 198.18.0.100:53 -r 198.18.0.13:53 -i -w 1 --tun-type ipip" "$saved" "lbadm -S -n (NAT maps ports, TUN cannot)"
lbadm_ -C
assert_eq "" "$(lbadm_ -S -n)" "lbadm -C flushes"
echo "$saved" | lbadm_ -R
assert_eq "$saved" "$(lbadm_ -S -n)" "-S, -C, -R round trip"

rc=0
out=$(printf '%s\n' "-A -t $V:8080 -s rr" "-a -t $V:8080 -r 198.18.0.11" "-a -t $V:8080 -r 198.18.0.12 -w 99999" | lbadm_ -R 2>&1) || rc=$?
assert_eq "2" "$rc" "-R with a bad line exits 2"
case "$out" in *"line 3: illegal weight specified"*) echo "ok: -R names the bad line" ;; *) fail "-R message: $out" ;; esac
assert_eq "$saved" "$(lbadm_ -S -n)" "-R with a bad line changes nothing"
rc=0
out=$(printf '%s\n' "-A -t $V:8081 -s rr" "-A --sctp-service $V:80 -s rr" | lbadm_ -R 2>&1) || rc=$?
assert_eq "255" "$rc" "-R with an unsupported line exits 255 (a refused operation)"
case "$out" in *"line 2: an SCTP service is not supported by lbd yet"*) echo "ok: -R names it" ;;
  *) fail "-R unsupported: $out" ;; esac
assert_eq "$saved" "$(lbadm_ -S -n)" "-R with an unsupported line changes nothing"

# The control socket is root-only.
assert_eq "srw-------" "$(stat -c %A "$LAB_SOCKET")" "control socket mode 0600"

# A second lbd on the same socket is refused; the first keeps working.
rc=0
out=$(ip netns exec "$LAB_DIRECTOR" "$LBD_BIN" --interface eth0 --socket "$LAB_SOCKET" --rules /nonexistent 2>&1) || rc=$?
assert_eq 1 "$rc" "a second lbd exits 1"
case "$out" in *"another lbd is already running on control socket $LAB_SOCKET"*) echo "ok: second lbd says why" ;; *) fail "second lbd: $out" ;; esac
assert_eq "$saved" "$(lbadm_ -S -n)" "the first lbd still answers"

# Restart from a rules file: the same table comes back.
lab_stop_lbd
echo "# saved by lbadm -S -n" > "$LAB_DIR/rules"
echo "$saved" >> "$LAB_DIR/rules"
lab_lbd
assert_eq "$saved" "$(lbadm_ -S -n)" "lbd restores its rules file at start"
lab_stop_lbd

# A bad rules file stops lbd before it changes the box.
before=$(in_ns "$LAB_DIRECTOR" nft list ruleset)
printf '%s\n' "-A -t $V:80 -s rr" "-a -t $V:80 -r 198.18.0.11 -x" > "$LAB_DIR/bad.rules"
rc=0
out=$(ip netns exec "$LAB_DIRECTOR" "$LBD_BIN" --interface eth0 --socket "$LAB_DIR/b.sock" --rules "$LAB_DIR/bad.rules" 2>&1) || rc=$?
assert_eq 1 "$rc" "lbd with a bad rules file exits 1"
case "$out" in *"bad.rules: line 2: -x: missing argument"*) echo "ok: lbd names the bad line" ;; *) fail "bad rules: $out" ;; esac
assert_eq "$before" "$(in_ns "$LAB_DIRECTOR" nft list ruleset)" "a refused start leaves the firewall untouched"
[ -e "$LAB_DIR/b.sock" ] && fail "a refused start left its socket behind"
rc=0; out=$(lbadm_ -L -n 2>&1) || rc=$?
case "$out" in *"cannot reach lbd"*"is lbd running?"*) echo "ok: lbadm without lbd says so" ;; *) fail "no lbd: $out" ;; esac

# Its only capture interface deleted: lbd lets it go and keeps running (it takes it again
# when it is back: test_interfaces), answers lbadm, does not spin on the dead sockets, and
# still stops cleanly (exit 0, table removed).
rm -f "$LAB_DIR/rules"
lab_lbd
lbadm_ -A -t "$V:80"
in_ns "$LAB_DIRECTOR" ip link del eth0
for k in $(seq 1 60); do grep -Eq "eth0: .*disappeared" "$LAB_DIR/lbd.log" && break; sleep 0.05; done  # 3 s
grep -Eq "eth0: .*disappeared" "$LAB_DIR/lbd.log" || fail "no error logged for the lost interface"
echo "ok: lbd logged the lost interface"
kill -0 "$LAB_LBD_PID" || fail "lbd stopped when its interface disappeared"
lbadm_ -L -n | grep -q -- "TCP  $V:80 wlc" || fail "lbadm -L -n after the interface went: $(lbadm_ -L -n)"
echo "ok: lbd still answers lbadm"
cpu() { awk '{print $14 + $15}' "/proc/$LAB_LBD_PID/stat"; }
c0=$(cpu); sleep 1; c1=$(cpu)
[ $((c1 - c0)) -le 10 ] || fail "lbd spins without its interface: $((c1 - c0)) ticks in 1 s"
echo "ok: lbd idles without its interface ($((c1 - c0)) ticks in 1 s)"
kill -TERM "$LAB_LBD_PID"
rc=0; wait "$LAB_LBD_PID" || rc=$?
LAB_LBD_PID=
assert_eq 0 "$rc" "lbd without its interface stops cleanly"
assert_eq "" "$(in_ns "$LAB_DIRECTOR" nft list ruleset)" "its nftables table is removed"
