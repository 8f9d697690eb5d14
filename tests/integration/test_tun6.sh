#!/usr/bin/env bash
# TUN with IPv6, end to end: the families IPVS tunnels (IPv6 in IPv6, IPv4 in IPv6, IPv6 in
# IPv4) over IPIP, GUE and GRE, to real servers running lbd-decap (this kernel has no sit,
# ip6_tunnel, ip6_gre or fou module) with real nginx, curl and socat over IPv6:
#
#   client    198.18.0.1   2001:db8::1    ─┐
#   director  198.18.0.2   2001:db8::2     │ bridge; no VIP on any interface of the director
#   real1-3   198.18.0.1x  2001:db8::1x    │ lbd-decap: VIPs on lbdtun0, IPv6 and IPv4 tunnels
#   router    2001:db8::fe  ─ MTU 1400 ─ real4 2001:db8:2::4 (behind it)
#
#   [2001:db8::100]:80  real1 IPv6-in-IPv6 IPIP, real2 GUE (no checksum), real3 GRE (checksum)
#   [2001:db8::100]:7   real1 (socat echo): uploads need the tunnel's Packet Too Big
#   198.18.0.100:80     real1, real2 by IPv4 in IPv6 (IPIP, GRE)
#   [2001:db8::101]:80  real1 by IPv6 in IPv4 (198.18.0.11), and :7 for uploads
#   [2001:db8::102]:80  real4, behind the router: its Packet Too Big relayed to the client
#
# Checks: requests spread over the three tunnel kinds; each SYN leaves lbdtun0 as the client
# sent it; a 50 MB download over each family pair with sha256 compared; 3 MB round trips
# byte for byte (the client learns the tunnel's MTU from lbd's Packet Too Big); pings of
# 1500 bytes told the exact tunnel MTU, smaller ones answered by the real; the router's
# Packet Too Big (1400) reaching the client as 1360; a 1280-byte datagram through a tunnel
# narrower than that (outer fragments); listings and -S | -C | -R with IPv6 tunnel reals.
. "$(dirname "$0")/common.sh"
: "${LBD_DECAP_BIN:?set LBD_DECAP_BIN to the lbd-decap binary (ctest does)}"
lab_init
V6=2001:db8::100
V6B=2001:db8::101
V6C=2001:db8::102
C6=2001:db8::1
D6=2001:db8::2
head -c 52428800 /dev/urandom > "$LAB_DIR/big"
lab_create 3
lab_v6addr "$LAB_CLIENT" "$C6/64"
lab_v6addr "$LAB_DIRECTOR" "$D6/64"
LAB_DECAP_OPTS="--allow-from $D6/128 --gue-port 6080"
for i in 1 2 3; do
  ns=$(lab_real_ns "$i")
  lab_v6addr "$ns" "2001:db8::1$i/64"
  lab_tun_real "$i" "$LAB_VIP" "$V6" "$V6B"
  lab_nginx "$i" 80 "listen [::]:80;"
  lab_bg "$ns" socat TCP6-LISTEN:7,fork,reuseaddr EXEC:cat
done

# real4 behind a router whose far link has MTU 1400.
ROUTER=lbrt$LAB_ID
REAL4=$(lab_real_ns 4)
ip netns add "$ROUTER"; LAB_EXTRA_NS+=("$ROUTER")
ip netns add "$REAL4"; LAB_REALS+=("$REAL4")
lab_link "$ROUTER" eth0 198.18.0.254/24
lab_v6addr "$ROUTER" 2001:db8::fe/64
ip link add r4 netns "$ROUTER" mtu 1400 type veth peer name eth0 netns "$REAL4" mtu 1400
lab_v6addr "$ROUTER" 2001:db8:2::1/64 r4
in_ns "$ROUTER" ip link set r4 up
in_ns "$ROUTER" sysctl -qw net.ipv6.conf.all.forwarding=1
lab_v6addr "$REAL4" 2001:db8:2::4/64
in_ns "$REAL4" ip link set eth0 up
in_ns "$REAL4" ip link set lo up
in_ns "$REAL4" ip -6 route add default via 2001:db8:2::1
in_ns "$LAB_DIRECTOR" ip -6 route add 2001:db8:2::/64 via 2001:db8::fe
LAB_DECAP_OPTS="--allow-from $D6/128" lab_tun_real 4 "$V6C"
lab_nginx 4 80 "listen [::]:80;"
lab_bg "$REAL4" socat TCP6-LISTEN:7,fork,reuseaddr EXEC:cat
for i in 1 2 3 4; do lab_wait_port "$(lab_real_ns "$i")" 80; done
for i in 1 2 3 4; do lab_wait_port "$(lab_real_ns "$i")" 7; done
for i in 1 2 3 4; do
  in_ns "$(lab_real_ns "$i")" ip -br addr show dev lbdtun0 | grep -q "2001:db8::10[0-2]/128" ||
    fail "lbd-decap in real$i has no IPv6 VIP on lbdtun0: $(in_ns "$(lab_real_ns "$i")" ip -br addr show dev lbdtun0)"
