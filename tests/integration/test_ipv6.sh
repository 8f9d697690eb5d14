#!/usr/bin/env bash
# IPv6 through lbd, by DR and NAT66, with real nginx, curl and socat over IPv6:
#
#   client   (2001:db8::1, and 2001:db8::1:5 in the same /64) ─┐
#   director (2001:db8::2)                                      ├── bridge
#   real1, real2 (2001:db8::11, ::12): DR, the VIP on lo        │   VIP6 2001:db8::100 (DR)
#   real3 (2001:db8::13/128): NAT, its only route the director ─┘   NAT6 2001:db8::101
#
# No VIP is on an interface of the director: the client finds them by Neighbour
# Solicitation, which lbd answers (a Linux DR real with the VIP on lo answers solicitations
# only for addresses of the interface asked, so it stays silent). Checks: requests spread
# rr over the DR reals and reach the NAT real on its own port; a 50 MB download by each
# method and 3 MB round trips byte for byte; pings
# (the DR VIP's answered by a real, the NAT VIP's by lbd); persistence by a /64 (-M 64);
# the listings in ipvsadm's IPv6 formats (-L -n, -c, -S) and -S | -C | -R; a TCP check
# taking a real down and back; with the VIP also on the director's lo, the guard keeps its
# IPv6 stack from answering (no RST) and requests still reach the reals; ipvsadm's family
# rule; the coexistence matrix's IPv6 cases (the VIP on the director's lo, then on its eth0
# with IPv6 forwarding on: no RST, no ICMPv6 from its stack, no NAT66 real's address at the
# client); --announce-table's /128 routes. (IPv6 tunnels: test_tun6; -f N -6: test_fwmark6.)
. "$(dirname "$0")/common.sh"
lab_init
V6=2001:db8::100
N6=2001:db8::101
C6=2001:db8::1
C6B=2001:db8::1:5
D6=2001:db8::2
R1=2001:db8::11
R2=2001:db8::12
R3=2001:db8::13
head -c 52428800 /dev/urandom > "$LAB_DIR/big"
lab_create 3
lab_v6addr "$LAB_CLIENT" "$C6/64"
lab_v6addr "$LAB_CLIENT" "$C6B/64"
lab_v6addr "$LAB_DIRECTOR" "$D6/64"
for i in 1 2; do
  ns=$(lab_real_ns "$i")
  lab_v6addr "$ns" "2001:db8::1$i/64"
  lab_v6addr "$ns" "$V6/128" lo
done
ns3=$(lab_real_ns 3)
lab_v6addr "$ns3" "$R3/128"
in_ns "$ns3" ip -6 route add "$D6" dev eth0
in_ns "$ns3" ip -6 route add default via "$D6" dev eth0
for i in 1 2; do
  lab_nginx "$i" 80 "listen [::]:80;"
  lab_bg "$(lab_real_ns "$i")" socat TCP6-LISTEN:7,fork,reuseaddr EXEC:cat
done
lab_nginx 3 8080 "listen [::]:8080;"
lab_bg "$ns3" socat TCP6-LISTEN:7,fork,reuseaddr EXEC:cat
for i in 1 2; do lab_wait_port "$(lab_real_ns "$i")" 80; done
lab_wait_port "$ns3" 8080
lab_lbd

lbadm_ -A -t "[$V6]:80" -s rr
lbadm_ -a -t "[$V6]:80" -r "[$R1]:80" -g
lbadm_ -a -t "[$V6]:80" -r "$R2" -g
lbadm_ -A -t "[$V6]:7" -s rr
lbadm_ -a -t "[$V6]:7" -r "$R1" -g
lbadm_ -A -t "[$N6]:80" -s rr
lbadm_ -a -t "[$N6]:80" -r "[$R3]:8080" -m
lbadm_ -A -t "[$N6]:7" -s rr
lbadm_ -a -t "[$N6]:7" -r "[$R3]:7" -m
for k in $(seq 1 100); do
  [ "$(grep -o "real server 2001:db8::1[123] is at" "$LAB_DIR/lbd.log" | sort -u | wc -l)" -ge 3 ] && break
  sleep 0.1
done
grep -q "real server $R3 is at" "$LAB_DIR/lbd.log" || fail "lbd did not resolve the reals' IPv6 neighbours: $(cat "$LAB_DIR/lbd.log")"
echo "ok: lbd resolves its IPv6 reals' MACs"

