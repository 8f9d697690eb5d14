#!/usr/bin/env bash
# IPv6 firewall-mark services (-f N -6): the operator's ip6tables mangle rules mark the
# traffic, lbd takes the marked packets through its NFQUEUE from ip6tables chains of its own.
#
#   clients (2001:db8::51-56) ── bridge ── director 2001:db8::2, VIPs on eth0; ip6tables:
#       -d V6  -p tcp --dports 80,443 MARK 1 → FWM 1 IPv6 (DR, rr, -p 60)
#       -d V6B -p tcp --dport 8080   MARK 2 → FWM 2 IPv6 (NAT66, port kept)
#   real1, real2 (2001:db8::11, ::12): DR, V6 on lo, nginx on 80 and 443
#   real3 (2001:db8::13/128): NAT66, its routes through the director, nginx on 8080
#
# 80+443 under one persistence over IPv6: each client's requests to either port reach one
# real and the clients spread over both; NAT66 through the queue both ways, a 20 MB download
# intact; ipvsadm's listings and -S (FWM  1 IPv6, -f 1 -6) and -S | -C | -R; iptables
# (IPv4) never touched; lbd's ip6tables chains gone at exit, ip6tables as it was.
. "$(dirname "$0")/common.sh"
lab_init
V6=2001:db8::100
V6B=2001:db8::101
D6=2001:db8::2
R1=2001:db8::11
R2=2001:db8::12
R3=2001:db8::13
lab_create 3
lab_v6addr "$LAB_DIRECTOR" "$D6/64"
for i in 1 2; do
  ns=$(lab_real_ns "$i")
  lab_v6addr "$ns" "2001:db8::1$i/64"
  lab_v6addr "$ns" "$V6/128" lo
  lab_nginx "$i" 80 "listen [::]:80; listen [::]:443;"
done
ns3=$(lab_real_ns 3)
lab_v6addr "$ns3" "$R3/128"
in_ns "$ns3" ip -6 route add "$D6" dev eth0
in_ns "$ns3" ip -6 route add default via "$D6" dev eth0
lab_nginx 3 8080 "listen [::]:8080;"
head -c 20971520 /dev/urandom > "$LAB_DIR/nginx3/html/big"
for i in 1 2; do lab_wait_port "$(lab_real_ns "$i")" 443; done
lab_wait_port "$ns3" 8080

# The director holds the VIPs (its kernel answers their solicitations), and the operator marks.
lab_v6addr "$LAB_DIRECTOR" "$V6/128"
lab_v6addr "$LAB_DIRECTOR" "$V6B/128"
in_ns "$LAB_DIRECTOR" ip6tables -w -t mangle -A PREROUTING -d "$V6/128" -p tcp -m multiport --dports 80,443 \
  -j MARK --set-mark 1
in_ns "$LAB_DIRECTOR" ip6tables -w -t mangle -A PREROUTING -d "$V6B/128" -p tcp --dport 8080 -j MARK --set-mark 2
MANGLE6_BEFORE=$(in_ns "$LAB_DIRECTOR" ip6tables -w -t mangle -S)
IPV4_BEFORE=$(in_ns "$LAB_DIRECTOR" nft list ruleset | grep -c "table ip mangle" || true)
CLIENTS=()
for k in 51 52 53 54 55 56; do
  lab_v6addr "$LAB_CLIENT" "2001:db8::$k/64"
  CLIENTS+=("2001:db8::$k")
done

