#!/usr/bin/env bash
# Faults of the director's capture interfaces, with nothing lost that need not be. A
# two-armed director: clients and a DR real on eth0 (service A, the lab's VIP), NAT reals on
# eth1 (service B, VIP2), lbd capturing on both.
# - eth1 deleted (a driver reload, a VLAN or bond re-made): lbd keeps serving A, and a
#   connection held through A stays; when eth1 is created again (a new index, the same
#   MAC, as a re-probed NIC has) lbd takes it again within its 1 s look: capture sockets,
#   filters, the nftables guard's chain, GRO off, the fast path; B answers again.
# - eth1 down and up: let go while down, taken again once up (with two workers the kernel
#   would put the fanout members back in another order); B answers again, A throughout.
# - the kernel refusing lbd's frames (ENOBUFS: eth0's qdisc full): counted as
#   drop_inject_failed, nothing stalls, a download completes through it, and every frame
#   lbd took is accounted for (rx = tx + drops - inject failures).
. "$(dirname "$0")/common.sh"
lab_init
lab_create 0
lab_link "$LAB_DIRECTOR" eth1 198.18.1.1/24 br1
R4=lbr4$LAB_ID  # the DR real on eth0's segment
ip netns add "$R4"; LAB_REALS+=("$R4")
lab_link "$R4" eth0 198.18.0.14/24
lab_dr_real 4
lab_nginx 4
for i in 1 2; do
  ns=$(lab_real_ns "$i")
  ip netns add "$ns"; LAB_REALS+=("$ns")
  lab_link "$ns" eth0 "198.18.1.1$i/24" br1
  in_ns "$ns" ip route add default via 198.18.1.1
  lab_offloads_off "$ns" eth0  # no super-frames: every frame lbd takes is one it counts
  lab_nginx "$i" 8080