get6() {  # get6 URL [curl options...]: the body, or FAILED
  local url=$1; shift
  in_ns "$LAB_CLIENT" curl -6 -g -s -m 5 "$@" "$url" || echo FAILED
}
answers6() {  # answers6 N URL [curl options...]: "realX count" lines
  local n=$1 url=$2 k; shift 2
  for k in $(seq 1 "$n"); do get6 "$url" "$@"; done | sort | uniq -c | awk '{print $2, $1}' | tr '\n' ' '
}

assert_eq "real1 3 real2 3 " "$(answers6 6 "http://[$V6]/")" "DR over IPv6: 6 requests, rr over two reals"
in_ns "$LAB_CLIENT" ip -6 neigh show "$V6" | grep -q "lladdr $(in_ns "$LAB_DIRECTOR" cat /sys/class/net/eth0/address)" ||
  fail "the client's neighbour entry for $V6 is not the director's MAC: $(in_ns "$LAB_CLIENT" ip -6 neigh)"
echo "ok: the client found the VIP by a solicitation lbd answered"
assert_eq "real3 4 " "$(answers6 4 "http://[$N6]/")" "NAT66: 4 requests to the NAT real's port 8080"

want=$(sha256sum < "$LAB_DIR/big" | cut -d' ' -f1)
assert_eq "$want" "$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 60 "http://[$V6]/big" | sha256sum | cut -d' ' -f1)" \
  "50 MB download by DR over IPv6: sha256 matches"
assert_eq "$want" "$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 60 "http://[$N6]/big" | sha256sum | cut -d' ' -f1)" \
  "50 MB download by NAT66 (through lbd both ways): sha256 matches"
if [ "${LBD_OFFLOAD:-xdp}" = xdp ]; then  # the XDP flow cache carries IPv6 connections (DR, NAT66)
  fast=$(lbadm_ --lbd-counters | awk '$1 == "offload_packets" {print $2}')
  [ "${fast:-0}" -ge 10000 ] || fail "the XDP program forwarded ${fast:-0} packets of the IPv6 downloads: $(lbadm_ --lbd-counters | grep offload)"
  echo "ok: the XDP flow cache forwarded $fast packets of the IPv6 downloads"
fi

head -c 3000000 /dev/urandom > "$LAB_DIR/payload"
for target in "$V6" "$N6"; do
  in_ns "$LAB_CLIENT" timeout 30 socat -t 5 -b 65536 - "TCP6:[$target]:7" < "$LAB_DIR/payload" > "$LAB_DIR/echo" 2>/dev/null || true
  cmp -s "$LAB_DIR/payload" "$LAB_DIR/echo" || fail "3 MB round trip to [$target]:7 differs ($(stat -c %s "$LAB_DIR/echo") bytes back)"
  echo "ok: 3 MB TCP round trip to [$target]:7 byte for byte"
done

in_ns "$LAB_CLIENT" ping -6 -c 1 -W 2 "$V6" > /dev/null || fail "ping $V6 (answered by a DR real)"
echo "ok: a ping to the DR VIP is answered (by a real)"
replies=$(lbadm_ --lbd-counters | awk '$1 == "echo_replies" {print $2}')
in_ns "$LAB_CLIENT" ping -6 -c 1 -W 2 "$N6" > /dev/null || fail "ping $N6 (answered by lbd)"
[ "$(lbadm_ --lbd-counters | awk '$1 == "echo_replies" {print $2}')" -gt "${replies:-0}" ] || fail "lbd did not answer the NAT VIP's ping"
echo "ok: a ping to the NAT-only VIP is answered by lbd"

# ipvsadm's IPv6 listing: no cut at 33/28, "[addr]:port".
listing=$(lbadm_ -L -n)
grep -qx "TCP  \[$V6\]:80 rr" <<< "$listing" || fail "-L -n service line: $listing"
grep -qE "^  -> \[$R1\]:80 +Route   1      0          [0-9]+ +\$" <<< "$listing" || fail "-L -n (real1): $listing"
grep -qE "^  -> \[$R3\]:8080 +Masq    1      0          [0-9]+ +\$" <<< "$listing" || fail "-L -n (real3): $listing"
echo "ok: -L -n in ipvsadm's IPv6 format"
conns=$(lbadm_ -L -n -c)
grep -qE "^TCP [0-9]{2}:[0-9]{2}  [A-Z_]+ +\[($C6|$C6B)\]:[0-9]+ +\[$V6\]:80 +\[($R1|$R2)\]:80\$" <<< "$conns" ||
  fail "-L -n -c: $conns"