done
echo "ok: lbd-decap holds the IPv6 VIPs (/128) on its TUN device"

# Full checksums from the client, so frames can be compared.
in_ns "$LAB_CLIENT" ethtool -K eth0 tx off >/dev/null
lab_lbd
R=(x 2001:db8::11 2001:db8::12 2001:db8::13)
lbadm_ -A -t "[$V6]:80" -s rr
lbadm_ -a -t "[$V6]:80" -r "[${R[1]}]:80" -i
lbadm_ -a -t "[$V6]:80" -r "[${R[2]}]:80" -i --tun-type gue --tun-port 6080 --tun-nocsum
lbadm_ -a -t "[$V6]:80" -r "[${R[3]}]:80" -i --tun-type gre --tun-csum
lbadm_ -A -t "[$V6]:7" -s rr
lbadm_ -a -t "[$V6]:7" -r "[${R[1]}]:7" -i
lbadm_ -A -t "$LAB_VIP:80" -s rr
lbadm_ -a -t "$LAB_VIP:80" -r "[${R[1]}]:80" -i
lbadm_ -a -t "$LAB_VIP:80" -r "[${R[2]}]:80" -i --tun-type gre --tun-nocsum
lbadm_ -A -t "[$V6B]:80" -s rr
lbadm_ -a -t "[$V6B]:80" -r "$(lab_real_ip 1):80" -i
lbadm_ -A -t "[$V6B]:7" -s rr
lbadm_ -a -t "[$V6B]:7" -r "$(lab_real_ip 1):7" -i
lbadm_ -A -t "[$V6C]:80" -s rr
lbadm_ -a -t "[$V6C]:80" -r "[2001:db8:2::4]:80" -i
lbadm_ -A -t "[$V6C]:7" -s rr
lbadm_ -a -t "[$V6C]:7" -r "[2001:db8:2::4]:7" -i
for k in $(seq 1 100); do
  [ "$(grep -c "real server 2001:db8:[:0-9]* is at" "$LAB_DIR/lbd.log")" -ge 4 ] && break
  sleep 0.1
done

get() {  # get URL [curl options...]: the body, or FAILED
  local url=$1; shift
  in_ns "$LAB_CLIENT" curl -g -s -m 5 "$@" "$url" || echo FAILED
}
answers() {  # answers N URL: "realX count" pairs
  local n=$1 url=$2 k
  for k in $(seq 1 "$n"); do get "$url"; done | sort | uniq -c | awk '{print $2, $1}' | tr '\n' ' '
}

echo6() {  # echo6 TARGET WHAT: a 3 MB round trip to TARGET:7, byte for byte
  in_ns "$LAB_CLIENT" timeout 30 socat -t 5 -b 65536 - "TCP6:[$1]:7" < "$LAB_DIR/payload" > "$LAB_DIR/echo" 2>/dev/null || true
  cmp -s "$LAB_DIR/payload" "$LAB_DIR/echo" || fail "3 MB round trip to [$1]:7 $2 differs ($(stat -c %s "$LAB_DIR/echo") bytes back)"
  echo "ok: 3 MB TCP round trip to [$1]:7 $2, byte for byte"
}
counter() { lbadm_ --lbd-counters | awk -v n="$1" '$1 == n {print $2}'; }

# IPv6 in IPv6 over IPIP, GUE and GRE: each SYN leaves the real's lbdtun0 as the client sent it.
syns="ip6 and tcp dst port 80 and ip6[53] & 2 != 0"
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/client.pcap" "$syns"
cdump=$TCPDUMP_PID
dumps=()
for i in 1 2 3; do
  start_tcpdump "$(lab_real_ns "$i")" lbdtun0 "$LAB_DIR/inner$i.pcap" "$syns"
  dumps+=("$TCPDUMP_PID")
  start_tcpdump "$(lab_real_ns "$i")" eth0 "$LAB_DIR/outer$i.pcap" "ip6 and src host $D6"
  dumps+=("$TCPDUMP_PID")
