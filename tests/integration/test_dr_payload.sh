#!/usr/bin/env bash
# Byte-for-byte round trips through the VIP (TCP and a UDP service, socat echo on three
# reals), and the frame as the real receives it is the client's frame but for the MACs.
. "$(dirname "$0")/common.sh"
echo_lab 3 7
for i in 1 2 3; do
  # A DR real answers UDP from the VIP: bind to it, or replies leave from the real's own address.
  lab_bg "$(lab_real_ns "$i")" socat UDP-RECVFROM:53,bind=$LAB_VIP,fork EXEC:cat
done
# Full checksums from the client for the frame comparison below (offloaded partial
# checksums are completed by lbd, which changes those two bytes by design). TSO stays on
# (software GSO), so the client still sends super-frames that lbd must segment.
in_ns "$LAB_CLIENT" ethtool -K eth0 tx off >/dev/null
lab_lbd
lbadm_ -A -t "$LAB_VIP:7" -s rr
lbadm_ -A -u "$LAB_VIP:53" -s rr
for i in 1 2 3; do
  lbadm_ -a -t "$LAB_VIP:7" -r "$(lab_real_ip "$i")"
  lbadm_ -a -u "$LAB_VIP:53" -r "$(lab_real_ip "$i")"
done

for i in 1 2 3; do
  start_tcpdump "$(lab_real_ns "$i")" eth0 "$LAB_DIR/real$i.pcap" "tcp dst port 7 and tcp[tcpflags] & tcp-syn != 0"
  eval "DUMP$i=$TCPDUMP_PID"
done
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/client.pcap" "tcp dst port 7 and tcp[tcpflags] & tcp-syn != 0"
CDUMP=$TCPDUMP_PID

tcp_round_trips 7 "through the VIP"
udp_round_trips 53 "through the VIP"
udp_round_trips 53 "through the VIP in IP fragments (4 KB)" 3000
segmented=$(lbadm_ --lbd-counters | awk '$1 == "superframes_segmented" {print $2}')
echo "info: $segmented TCP super-frames were segmented by lbd"
udp_inact=$(lbadm_ -L -n -u "$LAB_VIP:53" | awk '/->.*Route/ {s += $6} END {print s}')
# One per client port (the kernel may hand a port out twice): as many as -c lists.
udp_conns=$(lbadm_ -L -n -c | grep -c "^UDP" || true)
[ "$udp_conns" -ge 6 ] || fail "expected at least 6 UDP connections listed, got $udp_conns"
assert_eq "$udp_conns" "$udp_inact" "UDP connections counted as InActConn"

stop_tcpdump "$CDUMP"
for i in 1 2 3; do eval "stop_tcpdump \$DUMP$i"; done
# The IP packet (tcpdump -x prints from the IP header on) must be identical.
[ "$(pcap_count "$LAB_DIR/client.pcap")" -ge 3 ] || fail "expected 3 SYNs captured at the client"
assert_eq "$(tcpdump -r "$LAB_DIR/client.pcap" -n 2>/dev/null | wc -l)" "$(for i in 1 2 3; do tcpdump -r "$LAB_DIR/real$i.pcap" -n 2>/dev/null; done | wc -l)" "each SYN reached exactly one real, once"
# Compare SYN by SYN (order at the reals is per real; sort the hex blobs).
sent_sorted=$(pcap_hex "$LAB_DIR/client.pcap" | sort)
recv_sorted=$(for i in 1 2 3; do pcap_hex "$LAB_DIR/real$i.pcap"; done | sort)
assert_eq "$sent_sorted" "$recv_sorted" "IP packets reach the reals unchanged (only MACs rewritten)"
macs=$(for i in 1 2 3; do tcpdump -r "$LAB_DIR/real$i.pcap" -n -e 2>/dev/null | awk '{print $2}'; done | sort -u)
assert_eq "$(director_mac)" "$macs" "frames at the reals come from the director's MAC"
