#!/usr/bin/env bash
# DR through lbd to three nginx reals: rr gives exactly equal counts, wrr 3:2:1 exactly
# 3:2:1, lbadm -L -n shows IPVS's counters, and the client never sees a RST or an ICMP
# from the director.
#
#   client ──┐
#   director ─┼─ bridge ─ real1, real2, real3 (nginx, VIP on lo)
. "$(dirname "$0")/common.sh"
dr_lab_http 3
DMAC=$(director_mac)
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/client.pcap" \
  "ether src $DMAC and (icmp or (tcp and tcp[tcpflags] & tcp-rst != 0))"
CLIENT_DUMP=$TCPDUMP_PID

lbadm_ -A -t "$LAB_VIP:80" -s rr
for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")" -g; done

got=$(count_answers 30 | tr '\n' ' ')
assert_eq "real1 10 real2 10 real3 10 " "$got" "rr over 30 new connections"

# IPVS's view: 30 connections, all finished (FIN seen) so inactive, 10 per real.
listing=$(lbadm_ -L -n)
expected="IP Virtual Server version 1.2.1 (size=1048576)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 rr
  -> 198.18.0.11:80               Route   1      0          10        
  -> 198.18.0.12:80               Route   1      0          10        
  -> 198.18.0.13:80               Route   1      0          10        "
assert_eq "$expected" "$listing" "lbadm -L -n after rr"
conns=$(lbadm_ -L -n -c | tail -n +3 | awk '{print $1, $3, $4 ~ /^198\.18\.0\.1:/, $5}' | sort | uniq -c | awk '{$1=$1};1')
assert_eq "30 TCP FIN_WAIT 1 198.18.0.100:80" "$conns" "lbadm -L -n -c lists the 30 connections"

# The kernel may forget a real's neighbour entry (lbd's traffic never uses it): lbd keeps
# the MAC it knows while the kernel resolves it again, so no request is lost.
unresolved() { lbadm_ --lbd-counters | awk '$1 == "drop_next_hop_unresolved" {print $2}'; }
u_before=$(unresolved)
in_ns "$LAB_DIRECTOR" ip neigh flush dev eth0
sleep 1.2  # one neighbour refresh
got=$(count_answers 6 | tr '\n' ' ')
assert_eq "real1 2 real2 2 real3 2 " "$got" "requests after the director's neighbour table was flushed"
assert_eq "$u_before" "$(unresolved)" "no frame dropped for an unresolved next hop"

lbadm_ -E -t "$LAB_VIP:80" -s wrr
lbadm_ -e -t "$LAB_VIP:80" -r "$(lab_real_ip 1)" -w 3
lbadm_ -e -t "$LAB_VIP:80" -r "$(lab_real_ip 2)" -w 2
lbadm_ -e -t "$LAB_VIP:80" -r "$(lab_real_ip 3)" -w 1
got=$(count_answers 60 | tr '\n' ' ')
assert_eq "real1 30 real2 20 real3 10 " "$got" "wrr 3:2:1 over 60 new connections"

stats=$(lbadm_ -L -n --stats | awk '/^TCP/ {print $3}')
assert_eq "96" "$stats" "lbadm --stats counts 96 connections"

stop_tcpdump "$CLIENT_DUMP"
assert_eq 0 "$(pcap_count "$LAB_DIR/client.pcap")" "no RST or ICMP from the director"
drops=$(lbadm_ --lbd-counters | awk '$1 ~ /^drop_(bad|trunc|ip_|fragment|unsupported_protocol|inject)/ && $2 != 0')
assert_eq "" "$drops" "no malformed-frame or injection drops"
