#!/usr/bin/env bash
# Firewall-mark services (-f), the classic LVS way: the operator's iptables mangle rules mark
# the traffic, lbd takes the marked packets through its NFQUEUE.
#
#   clients (9 addresses) ── bridge ── director: VIP, VIP2 on eth0; iptables:
#                                      -d VIP  -p tcp --dports 80,443 MARK 1 → FWM 1 (DR, rr, -p 60)
#                                      -d VIP2 -p tcp --dport 8080   MARK 2 → FWM 2 (NAT, port kept)
#   real1, real2: DR, nginx on 80 and 443      real3: NAT (default route: the director), nginx on 8080
#
# 80+443 under one persistence: each client's requests to either port reach one real, and
# the clients spread over both (rr per template). NAT through the queue both ways, a 20 MB
# download intact. UDP under the same mark, 4 KB datagrams; a client's port unreachable
# about a late DR reply reaches the real. ipvsadm's listings and -S with FWM. A killed lbd leaves its queue rule:
# fail closed (the default), the clients' SYNs are dropped, not answered by the director's
# kernel (which holds the VIP); the next lbd replaces its chains and serves again; its clean
# exit removes them. With --fwmark-fail open, a killed lbd lets the director's stack answer.
. "$(dirname "$0")/common.sh"
lab_init
lab_create 3
VIP2=198.18.0.101
for i in 1 2; do
  lab_dr_real "$i"
  lab_nginx "$i" 80 "listen 443;"
  lab_bg "$(lab_real_ns "$i")" socat -b 65536 "UDP-RECVFROM:53,bind=$LAB_VIP,fork" EXEC:cat
  lab_bg "$(lab_real_ns "$i")" socat -t 3 "UDP-RECVFROM:54,bind=$LAB_VIP,fork" SYSTEM:"sleep 1; cat"
done
lab_nat_real 3
lab_nginx 3 8080
head -c 20971520 /dev/urandom > "$LAB_DIR/nginx3/html/big"
for i in 1 2; do lab_wait_port "$(lab_real_ns "$i")" 443; done
lab_wait_port "$(lab_real_ns 3)" 8080

# The director holds the VIPs (its kernel answers ARP for them), and the operator marks.
in_ns "$LAB_DIRECTOR" ip addr add "$LAB_VIP/32" dev eth0
in_ns "$LAB_DIRECTOR" ip addr add "$VIP2/32" dev eth0
in_ns "$LAB_DIRECTOR" iptables -t mangle -A PREROUTING -d "$LAB_VIP/32" -p tcp -m multiport --dports 80,443 \
  -j MARK --set-mark 1
in_ns "$LAB_DIRECTOR" iptables -t mangle -A PREROUTING -d "$LAB_VIP/32" -p udp -m multiport --dports 53,54 \
  -j MARK --set-mark 1
in_ns "$LAB_DIRECTOR" iptables -t mangle -A PREROUTING -d "$VIP2/32" -p tcp --dport 8080 -j MARK --set-mark 2
MANGLE_BEFORE=$(in_ns "$LAB_DIRECTOR" iptables -w -t mangle -S)
CLIENTS=()
for k in $(seq 51 59); do
  in_ns "$LAB_CLIENT" ip addr add "198.18.0.$k/24" dev eth0
  CLIENTS+=("198.18.0.$k")
done

lab_lbd
assert_eq "$MANGLE_BEFORE" "$(in_ns "$LAB_DIRECTOR" iptables -w -t mangle -S)" \
  "without a firewall-mark service lbd leaves iptables as it was"
R1=$(lab_real_ip 1) R2=$(lab_real_ip 2) R3=$(lab_real_ip 3)
lbadm_ -A -f 1 -s rr -p 60
lbadm_ -a -f 1 -r "$R1" -g
lbadm_ -a -f 1 -r "$R2" -g
lbadm_ -A -f 2 -s rr
lbadm_ -a -f 2 -r "$R3" -m