echo "ok: -L -n -c lists IPv6 connections"
# --stats and --rate: ipvsadm's columns after the IPv6 names (no cut); the service's counts
# are its reals' sums (DR: nothing outbound), the fast path's packets folded in.
stats=$(lbadm_ -L -n --stats --exact -t "[$V6]:80")
svc=$(awk -v s="[$V6]:80" '$1 == "TCP" && $2 == s {print $3, $4, $5, $6, $7}' <<< "$stats")
sum=$(awk '$1 == "->" && $2 ~ /^\[/ {c += $3; ip += $4; op += $5; ib += $6; ob += $7} END {print c, ip, op, ib, ob}' <<< "$stats")
[ -n "$svc" ] || fail "--stats has no [$V6]:80 line: $stats"
assert_eq "$svc" "$sum" "--stats: [$V6]:80's Conns InPkts OutPkts InBytes OutBytes are its reals' sums"
read -r conns inpkts outpkts inbytes _ <<< "$svc"
[ "$conns" -ge 7 ] && [ "$inpkts" -gt 0 ] && [ "$outpkts" = 0 ] && [ "$inbytes" -ge $((inpkts * 60)) ] ||
  fail "--stats: $svc (expected the 7 connections made, inbound packets of 60 bytes or more, none outbound)"
rate=$(lbadm_ -L -n --rate -t "[$V6]:80")
grep -qE "^TCP  \[$V6\]:80 +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+\$" <<< "$rate" || fail "--rate: $rate"
echo "ok: --stats and --rate in ipvsadm's IPv6 forms"

# Persistence by a /64: two client addresses of one /64 stick to one real.
lbadm_ -E -t "[$V6]:80" -s rr -p 60 -M 64
grep -qx "TCP  \[$V6\]:80 rr persistent 60 mask 64" <<< "$(lbadm_ -L -n)" || fail "-L -n persistent: $(lbadm_ -L -n)"
first=$(get6 "http://[$V6]/")
for src in "$C6" "$C6B" "$C6" "$C6B"; do
  assert_eq "$first" "$(get6 "http://[$V6]/" --interface "$src")" "from $src: the /64's real ($first)"
done
lbadm_ -E -t "[$V6]:80" -s rr

saved=$(lbadm_ -S -n)
grep -qx -- "-A -t \[$V6\]:80 -s rr" <<< "$saved" || fail "-S: $saved"
grep -qx -- "-a -t \[$V6\]:80 -r \[$R2\]:80 -g -w 1" <<< "$saved" || fail "-S: $saved"
grep -qx -- "-a -t \[$N6\]:80 -r \[$R3\]:8080 -m -w 1" <<< "$saved" || fail "-S: $saved"
lbadm_ -C
echo "$saved" | lbadm_ -R
assert_eq "$saved" "$(lbadm_ -S -n)" "-S | -C | -R round trip of IPv6 rules"
assert_eq "real1 2 real2 2 " "$(answers6 4 "http://[$V6]/")" "the restored rules carry traffic"

# ipvsadm's family rule (with ipvsadm's exit code).
rc=0; out=$(lbadm_ -a -t "[$V6]:80" -r 198.18.0.11 -g 2>&1) || rc=$?
assert_eq "2:Different address family is allowed only for tunneling servers" "$rc:$out" "a DR real of the other family"
assert_eq "$saved" "$(lbadm_ -S -n)" "the refusals changed nothing"

# A TCP check takes real2 down (nginx stopped) and brings it back.
lbadm_ -E -t "[$V6]:80" -s rr --health "check=tcp,interval=0.5,timeout=0.3,rise=1,fall=1"
wait_health() {
  local k
  for k in $(seq 1 50); do
    lbadm_ --lbd-health | grep -E -q -- "-> \[$1\]:80 +$2 " && return 0
    sleep 0.1
  done
  fail "[$1]:80 never became $2: $(lbadm_ --lbd-health)"
}
wait_health "$R2" UP
kill "$(cat "$LAB_DIR/nginx2/nginx.pid")"
wait_health "$R2" DOWN
assert_eq "real1 4 " "$(answers6 4 "http://[$V6]/")" "real2 down by its IPv6 TCP check: real1 takes every request"
lab_bg "$(lab_real_ns 2)" nginx -c "$LAB_DIR/nginx2/nginx.conf" -e "$LAB_DIR/nginx2/error.log"
wait_health "$R2" UP
assert_eq "real1 2 real2 2 " "$(answers6 4 "http://[$V6]/")" "real2 back up"

