#!/usr/bin/env bash
# lbd-decap as an attacker meets it. Topology: the lab's segment; real1 runs lbd-decap for
# the VIP, allowing the director only; the client plays the attacker (scapy frames).
#   - no --allow-from (and no --allow-any): lbd-decap refuses to start;
#   - IPIP from the client with a spoofed inner source, IPIP sent to the segment's
#     broadcast address (outer source forged as the director), and IPIP in IPIP: none
#     reaches real1's stack (nothing on lbdtun0), each counted; a genuine tunnelled request
#     from lbd still is answered;
#   - sysctls: with a strict all.rp_filter, only lbdtun0 is relaxed (eth0 strict by
#     itself); after SIGKILL the next lbd-decap restores what the killed one had changed,
#     and a clean stop leaves every value as it was before the first start.
. "$(dirname "$0")/common.sh"
: "${LBD_DECAP_BIN:?set LBD_DECAP_BIN to the lbd-decap binary (ctest does)}"
PY=/usr/bin/python3
lab_init
lab_create 1
R1=$(lab_real_ns 1)
RIP=$(lab_real_ip 1)
STATE=$LAB_DIR/decap-state

# No trusted source named: refused, nothing changed.
set +e
out=$(in_ns "$R1" "$LBD_DECAP_BIN" --vip "$LAB_VIP" --state-dir "$STATE" 2>&1); rc=$?
set -e
assert_eq 2 "$rc" "lbd-decap without --allow-from exits 2"
case "$out" in *"--allow-from is required"*) echo "ok: it says --allow-from is required" ;;
  *) fail "unexpected message: $out" ;; esac
in_ns "$R1" ip link show lbdtun0 >/dev/null 2>&1 && fail "lbdtun0 exists after the refusal"

sysctl_() { in_ns "$R1" cat "/proc/sys/net/ipv4/conf/$1"; }
in_ns "$R1" sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.eth0.rp_filter=0 \
  net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.arp_ignore=0 net.ipv4.conf.all.arp_announce=0
before=$(for k in all/rp_filter eth0/rp_filter default/rp_filter all/arp_ignore all/arp_announce; do
  echo "$k=$(sysctl_ $k)"; done)

start_decap() {
  ip netns exec "$R1" "$LBD_DECAP_BIN" --vip "$LAB_VIP" --allow-from "$LAB_DIRECTOR_IP" \
    --state-dir "$STATE" </dev/null >>"$LAB_DIR/decap.log" 2>&1 &
  DECAP_PID=$!
  LAB_PIDS+=("$DECAP_PID")
  local k
  for k in $(seq 1 100); do
    in_ns "$R1" ip -br addr show dev lbdtun0 2>/dev/null | grep -q "$LAB_VIP/32" && return 0
    sleep 0.05
  done
  cat "$LAB_DIR/decap.log" >&2; fail "lbd-decap did not come up"
}
start_decap
assert_eq 0 "$(sysctl_ all/rp_filter)" "all.rp_filter no longer forces strict mode"
assert_eq 1 "$(sysctl_ eth0/rp_filter)" "eth0 is strict by itself"
assert_eq 1 "$(sysctl_ default/rp_filter)" "interfaces made later are strict"
assert_eq 0 "$(sysctl_ lbdtun0/rp_filter)" "only lbdtun0 is relaxed"
ip netns exec "$R1" socat TCP-LISTEN:80,fork,reuseaddr SYSTEM:'echo real1' </dev/null >/dev/null 2>&1 &
LAB_PIDS+=($!)
lab_wait_port "$R1" 80

start_tcpdump "$R1" lbdtun0 "$LAB_DIR/tun.pcap"
CMAC=$(in_ns "$LAB_CLIENT" cat /sys/class/net/eth0/address)
RMAC=$(in_ns "$R1" cat /sys/class/net/eth0/address)
in_ns "$LAB_CLIENT" "$PY" - "$CMAC" "$RMAC" "$RIP" "$LAB_VIP" "$LAB_DIRECTOR_IP" <<'PYEOF'
import sys
from scapy.all import Ether, IP, TCP, sendp, conf
conf.verb = 0
cmac, rmac, rip, vip, director = sys.argv[1:6]
inner = IP(src="198.19.7.7", dst=vip) / TCP(sport=4444, dport=80, flags="S")
# 1. From the client itself (not a director): a spoofed inner source.
sendp(Ether(src=cmac, dst=rmac) / IP(src="198.18.0.1", dst=rip, proto=4) / inner, iface="eth0", count=3)
# 2. To the segment's broadcast address, the outer source forged as the director's.
sendp(Ether(src=cmac, dst="ff:ff:ff:ff:ff:ff") / IP(src=director, dst="198.18.0.255", proto=4) / inner,
      iface="eth0", count=3)