# Each client: 80, 443, 80, 443: one real for all four.
declare -A per_real
for c in "${CLIENTS[@]}"; do
  seen=""
  for port in 80 443 80 443; do
    got=$(in_ns "$LAB_CLIENT" curl -s -m 3 --interface "$c" "http://$LAB_VIP:$port/") || got=FAILED
    seen+="$got "
  done
  first=${seen%% *}
  [ "$seen" = "$first $first $first $first " ] || fail "client $c: 80 and 443 reached different reals: $seen"
  [ "$first" = real1 ] || [ "$first" = real2 ] || fail "client $c: $seen"
  per_real[$first]=$(( ${per_real[$first]:-0} + 1 ))
done
echo "ok: each of ${#CLIENTS[@]} clients reaches one real on 80 and 443 (FWM 1 persistence)"
# rr over new templates: 9 clients, 5 and 4.
spread="${per_real[real1]:-0}+${per_real[real2]:-0}"
[ "$spread" = "5+4" ] || [ "$spread" = "4+5" ] || fail "clients over the reals: $spread (expected 5+4)"
echo "ok: the clients spread over both reals ($spread)"

conns=$(lbadm_ -L -n -c)
templ=$(echo "$conns" | grep -c "^IP  .* NONE  *198\.18\.0\.5[0-9]:0 *0\.0\.0\.1:0 ") || true
assert_eq 9 "$templ" "-L -n -c: one persistence template per client (IP, the client:0, the mark as 0.0.0.1)"
for port in 80 443; do
  n=$(echo "$conns" | grep -c "^TCP .*$LAB_VIP:$port ") || true
  assert_eq 18 "$n" "-L -n -c: 18 connections to $LAB_VIP:$port"
done

# UDP under the same mark; big datagrams: the port match marks only the first fragment, the
# director's stack reassembles before INPUT and lbd gets the datagram whole, marked.
udp_round_trips 53 "under FWM 1 (UDP)"
udp_round_trips 53 "under FWM 1 in IP fragments (4 KB)" 3000
# 16 KB: once reassembled, larger than any frame lbd handles in place.
for k in 1 2 3; do
  msg="big-$k-$(head -c 12000 /dev/urandom | base64 -w0)"
  back=$(echo "$msg" | in_ns "$LAB_CLIENT" timeout 5 socat -b 65536 -t 2 - "UDP:$LAB_VIP:53") || true
  assert_eq "$msg" "$back" "a 16 KB datagram $k echoed under FWM 1 (reassembled, larger than a frame)"
done

# The client's port unreachable about a late reply (the real answers port 54 after 1 s, the
# client has gone): to the director, which holds the VIP; lbd passes it to the real of the
# connection, as IPVS does. (An ICMP error of the director's own goes to its stack.)
DUMPS=()
for i in 1 2; do start_tcpdump "$(lab_real_ns "$i")" eth0 "$LAB_DIR/icmp$i.pcap" "icmp"; DUMPS+=("$TCPDUMP_PID"); done
echo late | in_ns "$LAB_CLIENT" timeout 5 socat -t 0.2 - "UDP:$LAB_VIP:54,sourceport=45454" >/dev/null 2>&1 || true
sleep 1.5
for p in "${DUMPS[@]}"; do stop_tcpdump "$p"; done
got=$(for i in 1 2; do tcpdump -r "$LAB_DIR/icmp$i.pcap" -n 2>/dev/null; done)
grep -q "$LAB_CLIENT_IP > $LAB_VIP: ICMP $LAB_CLIENT_IP udp port 45454 unreachable" <<< "$got" ||
  fail "expected the client's port unreachable at a real, got: $got"
echo "ok: the client's ICMP error about a fwmark connection reaches its real"

# NAT: real3's replies come back through the queue, rewritten to VIP2.
download_matches "$LAB_DIR/nginx3/html/big" "http://$VIP2:8080/big" "20 MB download through FWM 2 (NAT, both ways through the queue)"

