#!/usr/bin/env bash
# NAT (-m) end to end, with the director forwarding IP (ip_forward=1, the harder case):
# three reals whose only way out is the director; the VIP's ports map onto other ports
# (80 → 8080 nginx, 7 → 7007 TCP echo, 53 → 5353 UDP echo). Every reply reaches the client
# as the VIP; no packet with a real's address ever leaves the director for the client,
# not even a reply that matches no connection; ICMP errors are translated; 50 MB download
# with matching sha256; byte-for-byte TCP and UDP round trips.
. "$(dirname "$0")/common.sh"
: "${LBD_DECAP_BIN:=}"
lab_init
lab_create 3
head -c 52428800 /dev/urandom > "$LAB_DIR/big"
for i in 1 2 3; do
  ns=$(lab_real_ns "$i")
  lab_nat_real "$i"
  lab_nginx "$i" 8080
  lab_bg "$ns" socat TCP-LISTEN:7007,fork,reuseaddr EXEC:cat
  lab_bg "$ns" socat UDP-RECVFROM:5353,fork EXEC:cat
done
# real1 answers on 5355 a second late: the client has gone, its kernel says port unreachable.
lab_bg "$(lab_real_ns 1)" socat -t 3 UDP-RECVFROM:5355,fork SYSTEM:'sleep 1; cat'
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 8080; lab_wait_port "$(lab_real_ns "$i")" 7007; done
in_ns "$LAB_DIRECTOR" sysctl -qw net.ipv4.ip_forward=1
lab_lbd
lbadm_ -A -t "$LAB_VIP:80" -s rr
lbadm_ -A -t "$LAB_VIP:7" -s rr
lbadm_ -A -u "$LAB_VIP:53" -s rr
lbadm_ -A -u "$LAB_VIP:54" -s rr
for i in 1 2 3; do
  rip=$(lab_real_ip "$i")
  lbadm_ -a -t "$LAB_VIP:80" -r "$rip:8080" -m
  lbadm_ -a -t "$LAB_VIP:7" -r "$rip:7007" -m
  lbadm_ -a -u "$LAB_VIP:53" -r "$rip:5353" -m
done
lbadm_ -a -u "$LAB_VIP:54" -r "$(lab_real_ip 1):5999" -m  # nothing listens there
lbadm_ -A -u "$LAB_VIP:55" -s rr
lbadm_ -a -u "$LAB_VIP:55" -r "$(lab_real_ip 1):5355" -m  # answers late

REALS_FILTER="src host $(lab_real_ip 1) or src host $(lab_real_ip 2) or src host $(lab_real_ip 3)"
# Whatever the director sends with a real's address as source is a leak.
start_tcpdump "$LAB_DIRECTOR" eth0 "$LAB_DIR/leak_out.pcap" -Q out "ip and ($REALS_FILTER) and dst host $LAB_CLIENT_IP"
LEAK_OUT=$TCPDUMP_PID
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/leak_in.pcap" "ip and ($REALS_FILTER)"
LEAK_IN=$TCPDUMP_PID

got=$(count_answers 6 | tr '\n' ' ')
assert_eq "real1 2 real2 2 real3 2 " "$got" "HTTP through NAT (80 → 8080): 6 requests, 2 per real"

download_matches "$LAB_DIR/big" "http://$LAB_VIP/big" "50 MB download through NAT"

tcp_round_trips 7 "through NAT (7 → 7007)"
udp_round_trips 53 "through NAT (53 → 5353)"
udp_round_trips 53 "through NAT (53 → 5353) in IP fragments (4 KB)" 3000

# A UDP datagram to a real port where nothing listens: the real's port unreachable comes
# back translated, from the VIP and about VIP:54.
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/icmp.pcap" "icmp"
ICMP_DUMP=$TCPDUMP_PID
echo probe | in_ns "$LAB_CLIENT" timeout 5 socat -t 1 - "UDP:$LAB_VIP:54,sourceport=45454" >/dev/null 2>&1 || true
stop_tcpdump "$ICMP_DUMP"
icmp=$(tcpdump -r "$LAB_DIR/icmp.pcap" -n 2>/dev/null)
grep -q "$LAB_VIP > $LAB_CLIENT_IP: ICMP $LAB_VIP udp port 54 unreachable" <<< "$icmp" ||
  fail "expected the real's port unreachable translated to the VIP, got: $icmp"
echo "ok: ICMP port unreachable from a NAT real reaches the client as the VIP's"

# The other direction: the client's port unreachable about a late reply from VIP:55 reaches
# real1 translated, about RIP:5355.
start_tcpdump "$(lab_real_ns 1)" eth0 "$LAB_DIR/icmp_in.pcap" "icmp"
ICMP_IN=$TCPDUMP_PID
echo late | in_ns "$LAB_CLIENT" timeout 5 socat -t 0.2 - "UDP:$LAB_VIP:55,sourceport=45455" >/dev/null 2>&1 || true
sleep 1.5
stop_tcpdump "$ICMP_IN"
icmp=$(tcpdump -r "$LAB_DIR/icmp_in.pcap" -n -v 2>/dev/null)
grep -q "$LAB_CLIENT_IP > $(lab_real_ip 1): ICMP $LAB_CLIENT_IP udp port 45455 unreachable" <<< "$icmp" ||
  fail "expected the client's port unreachable translated for real1, got: $icmp"
grep -q "$(lab_real_ip 1).5355 > $LAB_CLIENT_IP.45455: UDP" <<< "$icmp" ||
  fail "the quoted header should be the real's own datagram (RIP:5355), got: $icmp"
echo "ok: the client's ICMP error about a NAT reply reaches the real, about RIP:5355"

# A "reply" from a real's service port that matches no connection (a datagram from
# real1:5999, the port VIP:54 maps to, to a client port nobody asked from): lbd drops it,
# the kernel does not forward it.
echo stray | in_ns "$(lab_real_ns 1)" timeout 3 socat -t 1 - "UDP:$LAB_CLIENT_IP:40404,sourceport=5999" >/dev/null 2>&1 || true
orphans=$(lbadm_ --lbd-counters | awk '$1 == "drop_orphan_reply" {print $2}')
[ "${orphans:-0}" -ge 1 ] || fail "the stray segment from RIP:8080 was not seen as an orphan reply"
echo "ok: a reply matching no connection is dropped by lbd ($orphans orphan replies)"

# A ping to a NAT-only VIP is answered by lbd.
in_ns "$LAB_CLIENT" ping -c 2 -W 2 "$LAB_VIP" >/dev/null || fail "ping to the NAT VIP failed"
echo "ok: ping to a NAT VIP answered"

stop_tcpdump "$LEAK_OUT"
stop_tcpdump "$LEAK_IN"
assert_eq 0 "$(pcap_count "$LAB_DIR/leak_out.pcap")" "no packet left the director with a real's address"
assert_eq 0 "$(pcap_count "$LAB_DIR/leak_in.pcap")" "the client never saw a real's address"

listing=$(lbadm_ -L -n -t "$LAB_VIP:80")
grep -q -- "-> $(lab_real_ip 2):8080 *Masq *1 " <<< "$listing" || fail "-L -n: $listing"
echo "ok: -L -n lists the reals as Masq on port 8080"
conns=$(lbadm_ -L -n -c | grep -c "$LAB_VIP:80 *$(lab_real_ip 1):8080" || true)
[ "$conns" -ge 1 ] || fail "-c lists no connection to real1:8080"
echo "ok: -c shows NAT connections with the real's port"