# 3. IPIP in IPIP, outer source forged as the director's.
sendp(Ether(src=cmac, dst=rmac) / IP(src=director, dst=rip, proto=4) /
      IP(src=director, dst=rip, proto=4) / inner, iface="eth0", count=3)
PYEOF
sleep 0.5
kill -USR1 "$DECAP_PID"
sleep 0.3
stop_tcpdump "$TCPDUMP_PID"
assert_eq 0 "$(pcap_count "$LAB_DIR/tun.pcap")" "no forged packet reached real1's stack on lbdtun0"
counters=$(grep "delivered" "$LAB_DIR/decap.log" | tail -1)
for want in "delivered 0" "source_not_allowed 3" "not_to_this_host 3" "nested_tunnel 3"; do
  case "$counters" in *"$want"*) echo "ok: lbd-decap counted $want" ;;
    *) fail "lbd-decap counters: expected $want in [$counters]" ;; esac
done

# The real thing still works: lbd tunnels a request to real1.
lab_lbd
lbadm_ -A -t "$LAB_VIP:80" -s rr
lbadm_ -a -t "$LAB_VIP:80" -r "$RIP" -i
assert_eq real1 "$(in_ns "$LAB_CLIENT" timeout 5 socat -t 2 - "TCP:$LAB_VIP:80" </dev/null)" "a connection tunnelled by lbd is answered"

# Forged "fragmentation needed, MTU 88" about tunnel packets: one quoting an outer header
# lbd did not send (another source), one quoting lbd's address but no connection. Neither
# lowers the tunnel's path MTU (it was applied to the real for 10 minutes, for everyone).
DMAC=$(director_mac)
CPORT=$(lbadm_ -L -n -c | awk '$4 ~ /^198.18.0.1:/ {split($4, a, ":"); print a[2]; exit}')
[ -n "$CPORT" ] || fail "no connection listed: $(lbadm_ -L -n -c)"
in_ns "$LAB_CLIENT" "$PY" - "$CMAC" "$DMAC" "$LAB_DIRECTOR_IP" "$RIP" "$LAB_VIP" "$CPORT" <<'PYEOF'
import sys
from scapy.all import Ether, IP, ICMP, TCP, sendp, conf
conf.verb = 0
cmac, dmac, director, rip, vip, cport = sys.argv[1:7]
def frag_needed(outer_src, sport):
    quote = IP(src=outer_src, dst=rip, proto=4, flags="DF") / IP(src="198.18.0.1", dst=vip, flags="DF") / TCP(sport=sport, dport=80, flags="A")
    return Ether(src=cmac, dst=dmac) / IP(src="198.18.0.1", dst=director) / ICMP(type=3, code=4, nexthopmtu=88) / bytes(quote)[:48]
sendp(frag_needed("198.18.0.66", int(cport)), iface="eth0", count=2)  # the live connection's
sendp(frag_needed(director, 40001), iface="eth0", count=2)
PYEOF
sleep 0.3
counter() { lbadm_ --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
assert_eq 2 "$(counter drop_pmtu_not_ours)" "frag-needed about a live connection, quoting another outer source: dropped, counted"
assert_eq 2 "$(counter drop_icmp_no_connection)" "frag-needed about no connection: dropped, counted"
assert_eq 0 "$(counter tunnel_pmtu_updates)" "the tunnel's path MTU is unchanged"
head -c 1300 /dev/urandom | base64 -w0 | head -c 1400 > "$LAB_DIR/big.req"
assert_eq real1 "$(in_ns "$LAB_CLIENT" timeout 5 socat -t 2 - "TCP:$LAB_VIP:80" < "$LAB_DIR/big.req")" \
  "a 1400-byte request still crosses the tunnel whole"
assert_eq 0 "$(counter icmp_frag_needed_sent)" "and lbd sent no frag-needed to the client"

# Killed: the values it set stay behind; the next start restores them first.
kill -KILL "$DECAP_PID"; wait "$DECAP_PID" 2>/dev/null || true
assert_eq 0 "$(sysctl_ all/rp_filter)" "after SIGKILL the changed value is still there"
start_decap
grep -q "restored 5 sysctl(s) a killed lbd-decap had changed" "$LAB_DIR/decap.log" ||
  fail "the restart did not restore the killed instance's sysctls: $(tail -3 "$LAB_DIR/decap.log")"
echo "ok: the restart restored the killed instance's 5 sysctls"
kill -TERM "$DECAP_PID"; wait "$DECAP_PID" 2>/dev/null || true
after=$(for k in all/rp_filter eth0/rp_filter default/rp_filter all/arp_ignore all/arp_announce; do
  echo "$k=$(sysctl_ $k)"; done)
assert_eq "$before" "$after" "every sysctl is as it was before the first start"
[ -e "$STATE" ] && fail "the state directory is left after a clean stop"
echo "ok: the state directory is gone after a clean stop"
