#!/usr/bin/env bash
# The classic LVS-NAT director: two arms. Clients on 198.18.0.0/24 (eth0), real servers
# on their own segment 198.18.1.0/24 (eth1) whose gateway is the director; lbd captures
# on both. Requests arrive on eth0 and leave on eth1 to the real, replies come back on
# eth1 and leave on eth0 as the VIP's; the director's kernel does not route (ip_forward 0)
# and the client never sees a real's address.
. "$(dirname "$0")/common.sh"
lab_init
lab_create 0
lab_link "$LAB_DIRECTOR" eth1 198.18.1.1/24 br1
for i in 1 2 3; do
  ns=$(lab_real_ns "$i")
  ip netns add "$ns"; LAB_REALS+=("$ns")
  lab_link "$ns" eth0 "198.18.1.1$i/24" br1
  in_ns "$ns" ip route add default via 198.18.1.1
  lab_nginx "$i" 8080
done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 8080; done
in_ns "$LAB_DIRECTOR" sysctl -qw net.ipv4.ip_forward=0
lab_lbd --interface eth1
lbadm_ -A -t "$LAB_VIP:80" -s rr
for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:80" -r "198.18.1.1$i:8080" -m; done
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/leak.pcap" "ip and src net 198.18.1.0/24"
LEAK=$TCPDUMP_PID
assert_eq "real1 2 real2 2 real3 2 " "$(count_answers 6 | tr '\n' ' ')" "two-armed NAT: 6 requests, 2 per real"
head -c 20000000 /dev/urandom > "$LAB_DIR/big"
for i in 1 2 3; do ln -sf "$LAB_DIR/big" "$LAB_DIR/nginx$i/html/big"; done
download_matches "$LAB_DIR/big" "http://$LAB_VIP/big" "20 MB through the two-armed director"
stop_tcpdump "$LEAK"
assert_eq 0 "$(pcap_count "$LAB_DIR/leak.pcap")" "the client never saw a real's address"
guard=$(in_ns "$LAB_DIRECTOR" nft list table netdev lbd)  # (grep -q in a pipe: SIGPIPE)
grep -q 'devices = { eth0, eth1 }' <<< "$guard" || fail "the guard should cover both arms: $guard"
echo "ok: the guard covers both arms"
