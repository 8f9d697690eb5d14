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

head -c 3000000 /dev/urandom > "$LAB_DIR/payload"
for k in 1 2 3; do
  in_ns "$LAB_CLIENT" timeout 30 socat -t 5 -b 65536 - "TCP:$LAB_VIP:7" \
    < "$LAB_DIR/payload" > "$LAB_DIR/echo$k" 2>/dev/null || true
  cmp -s "$LAB_DIR/payload" "$LAB_DIR/echo$k" || fail "TCP round trip $k differs ($(stat -c %s "$LAB_DIR/echo$k") bytes back)"
  echo "ok: 3 MB TCP round trip $k byte for byte"
done

for k in $(seq 1 6); do
  msg="datagram-$k-$(head -c 600 /dev/urandom | base64 -w0)"
  back=$(echo "$msg" | in_ns "$LAB_CLIENT" timeout 5 socat -t 2 - "UDP:$LAB_VIP:53") || true
  assert_eq "$msg" "$back" "UDP datagram $k echoed through the VIP"
done
segmented=$(lbadm_ --lbd-counters | awk '$1 == "superframes_segmented" {print $2}')
echo "info: $segmented TCP super-frames were segmented by lbd"
udp_inact=$(lbadm_ -L -n -u "$LAB_VIP:53" | awk '/->.*Route/ {s += $6} END {print s}')
assert_eq 6 "$udp_inact" "UDP connections counted as InActConn"

stop_tcpdump "$CDUMP"
for i in 1 2 3; do eval "stop_tcpdump \$DUMP$i"; done
# The IP packet (tcpdump -x prints from the IP header on) must be identical.
[ "$(pcap_count "$LAB_DIR/client.pcap")" -ge 3 ] || fail "expected 3 SYNs captured at the client"
assert_eq "$(tcpdump -r "$LAB_DIR/client.pcap" -n 2>/dev/null | wc -l)" "$(for i in 1 2 3; do tcpdump -r "$LAB_DIR/real$i.pcap" -n 2>/dev/null; done | wc -l)" "each SYN reached exactly one real, once"
# Compare SYN by SYN (order at the reals is per real; sort the hex blobs).
sort_pkts() { tcpdump -r "$1" -n -x 2>/dev/null | awk '/^[0-9]/ {if (p) print p; p=""; next} {for (i=2;i<=NF;i++) p=p $i} END {if (p) print p}'; }
sent_sorted=$(sort_pkts "$LAB_DIR/client.pcap" | sort)
recv_sorted=$(for i in 1 2 3; do sort_pkts "$LAB_DIR/real$i.pcap"; done | sort)
assert_eq "$sent_sorted" "$recv_sorted" "IP packets reach the reals unchanged (only MACs rewritten)"
macs=$(for i in 1 2 3; do tcpdump -r "$LAB_DIR/real$i.pcap" -n -e 2>/dev/null | awk '{print $2}'; done | sort -u)
assert_eq "$(director_mac)" "$macs" "frames at the reals come from the director's MAC"