done
assert_eq "real1 2 real2 2 real3 2 " "$(answers 6 "http://[$V6]/")" "IPv6 in IPv6: 6 requests rr over IPIP, GUE and GRE reals"
stop_tcpdump "$cdump"
for p in "${dumps[@]}"; do stop_tcpdump "$p"; done
sent=$(pcap_hex "$LAB_DIR/client.pcap" | sort)
recv=$(for i in 1 2 3; do pcap_hex "$LAB_DIR/inner$i.pcap"; done | sort)
[ "$(wc -l <<< "$sent")" = 6 ] || fail "expected 6 SYNs at the client: $sent"
assert_eq "$sent" "$recv" "each IPv6 SYN leaves lbdtun0 exactly as the client sent it"
# The outer headers as IPVS builds them: next header 41 (IPIP), UDP to 6080 (GUE), 47 (GRE).
tcpdump -r "$LAB_DIR/outer1.pcap" -n 2>/dev/null | grep -q "IP6 $D6 > ${R[1]}: IP6 $C6" ||
  fail "real1's outer packets are not IPv6-in-IPv6: $(tcpdump -r "$LAB_DIR/outer1.pcap" -n 2>/dev/null | head -3)"
tcpdump -r "$LAB_DIR/outer2.pcap" -n 2>/dev/null | grep -q "$D6\.[0-9]* > ${R[2]}\.6080: UDP" ||
  fail "real2's outer packets are not GUE to 6080: $(tcpdump -r "$LAB_DIR/outer2.pcap" -n 2>/dev/null | head -3)"
tcpdump -r "$LAB_DIR/outer3.pcap" -n -v 2>/dev/null | grep -q "GREv0, Flags \[checksum present\]" ||
  fail "real3's outer packets are not GRE with a checksum: $(tcpdump -r "$LAB_DIR/outer3.pcap" -n -v 2>/dev/null | head -3)"
echo "ok: the outer packets: IPv6 next header 41, GUE to port 6080, GRE with its checksum"

assert_eq "real1 2 real2 2 " "$(answers 4 "http://$LAB_VIP/")" "IPv4 in IPv6 (IPIP, GRE): 4 requests to the IPv4 VIP"
assert_eq "real1 3 " "$(answers 3 "http://[$V6B]/")" "IPv6 in IPv4: an IPv6 VIP on an IPv4 real"

want=$(sha256sum < "$LAB_DIR/big" | cut -d' ' -f1)
for url in "http://[$V6]/big" "http://$LAB_VIP/big" "http://[$V6B]/big"; do
  assert_eq "$want" "$(in_ns "$LAB_CLIENT" curl -g -s -m 60 "$url" | sha256sum | cut -d' ' -f1)" \
    "50 MB download $url through the tunnel: sha256 matches"
done

head -c 3000000 /dev/urandom > "$LAB_DIR/payload"
for target in "$V6" "$V6B"; do
  for k in 1 2; do echo6 "$target" "through the tunnel ($k)"; done
done
ptb=$(counter icmp_frag_needed_sent)
[ "${ptb:-0}" -ge 1 ] || fail "the uploads drew no Packet Too Big from lbd (icmp_frag_needed_sent $ptb)"
echo "ok: the uploads' 1500-byte packets drew Packet Too Big ($ptb sent)"

# Pings with DF. The client's kernel keeps what it learns of a VIP's path MTU: forgotten
# before each probe (its own namespace's route cache).
probe() {  # probe TARGET SIZE: ping -M do's output
  in_ns "$LAB_CLIENT" ip -6 route flush cache >/dev/null 2>&1 || true
  in_ns "$LAB_CLIENT" ping -6 -M do -s "$2" -c 1 -W 2 "$1" 2>&1 || true
}
told() {  # told TARGET SIZE MTU WHAT: a ping of SIZE with DF is told the path's MTU
  local out; out=$(probe "$1" "$2")
  grep -qi "mtu=$3\|mtu = $3" <<< "$out" || fail "ping -M do -s $2 [$1] ($4): $out"
  echo "ok: $4: told mtu $3"
}
answered() {  # answered TARGET SIZE WHAT: a ping of SIZE with DF gets its reply
  local out; out=$(probe "$1" "$2")
  grep -q " 0% packet loss" <<< "$out" || fail "ping -M do -s $2 [$1] ($3): $out"
  echo "ok: $3: answered"
}
told "$V6B" 1452 1480 "a 1500-byte IPv6 ping into the IPv4 tunnel"
answered "$V6B" 1432 "a 1480-byte IPv6 ping, by the real behind the IPv4 tunnel"
told "$V6C" 1400 1360 "the router's Packet Too Big (1400) about our tunnel, relayed to the client"
answered "$V6C" 1312 "a 1360-byte ping across the router's link"
assert_eq "$(sha256sum < "$LAB_DIR/nginx4/html/blob" | cut -d' ' -f1)" \
  "$(in_ns "$LAB_CLIENT" curl -g -s -m 30 "http://[$V6C]/blob" | sha256sum | cut -d' ' -f1)" \
  "download from the real behind the 1400-byte link"