lab_lbd
lbadm_ -A -f 1 -6 -s rr -p 60
lbadm_ -a -f 1 -6 -r "$R1" -g
lbadm_ -a -f 1 -6 -r "$R2" -g
lbadm_ -A -f 2 -6 -s rr
lbadm_ -a -f 2 -6 -r "$R3" -m
rules6=$(in_ns "$LAB_DIRECTOR" ip6tables -w -t mangle -S)
grep -q -- "-A LBD_FWMARK -m mark --mark 0x1 -j NFQUEUE --queue-num" <<< "$rules6" || fail "ip6tables: $rules6"
grep -q -- "-A LBD_FWMARK_NAT -s $R3/128 -p tcp -j NFQUEUE" <<< "$rules6" || fail "ip6tables: $rules6"
grep -q -- "-A LBD_FWMARK -p ipv6-icmp -m icmp6 --icmpv6-type 2 -j NFQUEUE" <<< "$rules6" || fail "ip6tables: $rules6"
echo "ok: lbd's chains in ip6tables' mangle table (the marks, the NAT66 real's replies, ICMPv6 errors)"
assert_eq "$IPV4_BEFORE" "$(in_ns "$LAB_DIRECTOR" nft list ruleset | grep -c "table ip mangle" || true)" \
  "no IPv4 firewall-mark service: iptables' (IPv4) tables untouched"

# Each client: 80, 443, 80, 443: one real for all four.
declare -A per_real
for c in "${CLIENTS[@]}"; do
  seen=""
  for port in 80 443 80 443; do
    got=$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 3 --interface "$c" "http://[$V6]:$port/") || got=FAILED
    seen+="$got "
  done
  first=${seen%% *}
  [ "$seen" = "$first $first $first $first " ] || fail "client $c: 80 and 443 reached different reals: $seen"
  [ "$first" = real1 ] || [ "$first" = real2 ] || fail "client $c: $seen"
  per_real[$first]=$(( ${per_real[$first]:-0} + 1 ))
done
echo "ok: each of ${#CLIENTS[@]} IPv6 clients reaches one real on 80 and 443 (FWM 1 IPv6 persistence)"
assert_eq "3+3" "${per_real[real1]:-0}+${per_real[real2]:-0}" "the clients spread over both reals (rr per template)"
conns=$(lbadm_ -L -n -c)
templ=$(grep -c "^IP  .* NONE  *\[2001:db8::5[1-6]\]:0 *\[0:1::\]:0 " <<< "$conns") || true
assert_eq 6 "$templ" "-L -n -c: one persistence template per client (the client:0, the mark as IPVS writes it: 0:1::)"

want=$(sha256sum < "$LAB_DIR/nginx3/html/big" | cut -d' ' -f1)
assert_eq "$want" "$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 60 "http://[$V6B]:8080/big" | sha256sum | cut -d' ' -f1)" \
  "20 MB by NAT66 through the queue both ways: sha256 matches"

listing=$(lbadm_ -L -n)
grep -qx "FWM  1 IPv6 rr persistent 60" <<< "$listing" || fail "-L -n: $listing"
grep -qE "^  -> \[$R1\]:0 +Route +1 " <<< "$listing" || fail "-L -n: $listing"
grep -qE "^  -> \[$R3\]:0 +Masq +1 " <<< "$listing" || fail "-L -n: $listing"
echo "ok: -L -n lists FWM  1 IPv6 as ipvsadm does"
saved=$(lbadm_ -S -n)
grep -qx -- "-A -f 1 -6 -s rr -p 60" <<< "$saved" || fail "-S: $saved"
grep -qx -- "-a -f 2 -6 -r \[$R3\]:0 -m -w 1" <<< "$saved" || fail "-S: $saved"
lbadm_ -C
[ "$(in_ns "$LAB_DIRECTOR" ip6tables -w -t mangle -S)" = "$MANGLE6_BEFORE" ] ||
  fail "with no firewall-mark service left, ip6tables is not as it was: $(in_ns "$LAB_DIRECTOR" ip6tables -w -t mangle -S)"
echo "ok: the last IPv6 firewall-mark service gone: lbd's ip6tables chains gone"
echo "$saved" | lbadm_ -R
assert_eq "$saved" "$(lbadm_ -S -n)" "-S | -C | -R round trip of IPv6 firewall-mark rules"
got=$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 3 "http://[$V6]/") || got=FAILED
case "$got" in real1|real2) echo "ok: the restored rules carry traffic ($got)" ;; *) fail "after -R: $got" ;; esac

lab_stop_lbd
assert_eq "$MANGLE6_BEFORE" "$(in_ns "$LAB_DIRECTOR" ip6tables -w -t mangle -S)" "lbd's exit left ip6tables as it was"