queued=$(lbadm_ --lbd-counters | awk '$1 == "fwmark_queued" {print $2}')
[ "${queued:-0}" -gt 100 ] || fail "fwmark_queued: ${queued:-none} (expected every packet of the requests above)"
echo "ok: --lbd-counters: fwmark_queued $queued"

listing=$(lbadm_ -L -n)
got=$(echo "$listing" | sed -n '4,$p')  # after the version line and the titles
[ "$(echo "$got" | sed -n 1p)" = "FWM  1 rr persistent 60" ] || fail "-L -n (FWM 1): $listing"
grep -qE "^  -> $R1:0 +Route   1      0          [0-9]+ +$" <<< "$got" || fail "-L -n (real1): $listing"
[ "$(echo "$got" | sed -n 4p)" = "FWM  2 rr" ] || fail "-L -n (FWM 2): $listing"
grep -qE "^  -> $R3:0 +Masq    1      0          1 +$" <<< "$got" || fail "-L -n (real3): $listing"
echo "ok: -L -n: FWM 1 and FWM 2 as ipvsadm prints them"
saved=$(lbadm_ -S -n)
assert_eq "-A -f 1 -s rr -p 60
-a -f 1 -r $R1:0 -g -w 1
-a -f 1 -r $R2:0 -g -w 1
-A -f 2 -s rr
-a -f 2 -r $R3:0 -m -w 1" "$saved" "-S -n: ipvsadm's fwmark rules"

# lbd --takeover: the connections, FWM 1's templates and the counters are adopted by their
# marks (with two workers all on worker 0, which reads the queue), and lbd's iptables chains
# stay through the handover: what the clients send meanwhile is dropped, never given to the
# director's stack (it holds the VIPs and would answer with a RST). A 20 MB NAT download
# through FWM 2 goes on across it intact, and no RST reaches the client.
templates() { lbadm_ -L -n -c | awk '$1 == "IP" && $3 == "NONE" {print $4, $5, $6}' | sort; }
tmpl_before=$(templates)
assert_eq 9 "$(grep -c "^198\.18\.0\.5[1-9]:0 " <<< "$tmpl_before")" "the nine clients' FWM 1 templates before the takeover"
fwm_stats() { lbadm_ -L -n --stats | awk '$1 == "FWM" {print $2, $3}'; }
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/rst_takeover.pcap" "tcp[tcpflags] & tcp-rst != 0"
RDUMP=$TCPDUMP_PID
# From 198.18.0.51: with two workers the fanout program steers that address to worker 1
# (steer_abi.h), yet its packets come from the queue, to worker 0, which must hold it.
in_ns "$LAB_CLIENT" timeout 60 curl -s --interface 198.18.0.51 --limit-rate 4M -o "$LAB_DIR/dl" "http://$VIP2:8080/big" &
DL=$!
sleep 1.5
stats_before=$(fwm_stats)
lbadm_ -S -n > "$LAB_DIR/rules"  # what the next lbd starts with
OLD=$LAB_LBD_PID
lab_lbd --takeover || fail "lbd --takeover did not start: $(tail -20 "$LAB_DIR/lbd.log")"
rc=0; wait "$OLD" || rc=$?
assert_eq 0 "$rc" "the old lbd handed over and stopped"
grep -q "fwmark: took the iptables chains a previous lbd left" "$LAB_DIR/lbd.log" ||
  fail "the new lbd did not take the old one's chains: $(grep fwmark "$LAB_DIR/lbd.log")"