# The VIP on the director's lo too: its stack would reset the connections; the guard
# keeps the VIP's packets for lbd.
grep -q "$V6 . tcp . 80" <<< "$(in_ns "$LAB_DIRECTOR" nft list set netdev lbd svc6)" ||
  fail "the guard's svc6 set: $(in_ns "$LAB_DIRECTOR" nft list table netdev lbd)"
lab_v6addr "$LAB_DIRECTOR" "$V6/128" lo
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/rst.pcap" "ip6 and ip6[6] = 6 and ip6[53] & 4 != 0"
assert_eq "real1 3 real2 3 " "$(answers6 6 "http://[$V6]/")" "the VIP on the director's lo: requests still reach the reals"
stop_tcpdump "$TCPDUMP_PID"
rsts=$(tcpdump -r "$LAB_DIR/rst.pcap" -n 2>/dev/null | wc -l)
assert_eq 0 "$rsts" "no RST from the director's IPv6 stack"
in_ns "$LAB_DIRECTOR" ip -6 addr del "$V6/128" dev lo

# The rest of the coexistence matrix for IPv6: the VIPs on the director's eth0 (its stack
# answers their solicitations too, and would reset their connections), and IPv6
# forwarding on (the director's stack would route a NAT66 real's replies to the client
# with the real's address). Through all of it: no RST, no ICMPv6 from the director
# (neighbour discovery aside), no packet from a real's address at the client.
in_ns "$LAB_DIRECTOR" sysctl -qw net.ipv6.conf.all.forwarding=1
lab_v6addr "$LAB_DIRECTOR" "$V6/128"
lab_v6addr "$LAB_DIRECTOR" "$N6/128"
dmac=$(in_ns "$LAB_DIRECTOR" cat /sys/class/net/eth0/address)
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/coex6.pcap" "ip6 and ((ip6[6] = 6 and ip6[53] & 4 != 0) or src host $R3 or \
(icmp6 and ether src $dmac and ip6[40] != 135 and ip6[40] != 136))"
assert_eq "real1 3 real2 3 " "$(answers6 6 "http://[$V6]/")" "DR with the VIP on the director's eth0 and forwarding on"
assert_eq "real3 4 " "$(answers6 4 "http://[$N6]/")" "NAT66 with the VIP on the director's eth0 and forwarding on"
stop_tcpdump "$TCPDUMP_PID"
seen=$(tcpdump -r "$LAB_DIR/coex6.pcap" -n -e 2>/dev/null)
[ -z "$seen" ] || fail "RST, ICMPv6 from the director or a packet from the NAT66 real's address at the client: $seen"
echo "ok: no RST, no ICMPv6 from the director's stack, no packet from the NAT66 real's address"
in_ns "$LAB_DIRECTOR" ip -6 addr del "$V6/128" dev eth0
in_ns "$LAB_DIRECTOR" ip -6 addr del "$N6/128" dev eth0
in_ns "$LAB_DIRECTOR" sysctl -qw net.ipv6.conf.all.forwarding=0

lab_stop_lbd
in_ns "$LAB_DIRECTOR" nft list tables | grep -q "netdev lbd" && fail "the guard's table outlived lbd"
echo "ok: lbd's exit removed its table"

# --announce-table: an IPv6 VIP that can take connections is announced as a /128 route
# (beside IPv4's /32s) for a routing daemon to carry; withdrawn when its real goes.
lab_lbd --announce-table 100
lbadm_ -A -t "[$V6]:80" -s rr
lbadm_ -a -t "[$V6]:80" -r "$R1" -g
for k in $(seq 1 50); do
  in_ns "$LAB_DIRECTOR" ip -6 route show table 100 | grep -q "^$V6 dev lbd-announce" && break
  sleep 0.1
done
in_ns "$LAB_DIRECTOR" ip -6 route show table 100 | grep -q "^$V6 dev lbd-announce" ||
  fail "the IPv6 VIP is not announced: $(in_ns "$LAB_DIRECTOR" ip -6 route show table 100)"
echo "ok: the IPv6 VIP announced as $V6/128 in table 100"
lbadm_ -d -t "[$V6]:80" -r "$R1"
for k in $(seq 1 50); do
  in_ns "$LAB_DIRECTOR" ip -6 route show table 100 | grep -q "$V6" || break
  sleep 0.1
done
in_ns "$LAB_DIRECTOR" ip -6 route show table 100 | grep -q "$V6" && fail "the VIP without a real is still announced"
echo "ok: withdrawn when no real can take a connection"
lab_stop_lbd
