#!/usr/bin/env bash
# TUN (-i) end to end: three reals run lbd-decap (this host has no ipip module) and answer
# the client directly. Path MTU on 1500-byte links: `ping -M do -s 1472` gets frag-needed
# with mtu 1480 from the VIP, `-M dont` is carried in fragments of the outer packet, a
# 50 MB download and 3 MB uploads complete byte for byte. A fourth real sits behind a
# router whose far link has MTU 1400: the router's frag-needed about lbd's tunnel packets
# reaches the client as "mtu = 1380". The tunnelled SYNs are the client's, unchanged.
. "$(dirname "$0")/common.sh"
: "${LBD_DECAP_BIN:?set LBD_DECAP_BIN to the lbd-decap binary (ctest does)}"
lab_init
lab_create 3
VIP2=198.18.0.101
head -c 52428800 /dev/urandom > "$LAB_DIR/big"
for i in 1 2 3; do
  ns=$(lab_real_ns "$i")
  lab_tun_real "$i"
  lab_nginx "$i"
  lab_bg "$ns" socat TCP-LISTEN:7,fork,reuseaddr EXEC:cat
  lab_bg "$ns" socat "UDP-RECVFROM:53,bind=$LAB_VIP,fork" EXEC:cat
done

# real4 behind a router: bridge ── router (198.18.0.254 | 198.18.2.1, MTU 1400) ── real4.
ROUTER=lbrt$LAB_ID
REAL4=$(lab_real_ns 4)
ip netns add "$ROUTER"; LAB_EXTRA_NS+=("$ROUTER")
ip netns add "$REAL4"; LAB_REALS+=("$REAL4")
lab_link "$ROUTER" eth0 198.18.0.254/24
ip link add r4 netns "$ROUTER" mtu 1400 type veth peer name eth0 netns "$REAL4" mtu 1400
in_ns "$ROUTER" ip addr add 198.18.2.1/24 dev r4
in_ns "$ROUTER" ip link set r4 up
in_ns "$ROUTER" sysctl -qw net.ipv4.ip_forward=1
in_ns "$REAL4" ip addr add 198.18.2.4/24 dev eth0
in_ns "$REAL4" ip link set eth0 up
in_ns "$REAL4" ip link set lo up
in_ns "$REAL4" ip route add default via 198.18.2.1
in_ns "$LAB_DIRECTOR" ip route add 198.18.2.0/24 via 198.18.0.254
lab_tun_real 4 "$VIP2"
lab_nginx 4
for i in 1 2 3 4; do lab_wait_port "$(lab_real_ns "$i")" 80; done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 7; done

# Full checksums from the client, so frames can be compared (lbd completes offloaded
# partial checksums by design, which changes those two bytes).
in_ns "$LAB_CLIENT" ethtool -K eth0 tx off >/dev/null
lab_lbd
lbadm_ -A -t "$LAB_VIP:80" -s rr
lbadm_ -A -t "$LAB_VIP:7" -s rr
lbadm_ -A -u "$LAB_VIP:53" -s rr
lbadm_ -A -t "$VIP2:80" -s rr
for i in 1 2 3; do
  lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")" -i
  lbadm_ -a -t "$LAB_VIP:7" -r "$(lab_real_ip "$i")" -i
  lbadm_ -a -u "$LAB_VIP:53" -r "$(lab_real_ip "$i")" -i
done
lbadm_ -a -t "$VIP2:80" -r 198.18.2.4 -i

# First, before any traffic taught the client a path MTU for the VIP (after that, its
# kernel fragments big datagrams itself, and lbd does not take IP fragments yet).
in_ns "$LAB_CLIENT" ping -M dont -s 1472 -c 2 -W 2 "$LAB_VIP" >/dev/null ||
  fail "ping -M dont -s 1472 failed (outer fragmentation)"
fragmented=$(lbadm_ --lbd-counters | awk '$1 == "tunnel_fragmented" {print $2}')
[ "${fragmented:-0}" -ge 2 ] || fail "expected the 1500-byte pings without DF fragmented, counter: $fragmented"
echo "ok: 1500-byte packets without DF travel in outer fragments ($fragmented fragmented)"
out=$(in_ns "$LAB_CLIENT" ping -M do -s 1472 -c 1 -W 2 "$LAB_VIP" 2>&1) || true
grep -qi "frag needed and DF set (mtu = 1480)" <<< "$out" || fail "ping -M do -s 1472: $out"
echo "ok: ping -M do -s 1472 VIP: frag needed and DF set (mtu = 1480)"
in_ns "$LAB_CLIENT" ping -M do -s 1452 -c 2 -W 2 "$LAB_VIP" >/dev/null ||
  fail "ping -M do -s 1452 (1480 bytes) through the tunnel failed"
echo "ok: a 1480-byte ping with DF fits the tunnel and is answered by a real"

syns_through_tunnels "through the tunnel"

download_matches "$LAB_DIR/big" "http://$LAB_VIP/big" "50 MB download through the tunnel"

tcp_round_trips 7 "through the tunnel (uploads: path MTU)"
udp_round_trips 53 "through the tunnel"
udp_round_trips 53 "through the tunnel in IP fragments (4 KB)" 3000

# The router's frag-needed about a tunnel packet, relayed by lbd with room for IPIP.
out=$(in_ns "$LAB_CLIENT" ping -M do -s 1400 -c 1 -W 2 "$VIP2" 2>&1) || true
grep -qi "frag needed and DF set (mtu = 1380)" <<< "$out" || fail "ping -M do -s 1400 $VIP2: $out"
echo "ok: a router's frag-needed (mtu 1400) about our tunnel reaches the client as mtu = 1380"
download_matches "$LAB_DIR/nginx4/html/blob" "http://$VIP2/blob" "download from the real behind the 1400-byte link"
head -c 2000000 /dev/urandom > "$LAB_DIR/up"
code=$(in_ns "$LAB_CLIENT" curl -s -m 30 -o /dev/null -w '%{http_code}' --data-binary @"$LAB_DIR/up" "http://$VIP2/blob") || true
[ -n "$code" ] && [ "$code" != 000 ] || fail "2 MB upload towards the real behind the 1400-byte link did not complete"
echo "ok: 2 MB upload through the narrower path completes (HTTP $code)"

listing=$(lbadm_ -L -n -t "$LAB_VIP:80")
grep -q -- "-> $(lab_real_ip 1):80 *Tunnel *1 " <<< "$listing" || fail "-L -n: $listing"
echo "ok: -L -n lists the reals as Tunnel"
saved=$(lbadm_ -S -n | grep -c -- "-i -w 1 --tun-type ipip")
assert_eq 10 "$saved" "-S prints every tunnel real with --tun-type ipip"
