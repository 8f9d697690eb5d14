#!/usr/bin/env bash
# The director as an attacker and a careless operator meet it. Topology: the lab's segment,
# client (attacker too), director (lbd), two DR reals with nginx.
#   frames: SYNs with a bad IP or TCP checksum create no connection; ARP for the VIP from a
#     group MAC is not answered;
#   arguments: a tab inside -s, a newline in --health host=, %0d%0a in path= change nothing;
#   reals: broadcast, multicast, 0.0.0.0 and the director's own address are refused with
#     IPVS's errors; a DR real behind a gateway is warned about and counted;
#   messages: a garbage -R line names its line and token, a real's timeout > interval its
#     reason, IPv6 says unsupported, --max-connections -5 says its range;
#   exec checks and notify: run as nobody, no capability, a clean environment, no socket
#     inherited; a missing notify command is logged; notifies for one real in order;
#   control socket: a stopped lbd gets lbadm a timeout message; idle clients beyond the cap
#     are told so while forwarding goes on; at the descriptor limit lbd keeps running;
#   one lbd per namespace: a second one (another socket) is refused and changes nothing;
#     --socket naming a regular file is refused and the file kept;
#   rules files: a directory, a FIFO, /dev/zero, a missing or unreadable given file stop
#     lbd at start; --check-rules says the same; a slow name in a reloaded file does not
#     stop forwarding; a reload of 30,000 reals goes through without a stall;
#   many services: past the precise capture filter's size a new VIP is still served.
. "$(dirname "$0")/common.sh"
PY=/usr/bin/python3
dr_lab_http 2
V=$LAB_VIP
R1=$(lab_real_ip 1)
R2=$(lab_real_ip 2)
DMAC=$(director_mac)
CMAC=$(in_ns "$LAB_CLIENT" cat /sys/class/net/eth0/address)
lbadm_ -A -t "$V:80" -s rr
lbadm_ -a -t "$V:80" -r "$R1" -g
lbadm_ -a -t "$V:80" -r "$R2" -g
assert_eq "real1
real2" "$(count_answers 2 | awk '{print $1}')" "the lab serves through the VIP"
counter() { lbadm_ --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
expect_fail() {  # expect_fail CODE TEXT WHAT -- CMD...: CMD exits CODE and prints TEXT
  local code=$1 text=$2 what=$3 out rc=0; shift 4
  out=$("$@" 2>&1) || rc=$?
  assert_eq "$code" "$rc" "$what: exit $code"
  case "$out" in *"$text"*) echo "ok: $what: says \"$text\"" ;; *) fail "$what: got [$out]" ;; esac
}

# --- Frames: forged SYNs and a multicast ARP sender. (Where br_netfilter is loaded, the
# lab's bridge would drop a bad IP checksum itself: not in this switch namespace.)
[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] &&
  in_ns "$LAB_SW" sysctl -qw net.bridge.bridge-nf-call-iptables=0 2>/dev/null || true
created=$(counter conns_created)
in_ns "$LAB_CLIENT" "$PY" - "$CMAC" "$DMAC" "$V" <<'PYEOF'
import sys
from scapy.all import Ether, ARP, IP, TCP, sendp, conf
conf.verb = 0
cmac, dmac, vip = sys.argv[1:4]
for i in range(3):
    sendp(Ether(src=cmac, dst=dmac) / IP(src="198.18.0.1", dst=vip) / TCP(sport=5000 + i, dport=80, flags="S", chksum=0x1234), iface="eth0")
    sendp(Ether(src=cmac, dst=dmac) / IP(src="198.18.0.1", dst=vip, chksum=0x1234) / TCP(sport=5100 + i, dport=80, flags="S"), iface="eth0")
sendp(Ether(src=cmac, dst="ff:ff:ff:ff:ff:ff") /  # a bridge drops a group Ethernet source itself
      ARP(op=1, hwsrc="01:00:5e:00:00:01", psrc="198.18.0.1", pdst=vip), iface="eth0")
PYEOF
sleep 0.3
assert_eq 6 "$(counter drop_bad_checksum)" "six SYNs with a bad IP or TCP checksum dropped and counted"
assert_eq "$created" "$(counter conns_created)" "they created no connection"
assert_eq 1 "$(counter drop_bad_arp_sender)" "the ARP request from a group MAC dropped and counted"

# --- Arguments reach lbd intact.
expect_fail 255 "Scheduler or persistence engine not found" "-s with a tab inside" -- \
  lbadm_ -A -t "$V:81" -s $'rr\t-p'