done
lab_wait_port "$R4" 80
for i in 1 2; do lab_wait_port "$(lab_real_ns "$i")" 8080; done
in_ns "$LAB_DIRECTOR" sysctl -qw net.ipv4.ip_forward=0
VIP2=198.18.0.101
lab_lbd --interface eth1
lbadm_ -A -t "$LAB_VIP:80" -s rr
lbadm_ -a -t "$LAB_VIP:80" -r 198.18.0.14:80 -g
lbadm_ -A -t "$VIP2:80" -s rr
for i in 1 2; do lbadm_ -a -t "$VIP2:80" -r "198.18.1.1$i:8080" -m; done
counter() { lbadm_ --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
answers() {  # answers VIP N: N sequential requests, "realX count" lines
  local k
  for k in $(seq 1 "$2"); do in_ns "$LAB_CLIENT" curl -s -m 2 "http://$1/" || echo FAILED; done |
    sort | uniq -c | awk '{printf "%s %s ", $2, $1}'
}
answers_within() {  # answers_within VIP WANT SECONDS WHAT: until 2 requests give WANT
  local k got=
  for k in $(seq 1 $(($3 * 4))); do
    got=$(answers "$1" 2)
    [ "$got" = "$2" ] && { echo "ok: $4"; return 0; }
    sleep 0.25
  done
  fail "$4: expected [$2], last [$got]"
}
assert_eq "real4 2 " "$(answers "$LAB_VIP" 2)" "service A (DR on eth0) answers"
assert_eq "real1 1 real2 1 " "$(answers "$VIP2" 2)" "service B (NAT to eth1) answers"
MAC1=$(in_ns "$LAB_DIRECTOR" cat /sys/class/net/eth1/address)
INDEX1=$(in_ns "$LAB_DIRECTOR" cat /sys/class/net/eth1/ifindex)

# A connection through A held across the whole fault.
lab_bg "$LAB_CLIENT" socat "TCP:$LAB_VIP:80" EXEC:"sleep 60"
HOLD=${LAB_PIDS[-1]}
sleep 0.3
held() { lbadm_ -L -n -c | grep -c "ESTABLISHED .*198.18.0.14:80" || true; }
assert_eq 1 "$(held)" "a connection held through A"

in_ns "$LAB_DIRECTOR" ip link del eth1
for k in $(seq 1 40); do [ "$(counter interfaces_lost)" = 1 ] && break; sleep 0.05; done
assert_eq 1 "$(counter interfaces_lost)" "eth1 deleted: lbd let it go (interfaces_lost)"
kill -0 "$LAB_LBD_PID" || fail "lbd stopped when eth1 was deleted"
assert_eq "real4 4 " "$(answers "$LAB_VIP" 4)" "eth1 gone: service A still answers"
assert_eq "FAILED 2 " "$(answers "$VIP2" 2)" "eth1 gone: service B's reals are out of reach"
lbadm_ -L -n | grep -q -- "-> 198.18.1.11:8080" || fail "eth1 gone: B's reals should still be listed"
grep -qi "eth1: .*disappeared" "$LAB_DIR/lbd.log" || fail "lbd should log that eth1 disappeared"

# eth1 again: a new veth with the old MAC, on the reals' bridge.
in_ns "$LAB_DIRECTOR" ip link add eth1 address "$MAC1" type veth peer name "sw${LAB_ID}px" netns "$LAB_SW"
in_ns "$LAB_SW" ip link set "sw${LAB_ID}px" master br1 up
in_ns "$LAB_DIRECTOR" ip addr add 198.18.1.1/24 dev eth1
in_ns "$LAB_DIRECTOR" ethtool -K eth1 gro on 2>/dev/null || true  # a new device's default
in_ns "$LAB_DIRECTOR" ip link set eth1 up
INDEX2=$(in_ns "$LAB_DIRECTOR" cat /sys/class/net/eth1/ifindex)
[ "$INDEX2" != "$INDEX1" ] || fail "the new eth1 should have a new index"
answers_within "$VIP2" "real1 1 real2 1 " 3 "eth1 re-created (index $INDEX1 -> $INDEX2): service B answers again"
assert_eq 1 "$(counter interfaces_back)" "lbd took eth1 again (interfaces_back)"
grep -q "eth1 is back (index $INDEX2" "$LAB_DIR/lbd.log" || fail "lbd should log eth1's return"
guard=$(in_ns "$LAB_DIRECTOR" nft list chain netdev lbd guard)
grep -q 'devices = { eth0, eth1 }' <<< "$guard" || fail "the guard should cover the new eth1: $guard"
gro=$(in_ns "$LAB_DIRECTOR" ethtool -k eth1 | awk '$1 == "generic-receive-offload:" {print $2}')
assert_eq off "$gro" "GRO is off on the new eth1"
if [ "$(counter offload)" != off ]; then
  link=$(in_ns "$LAB_DIRECTOR" ip -d link show dev eth1)
  [[ $link == *xdp* ]] || fail "the fast path should be attached to the new eth1: $link"
  echo "ok: the fast path is attached to the new eth1"
fi
head -c 3000000 /dev/urandom > "$LAB_DIR/big"
for i in 1 2; do ln -sf "$LAB_DIR/big" "$LAB_DIR/nginx$i/html/big"; done
want=$(sha256sum < "$LAB_DIR/big" | cut -d' ' -f1)
got=$(in_ns "$LAB_CLIENT" curl -s -m 30 "http://$VIP2/big" | sha256sum | cut -d' ' -f1)
assert_eq "$want" "$got" "3 MB through B on the new eth1"
assert_eq 1 "$(held)" "the connection held through A is still ESTABLISHED"
echo ping | in_ns "$LAB_CLIENT" timeout 3 socat - "TCP:$LAB_VIP:80" >/dev/null 2>&1 || true
kill -0 "$HOLD" || fail "the held connection's client ended"

# Down and up.
in_ns "$LAB_DIRECTOR" ip link set eth1 down
sleep 1.2
assert_eq "real4 2 " "$(answers "$LAB_VIP" 2)" "eth1 down: service A answers"
lost=$(counter interfaces_lost)
[ "$lost" = 2 ] || fail "eth1 down: lbd should let it go (interfaces_lost $lost)"
in_ns "$LAB_DIRECTOR" ip link set eth1 up
answers_within "$VIP2" "real1 1 real2 1 " 5 "eth1 down and up: service B answers again"
assert_eq 2 "$(counter interfaces_back)" "eth1 up: lbd took it again (its fanout groups made anew: members in worker order)"
# Every reply reaches its connection's worker (a NAT reply at the wrong one is an orphan).
for k in 1 2 3; do answers "$VIP2" 2 > /dev/null; done
assert_eq 0 "$(counter drop_orphan_reply)" "eth1 down and up: no NAT reply reached the wrong worker"
kill -0 "$LAB_LBD_PID" || fail "lbd stopped after eth1 went down and up"
kill -TERM "$HOLD"; wait "$HOLD" 2>/dev/null || true

# ENOBUFS: the qdisc on eth0 (where B's replies leave) holds 3 frames; lbd sends its
# batches faster than 20 Mbit/s drain it. lbd forwards every packet itself here (the fast
# path's are not its frames to count).
lab_stop_lbd
lab_lbd --interface eth1 --offload off
lbadm_ -A -t "$LAB_VIP:80" -s rr
lbadm_ -a -t "$LAB_VIP:80" -r 198.18.0.14:80 -g
lbadm_ -A -t "$VIP2:80" -s rr
for i in 1 2; do lbadm_ -a -t "$VIP2:80" -r "198.18.1.1$i:8080" -m; done
in_ns "$LAB_DIRECTOR" tc qdisc add dev eth0 root tbf rate 20mbit burst 3000 limit 4500
before=$(counter drop_inject_failed)
got=$(in_ns "$LAB_CLIENT" curl -s -m 60 "http://$VIP2/big" | sha256sum | cut -d' ' -f1)
assert_eq "$want" "$got" "ENOBUFS: 3 MB through B, with the kernel refusing frames"
after=$(counter drop_inject_failed)
[ "$after" -gt "$before" ] || fail "ENOBUFS: the refused frames should be counted (drop_inject_failed $before -> $after)"
echo "ok: ENOBUFS: $((after - before)) refused frames counted"
assert_eq "real4 2 " "$(answers "$LAB_VIP" 2)" "ENOBUFS: service A answers"
in_ns "$LAB_DIRECTOR" tc qdisc del dev eth0 root
got=$(in_ns "$LAB_CLIENT" curl -s -m 30 "http://$VIP2/big" | sha256sum | cut -d' ' -f1)
assert_eq "$want" "$got" "qdisc gone: 3 MB through B"
sleep 0.5
counters=$(lbadm_ --lbd-counters)
get() { echo "$counters" | awk -v k="$1" '$1 == k {print $2}'; }
drops=$(echo "$counters" | awk '$1 ~ /^drop_/ {s += $2} END {print s}')
rx=$(get rx_frames); tx=$(get tx_frames); inject=$(get drop_inject_failed)
assert_eq "$rx" "$((tx + drops - inject))" "every frame accounted for: rx = tx + drops - inject failures"
kill -0 "$LAB_LBD_PID" || fail "lbd stopped"