echo6 "$V6C" "behind the 1400-byte link"

# A path narrower than the tunnel needs: the router's link to real4 down to IPv6's minimum,
# 1280, leaves 1240 inside the tunnel. The router's Packet Too Big about a connection's
# packet is learnt; the client is told 1280 (never less), and its 1280-byte packets go in
# outer IPv6 fragments.
in_ns "$ROUTER" ip link set r4 mtu 1280
in_ns "$REAL4" ip link set eth0 mtu 1280
frag=$(counter tunnel_fragmented)
updates=$(counter tunnel_pmtu_updates)
echo6 "$V6C" "over a 1280-byte path (a 1240-byte tunnel)"
[ "$(counter tunnel_pmtu_updates)" -gt "${updates:-0}" ] || fail "lbd did not learn the 1280-byte path from the router"
[ "$(counter tunnel_fragmented)" -gt "${frag:-0}" ] || fail "no outer fragments for the 1280-byte packets ($frag)"
echo "ok: the router's 1280 learnt; 1280-byte datagrams cross the 1240-byte tunnel in outer IPv6 fragments"
answered "$V6C" 1232 "a 1280-byte ping across the 1240-byte tunnel"
told "$V6C" 1400 1280 "a bigger one, over the 1280 path (never less than 1280)"

listing=$(lbadm_ -L -n)
grep -qE "^  -> \[${R[2]}\]:80 +Tunnel +1 " <<< "$listing" || fail "-L -n: $listing"
grep -qE "^  -> 198\.18\.0\.11:80 +Tunnel +1 " <<< "$(lbadm_ -L -n -t "[$V6B]:80")" || fail "-L -n: $listing"
info=$(lbadm_ -L -n --tun-info -t "[$V6]:80")
grep -qE "^  -> \[${R[2]}\]:80 +Tunnel +gue:6080:-c +1 " <<< "$info" || fail "--tun-info: $info"
grep -qE "^  -> \[${R[3]}\]:80 +Tunnel +gre:\+c +1 " <<< "$info" || fail "--tun-info: $info"
echo "ok: -L -n and --tun-info list the IPv6 tunnel reals as ipvsadm does"
saved=$(lbadm_ -S -n)
grep -qx -- "-a -t \[$V6\]:80 -r \[${R[2]}\]:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum" <<< "$saved" ||
  fail "-S: $saved"
grep -qx -- "-a -t $LAB_VIP:80 -r \[${R[1]}\]:80 -i -w 1 --tun-type ipip" <<< "$saved" || fail "-S: $saved"
grep -qx -- "-a -t \[$V6B\]:80 -r 198.18.0.11:80 -i -w 1 --tun-type ipip" <<< "$saved" || fail "-S: $saved"
lbadm_ -C
echo "$saved" | lbadm_ -R
assert_eq "$saved" "$(lbadm_ -S -n)" "-S | -C | -R round trip of IPv6 tunnel rules"
assert_eq "real1 2 real2 2 real3 2 " "$(answers 6 "http://[$V6]/")" "the restored rules carry traffic"
rc=0; out=$(lbadm_ -a -t "[$V6]:80" -r 198.18.0.12 -g 2>&1) || rc=$?
assert_eq "2:Different address family is allowed only for tunneling servers" "$rc:$out" "a DR real of the other family"
assert_eq "$saved" "$(lbadm_ -S -n)" "the refusal changed nothing"

lab_stop_lbd
in_ns "$LAB_DIRECTOR" nft list tables | grep -q "netdev lbd" && fail "the guard's table outlived lbd"
echo "ok: lbd's exit removed its table"