lbadm_ -L -n | grep -q ":81" && fail "a service :81 exists"
expect_fail 2 "control characters are not allowed" "--health host= with a newline" -- \
  lbadm_ -A -t "$V:82" --health $'check=http,host=a\nb'
expect_fail 2 "control characters are not allowed" "--health path= with %0d%0a" -- \
  lbadm_ -A -t "$V:82" --health 'check=http,path=/%0d%0aX-Evil:%201'
lbadm_ -L -n | grep -q ":82" && fail "a service :82 exists"

# --- Addresses IPVS refuses.
for a in 198.18.0.255 224.0.0.1 0.0.0.0 255.255.255.255; do
  expect_fail 255 "Invalid operation.  Possibly wrong module version, address not unicast" "real $a" -- \
    lbadm_ -a -t "$V:80" -r "$a" -g
done
expect_fail 255 "is an address of this director" "the director's own address as a real" -- \
  lbadm_ -a -t "$V:80" -r "$LAB_DIRECTOR_IP" -g
in_ns "$LAB_DIRECTOR" ip route add 198.19.200.0/24 via "$R1"
lbadm_ -a -t "$V:80" -r 198.19.200.5 -g -w 0
for k in $(seq 1 30); do [ "$(counter dr_reals_not_on_link)" = 1 ] && break; sleep 0.1; done
assert_eq 1 "$(counter dr_reals_not_on_link)" "a DR real behind a gateway is counted"
grep -q "DR real server 198.19.200.5 is not on-link: frames go to gateway $R1" "$LAB_DIR/lbd.log" ||
  fail "no warning about the DR real behind a gateway"
echo "ok: and warned about"
lbadm_ -d -t "$V:80" -r 198.19.200.5
in_ns "$LAB_DIRECTOR" ip route del 198.19.200.0/24

# --- Messages.
printf '%s\n' "-A -t $V:90 -s rr" "frobnicate the table" > "$LAB_DIR/garbage.rules"
expect_fail 2 "line 2: \`frobnicate': no command" "a garbage -R line" -- \
  sh -c "$(declare -f lbadm_ in_ns); LBADM_BIN=$LBADM_BIN LAB_DIRECTOR=$LAB_DIRECTOR LAB_SOCKET=$LAB_SOCKET lbadm_ -R < $LAB_DIR/garbage.rules"
lbadm_ -A -t "$V:91" -s rr --health "check=tcp,interval=1,timeout=0.5"
expect_fail 255 "health check of $R1:91: timeout=3 is longer than interval=1" "a real's timeout above the interval" -- \
  lbadm_ -a -t "$V:91" -r "$R1" -g --health timeout=3
lbadm_ -D -t "$V:91"
expect_fail 2 "illegal virtual server address[:port] specified" "an IPv4-mapped IPv6 VIP" -- lbadm_ -A -t "[::ffff:198.18.0.100]:80"
expect_fail 2 "--max-connections -5: expected a number from 1 to 134217728" "--max-connections -5" -- \
  "$LBD_BIN" --interface eth0 --max-connections -5
head -c 17000000 /dev/zero | tr '\0' '#' | fold -w 100 > "$LAB_DIR/huge.rules"
expect_fail 2 "more than lbd takes in one restore (16 MiB)" "a restore over 16 MiB" -- \
  sh -c "$(declare -f lbadm_ in_ns); LBADM_BIN=$LBADM_BIN LAB_DIRECTOR=$LAB_DIRECTOR LAB_SOCKET=$LAB_SOCKET lbadm_ -R < $LAB_DIR/huge.rules"

# --- Exec checks and notify commands: as nobody, nothing inherited.
mkdir -m 1777 "$LAB_DIR/out"
cat > "$LAB_DIR/probe.sh" <<'SH'
#!/bin/sh
o=/tmp/never
[ -n "$LBD_REAL_ADDR" ] && o=$(dirname "$0")/out/probe.$LBD_REAL_ADDR
{ echo "uid $(id -u)"; grep '^CapEff:' /proc/$$/status; grep '^CapPrm:' /proc/$$/status
  echo "env $(tr '\0' '\n' < /proc/$$/environ | cut -d= -f1 | sort | tr '\n' ' ')"
  echo "sockets $(ls -l /proc/$$/fd | grep -c 'socket:')"; } > "$o.tmp"