adopted=$(lbadm_ --lbd-counters | awk '$1 == "handover_adopted" {print $2}')
# 36 HTTP connections and 9 templates under FWM 1 (the UDP ones have expired or not), the download's.
[ "${adopted:-0}" -ge 46 ] || fail "the new lbd adopted ${adopted:-0} entries: $(grep handover "$LAB_DIR/lbd.log")"
assert_eq "$tmpl_before" "$(templates)" "FWM 1's templates carried over, each client to the same real"
rc=0; wait "$DL" || rc=$?
assert_eq 0 "$rc" "the download's curl ended well"
assert_eq "$(sha256sum < "$LAB_DIR/nginx3/html/big" | cut -d' ' -f1)" "$(sha256sum < "$LAB_DIR/dl" | cut -d' ' -f1)" \
  "the 20 MB NAT download through FWM 2 went on across the takeover intact"
stop_tcpdump "$RDUMP"
assert_eq 0 "$(pcap_count "$LAB_DIR/rst_takeover.pcap")" "no RST reached the client during the takeover"
# The counters went on: each FWM service's connection count as it was (none made anew).
assert_eq "$stats_before" "$(fwm_stats)" "--stats: each FWM service's connections carried over"
# A client's next connection, on another port of the mark, follows its adopted template.
for c in "${CLIENTS[@]}"; do
  want=$(awk -v c="$c:0" '$1 == c {print $3}' <<< "$tmpl_before")
  got=$(in_ns "$LAB_CLIENT" curl -s -m 3 --interface "$c" "http://$LAB_VIP:443/") || got=FAILED
  assert_eq "real$(( ${want##*.} - 10 ))" "$got" "client $c after the takeover: to its template's real ($want)"
done

# A killed lbd: its chains stay, nobody reads the queue: fail closed.
kill -KILL "$LAB_LBD_PID"; wait "$LAB_LBD_PID" 2>/dev/null || true; LAB_LBD_PID=
in_ns "$LAB_DIRECTOR" iptables -w -t mangle -S LBD_FWMARK >/dev/null 2>&1 || fail "a killed lbd's fwmark chain is gone"
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/rst.pcap" "tcp[tcpflags] & tcp-rst != 0"
RDUMP=$TCPDUMP_PID
code=$(in_ns "$LAB_CLIENT" curl -s -m 2 -o /dev/null -w '%{http_code}' "http://$LAB_VIP/" || true)
stop_tcpdump "$RDUMP"
[ "$code" = 000 ] || fail "with lbd killed, a request got HTTP $code"
assert_eq 0 "$(pcap_count "$LAB_DIR/rst.pcap")" "fail closed: no RST from the director's kernel while nobody reads the queue"

printf -- '-A -f 1 -s rr -p 60\n-a -f 1 -r %s -g\n-a -f 1 -r %s -g\n' "$R1" "$R2" > "$LAB_DIR/rules"
lab_lbd
got=$(count_answers 4 | tr '\n' ' ')
case "$got" in "real1 4 " | "real2 4 ") echo "ok: the next lbd replaces the chains and serves: $got" ;;
  *) fail "after a restart: $got" ;; esac
lab_stop_lbd
assert_eq "$MANGLE_BEFORE" "$(in_ns "$LAB_DIRECTOR" iptables -w -t mangle -S)" \
  "a clean exit leaves iptables' mangle table as the operator had it (lbd's chains and jumps gone)"

# --fwmark-fail open: with lbd killed the marked packets go on into the director's stack,
# which holds the VIP and has nothing on port 80: the client is refused (a RST) at once.
lab_lbd --fwmark-fail open
in_ns "$LAB_DIRECTOR" iptables -w -t mangle -S LBD_FWMARK | grep -q -- "--queue-bypass" ||
  fail "--fwmark-fail open: no --queue-bypass in $(in_ns "$LAB_DIRECTOR" iptables -w -t mangle -S LBD_FWMARK)"
kill -KILL "$LAB_LBD_PID"; wait "$LAB_LBD_PID" 2>/dev/null || true; LAB_LBD_PID=
rc=0
in_ns "$LAB_CLIENT" curl -s -m 2 -o /dev/null "http://$LAB_VIP/" || rc=$?
assert_eq 7 "$rc" "fail open: with lbd killed the director's own stack answers (curl: connection refused)"