mv "$o.tmp" "$o"
exit 0
SH
cat > "$LAB_DIR/notify.sh" <<'SH'
#!/bin/sh
[ "$1" = down ] && sleep 1
echo "$1 $3" >> "$(dirname "$0")/out/notify.log"
SH
chmod 755 "$LAB_DIR/probe.sh" "$LAB_DIR/notify.sh"
lbadm_ -E -t "$V:80" -s rr --health "check=exec,cmd=$LAB_DIR/probe.sh,interval=0.3,timeout=0.2,rise=1,fall=1,notify=$LAB_DIR/notify.sh"
for k in $(seq 1 50); do [ -s "$LAB_DIR/out/probe.$R1" ] && break; sleep 0.1; done
probe=$(cat "$LAB_DIR/out/probe.$R1")
assert_eq "uid 65534" "$(echo "$probe" | grep '^uid')" "the exec check runs as nobody"
assert_eq "CapEff:	0000000000000000" "$(echo "$probe" | grep '^CapEff')" "with no effective capability"
assert_eq "CapPrm:	0000000000000000" "$(echo "$probe" | grep '^CapPrm')" "and none permitted"
assert_eq "env LBD_CHECK_PORT LBD_PROTOCOL LBD_REAL_ADDR LBD_REAL_PORT LBD_VIP LBD_VPORT PATH " \
  "$(echo "$probe" | grep '^env')" "with PATH and the LBD_* variables only"
assert_eq "sockets 0" "$(echo "$probe" | grep '^sockets')" "inheriting no socket (capture, control)"
# Notifies in order: "down" (its command sleeps 1 s) is delivered before the "up" after it.
cat > "$LAB_DIR/fail.sh" <<'SH'
#!/bin/sh
case "$LBD_REAL_ADDR" in *.12) [ -e "$(dirname "$0")/out/down" ] && exit 1 ;; esac
exit 0
SH
chmod 755 "$LAB_DIR/fail.sh"
lbadm_ -E -t "$V:80" -s rr --health "check=exec,cmd=$LAB_DIR/fail.sh,interval=0.2,timeout=0.15,rise=1,fall=1,notify=$LAB_DIR/notify.sh"
touch "$LAB_DIR/out/down"
for k in $(seq 1 30); do lbadm_ --lbd-health | grep -E -q -- "-> $R2:80 +DOWN" && break; sleep 0.1; done
rm "$LAB_DIR/out/down"
for k in $(seq 1 30); do lbadm_ --lbd-health | grep -E -q -- "-> $R2:80 +UP" && break; sleep 0.1; done
for k in $(seq 1 40); do [ "$(cat "$LAB_DIR/out/notify.log" 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.1; done
assert_eq "down $R2:80
up $R2:80" "$(cat "$LAB_DIR/out/notify.log")" "notifies for one real arrive in order"
lbadm_ -E -t "$V:80" -s rr --health "check=exec,cmd=$LAB_DIR/fail.sh,interval=0.2,timeout=0.15,rise=1,fall=1,notify=$LAB_DIR/no-such-notify"
touch "$LAB_DIR/out/down"
for k in $(seq 1 30); do grep -q "notify $LAB_DIR/no-such-notify down" "$LAB_DIR/lbd.log" && break; sleep 0.1; done
grep -q "notify $LAB_DIR/no-such-notify down .*No such file or directory" "$LAB_DIR/lbd.log" ||
  fail "a missing notify command is not logged"
echo "ok: a notify command that does not exist is logged"
rm "$LAB_DIR/out/down"
lbadm_ -E -t "$V:80" -s rr --health check=none

# --- Text a server sends: a MySQL error greeting with a newline and terminal escapes.
"$PY" - "$LAB_DIR/greeting.bin" "$V" "$R2" <<'PYEOF'
import sys, struct
path, vip, r2 = sys.argv[1:4]
msg = (f"Access denied\nlbd: warning: health: TCP {vip}:3306: real {r2}:3306 is UP (ok): takes new "
       "connections again\x1b[2K\x1b[1A").encode()
payload = b"\xff" + struct.pack("<H", 1045) + b"#28000" + msg
open(path, "wb").write(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
PYEOF
lab_bg "$(lab_real_ns 2)" socat TCP-LISTEN:3306,fork,reuseaddr SYSTEM:"cat $LAB_DIR/greeting.bin"
lab_wait_port "$(lab_real_ns 2)" 3306
cat > "$LAB_DIR/reason.sh" <<'SH'
#!/bin/sh
printf '%s\n' "$4" >> "$(dirname "$0")/out/reason.log"
SH
chmod 755 "$LAB_DIR/reason.sh"
lbadm_ -A -t "$V:3306" -s rr --health "check=mysql,interval=0.3,timeout=0.2,rise=1,fall=1,notify=$LAB_DIR/reason.sh"
lbadm_ -a -t "$V:3306" -r "$R2" -g
for k in $(seq 1 50); do [ -s "$LAB_DIR/out/reason.log" ] && break; sleep 0.1; done
assert_eq 0 "$(grep -c "^lbd: warning: health: TCP $V:3306: real $R2:3306 is UP" "$LAB_DIR/lbd.log" || true)" \
  "no forged \"is UP\" line in lbd's log"
grep -q "real $R2:3306 is DOWN (greeting: error 1045: Access denied\\\\x0albd: warning: .*\\\\x1b\[2K\\\\x1b\[1A)" "$LAB_DIR/lbd.log" ||
  fail "the DOWN line does not show the escaped text: $(grep "$R2:3306" "$LAB_DIR/lbd.log")"
echo "ok: the DOWN line shows the server's text escaped"
health=$(lbadm_ --lbd-health)
case "$health" in *$'\x1b'*) fail "--lbd-health prints a terminal escape" ;; esac
grep -q 'Access denied\\x0albd' <<< "$health" || fail "--lbd-health: $health"
echo "ok: --lbd-health shows the text escaped, no escape byte"
assert_eq 1 "$(wc -l < "$LAB_DIR/out/reason.log")" "the notify command gets the reason as one line"
grep -q 'Access denied\\x0albd' "$LAB_DIR/out/reason.log" || fail "notify reason: $(cat "$LAB_DIR/out/reason.log")"
grep -q $'\x1b' "$LAB_DIR/out/reason.log" && fail "the notify command got a terminal escape"
echo "ok: the notify command gets the text escaped"
lbadm_ -D -t "$V:3306"

# --- Control socket.
kill -STOP "$LAB_LBD_PID"
t0=$(date +%s)
expect_fail 2 "did not answer within 2 s" "lbadm against a stopped lbd" -- env LBADM_TIMEOUT=2 \
  ip netns exec "$LAB_DIRECTOR" "$LBADM_BIN" --socket "$LAB_SOCKET" -L -n
kill -CONT "$LAB_LBD_PID"
[ $(( $(date +%s) - t0 )) -le 5 ] || fail "lbadm waited more than its timeout"
# hold_idle N: N control clients that connect and never send a request, held until
# release_idle (IDLE is the holder's PID).
hold_idle() {
  rm -f "$LAB_DIR/idle.ready" "$LAB_DIR/idle.stop"
  in_ns "$LAB_DIRECTOR" "$PY" - "$LAB_SOCKET" "$LAB_DIR/idle.ready" "$LAB_DIR/idle.stop" "$1" <<'PYEOF' &
import socket, sys, os, time
path, ready, stop, n = sys.argv[1:5]
held = []
for i in range(int(n)):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(path); held.append(s)
open(ready, "w").close()
while not os.path.exists(stop): time.sleep(0.05)
PYEOF
  IDLE=$!
  local k
  for k in $(seq 1 50); do [ -e "$LAB_DIR/idle.ready" ] && return 0; sleep 0.1; done
  fail "the idle control clients did not connect"
}
release_idle() { touch "$LAB_DIR/idle.stop"; wait "$IDLE" || true; }
# 32 clients that never send a request: the next is told why; forwarding goes on.
hold_idle 32
sleep 0.2
expect_fail 255 "lbd is serving 32 control clients already" "lbadm beside 32 idle clients" -- lbadm_ -L -n
assert_eq "real1 1
real2 1" "$(count_answers 2)" "forwarding goes on beside 32 idle control clients"
release_idle
lbadm_ -L -n >/dev/null || fail "lbadm works once the idle clients are gone"
# At the descriptor limit: control clients wait, lbd keeps forwarding (it exited before,
# taking the failed if_nametoindex for a vanished interface).
nfd=$(ls /proc/"$LAB_LBD_PID"/fd | wc -l)
soft=$(prlimit --pid "$LAB_LBD_PID" --nofile --output SOFT --noheadings)
prlimit --pid "$LAB_LBD_PID" --nofile=$((nfd + 2)):
hold_idle 8
sleep 2.5  # past the once-a-second interface check
kill -0 "$LAB_LBD_PID" 2>/dev/null || fail "lbd exited at its descriptor limit"
grep -q "cannot accept a control client: Too many open files" "$LAB_DIR/lbd.log" || fail "EMFILE not logged"
assert_eq "real1 1
real2 1" "$(count_answers 2)" "lbd at its descriptor limit still forwards"
release_idle
prlimit --pid "$LAB_LBD_PID" --nofile="$soft":
sleep 1.2
lbadm_ -L -n >/dev/null || fail "lbadm works again after the descriptor shortage"
echo "ok: control clients are served again"

# --- One lbd per namespace; --socket never deletes a file.
before=$(in_ns "$LAB_DIRECTOR" nft list table netdev lbd)
expect_fail 1 "another lbd is already running in this network namespace" "a second lbd (another socket)" -- \
  ip netns exec "$LAB_DIRECTOR" "$LBD_BIN" --interface eth0 --socket "$LAB_DIR/second.sock" --rules "$LAB_DIR/rules"
assert_eq "$before" "$(in_ns "$LAB_DIRECTOR" nft list table netdev lbd)" "the first lbd's guard table is untouched"
assert_eq off "$(in_ns "$LAB_DIRECTOR" ethtool -k eth0 | awk '/generic-receive-offload/ {print $2}')" "GRO stays off"
assert_eq "real1 1
real2 1" "$(count_answers 2)" "the first lbd forwards (each packet once)"
echo precious > "$LAB_DIR/precious"
lab_stop_lbd
expect_fail 1 "exists and is not a socket" "--socket naming a regular file" -- \
  ip netns exec "$LAB_DIRECTOR" "$LBD_BIN" --interface eth0 --socket "$LAB_DIR/precious" --rules "$LAB_DIR/rules"
assert_eq precious "$(cat "$LAB_DIR/precious")" "the file is kept"

# --- Rules files that must not start lbd empty.
startup() {  # startup RULES: lbd with these rules must refuse to start
  timeout 10 ip netns exec "$LAB_DIRECTOR" "$LBD_BIN" --interface eth0 --socket "$LAB_DIR/s.sock" --rules "$1"
}
mkdir "$LAB_DIR/rules.d"
expect_fail 1 "rules.d: not a regular file" "a directory as the rules file" -- startup "$LAB_DIR/rules.d"
mkfifo "$LAB_DIR/rules.fifo"
expect_fail 1 "rules.fifo: not a regular file" "a FIFO as the rules file (no hang)" -- startup "$LAB_DIR/rules.fifo"
expect_fail 1 "/dev/zero: not a regular file" "/dev/zero as the rules file" -- startup /dev/zero
expect_fail 1 "missing.rules: No such file or directory" "a missing rules file given explicitly" -- startup "$LAB_DIR/missing.rules"
printf '%s\n' "-A -t $V:80 -s rr" > "$LAB_DIR/locked.rules"
chmod 000 "$LAB_DIR/locked.rules"
expect_fail 1 "locked.rules: Permission denied" "an unreadable rules file (no CAP_DAC_OVERRIDE, as under the unit)" -- \
  setpriv --bounding-set=-dac_override,-dac_read_search --inh-caps=-dac_override,-dac_read_search \
  timeout 10 ip netns exec "$LAB_DIRECTOR" "$LBD_BIN" --interface eth0 --socket "$LAB_DIR/s.sock" --rules "$LAB_DIR/locked.rules"
[ -e "$LAB_DIR/s.sock" ] && fail "a refused lbd left its socket"
expect_fail 1 "line 1: -x: missing argument" "--check-rules on a bad file" -- \
  sh -c "printf '%s\n' '-a -t $V:80 -r $R1 -x' > $LAB_DIR/bad.rules; $LBD_BIN --check-rules $LAB_DIR/bad.rules"
assert_eq "$LAB_DIR/locked.rules: 1 rules, 1 services: would load" "$(chmod 600 "$LAB_DIR/locked.rules"; "$LBD_BIN" --check-rules "$LAB_DIR/locked.rules")" \
  "--check-rules on a good file"
expect_fail 1 "missing.rules: No such file or directory" "--check-rules on a missing file" -- "$LBD_BIN" --check-rules "$LAB_DIR/missing.rules"

# --- Reloads: names resolved off the loop; a big file applied without a stall.
printf '%s\n' "-A -t $V:80 -s rr" "-a -t $V:80 -r $R1 -g" "-a -t $V:80 -r $R2 -g" > "$LAB_DIR/rules"
# A name only a dead DNS server could answer (an address of the lab nobody has: the query
# never leaves it), so the resolver waits seconds. ip netns exec gives lbd this file.
[ -d /etc/netns ] || LAB_EXTRA_PATHS+=(/etc/netns)  # removed at the end only if we made it
mkdir -p "/etc/netns/$LAB_DIRECTOR"; LAB_EXTRA_PATHS+=("/etc/netns/$LAB_DIRECTOR")
printf 'nameserver 198.18.0.250\noptions timeout:2 attempts:2\n' > "/etc/netns/$LAB_DIRECTOR/resolv.conf"
lab_lbd
cp "$LAB_DIR/rules" "$LAB_DIR/good.rules"
echo "-a -t $V:80 -r slow-name.lbd-test.invalid:80 -g" >> "$LAB_DIR/rules"
kill -HUP "$LAB_LBD_PID"
sleep 0.3
assert_eq "real1 3
real2 3" "$(count_answers 6)" "forwarding goes on while the reload waits for a name"
grep -q "reload: .*running rules kept" "$LAB_DIR/lbd.log" &&
  fail "the reload ended before the requests did: the name was not slow, the test proves nothing"
echo "ok: the reload was still waiting for the name meanwhile"
for k in $(seq 1 300); do grep -q "reload: .*running rules kept" "$LAB_DIR/lbd.log" && break; sleep 0.1; done
grep -q "reload: .*line 4: illegal real server address\[:port\] specified: \`slow-name.lbd-test.invalid:80'; running rules kept" "$LAB_DIR/lbd.log" ||
  fail "the unresolvable name did not fail the reload: $(tail -3 "$LAB_DIR/lbd.log")"
echo "ok: the reload with a dead name failed and kept the rules"
# 30,000 reals in one service (weight 0 but the two serving ones; tunnel reals behind real1).
in_ns "$LAB_DIRECTOR" ip route add 198.19.0.0/16 via "$R1"
"$PY" - "$V" "$R1" "$R2" > "$LAB_DIR/rules" <<'PYEOF'
import sys
v, r1, r2 = sys.argv[1:4]
print(f"-A -t {v}:80 -s rr")
for i in range(30000):
    print(f"-a -t {v}:80 -r 198.19.{i // 250}.{i % 250 + 1}:80 -i -w 0")
print(f"-a -t {v}:80 -r {r1}:80 -g -w 1")
print(f"-a -t {v}:80 -r {r2}:80 -g -w 1")
PYEOF
mark=$(grep -c "reloaded" "$LAB_DIR/lbd.log" || true)
kill -HUP "$LAB_LBD_PID"
for k in $(seq 1 100); do [ "$(grep -c "reloaded" "$LAB_DIR/lbd.log")" -gt "$mark" ] && break; sleep 0.1; done
grep -q "reloaded $LAB_DIR/rules: 30003 rules, 30000 changes" "$LAB_DIR/lbd.log" ||
  fail "the 30,000-real reload: $(grep -E "reload|rules" "$LAB_DIR/lbd.log" | tail -4)"
echo "ok: a reload adding 30,000 reals applied"
assert_eq 30000 "$(lbadm_ -L -n | grep -c -- '->.*Tunnel')" "30,000 tunnel reals listed"
assert_eq 2 "$(lbadm_ -L -n | grep -c -- '->.*Route')" "beside the 2 DR reals"
assert_eq "real1 1
real2 1" "$(count_answers 2)" "forwarding after the big reload"
cp "$LAB_DIR/good.rules" "$LAB_DIR/rules"; kill -HUP "$LAB_LBD_PID"; sleep 0.5

# --- Many services: the capture filter would be too large; a new VIP is still captured.
"$PY" - > "$LAB_DIR/many.rules" <<'PYEOF'
for i in range(3000):
    print(f"-A -t 198.19.{i // 250}.{i % 250 + 1}:80 -s rr")
PYEOF
lbadm_ -R < "$LAB_DIR/many.rules"
assert_eq 1 "$(counter capture_broad_filters)" "3,001 services: the broad capture filter"
lbadm_ -A -t 198.18.0.101:80 -s rr
lbadm_ -a -t 198.18.0.101:80 -r "$R1" -g
in_ns "$(lab_real_ns 1)" ip addr add 198.18.0.101/32 dev lo
assert_eq real1 "$(in_ns "$LAB_CLIENT" curl -s -m 3 http://198.18.0.101/)" "a VIP added after 3,000 services is served"
assert_eq "real1 1
real2 1" "$(count_answers 2)" "and the first VIP still is"
