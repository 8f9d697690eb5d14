#!/usr/bin/env bash
# The director's kernel must not fight lbd. For ip_forward 0 and 1, and the VIP not on the
# director, on its lo, or on its capture interface: every request is answered by a real,
# the client sees no RST and no ICMP from the director and never a real's address, each
# SYN reaches exactly one real once (no duplicate forwarded by the kernel), GRO is off
# while lbd runs, and after lbd exits the director is exactly as before (firewall,
# offloads, addresses, sysctls). COEX_METHOD picks the forwarding method: dr (default),
# nat or tun (test_coexistence_nat.sh and _tun.sh run this file with it).
# First, a positive control: without lbd, a VIP on the director's lo makes its kernel RST
# the client — the detector below does see such packets.
. "$(dirname "$0")/common.sh"
METHOD=${COEX_METHOD:-dr}
lab_init
lab_create 3
for i in 1 2 3; do lab_setup_real "$METHOD" "$i"; lab_nginx "$i"; done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
DMAC=$(director_mac)
REALS="src host $(lab_real_ip 1) or src host $(lab_real_ip 2) or src host $(lab_real_ip 3)"
REJECT_FILTER="(ether src $DMAC and (icmp or (tcp and tcp[tcpflags] & tcp-rst != 0))) or (ip and ($REALS))"
# Where a real sees the client's SYN: out of the tunnel for TUN, on its link otherwise.
SYN_IF=eth0
[ "$METHOD" = tun ] && SYN_IF=lbdtun0

box_state() {
  in_ns "$LAB_DIRECTOR" nft list ruleset
  in_ns "$LAB_DIRECTOR" ethtool -k eth0 | grep -E '^(generic-receive-offload|large-receive-offload):'
  in_ns "$LAB_DIRECTOR" ip -br addr
  in_ns "$LAB_DIRECTOR" sysctl net.ipv4.ip_forward
}

# Positive control.
in_ns "$LAB_DIRECTOR" ip addr add "$LAB_VIP/32" dev lo
in_ns "$LAB_CLIENT" ip neigh replace "$LAB_VIP" lladdr "$DMAC" dev eth0
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/control.pcap" "$REJECT_FILTER"
in_ns "$LAB_CLIENT" curl -s -m 2 "http://$LAB_VIP/" >/dev/null && fail "control: the director's kernel answered"
stop_tcpdump "$TCPDUMP_PID"
[ "$(pcap_count "$LAB_DIR/control.pcap")" -ge 1 ] || fail "control: no RST seen without lbd"
echo "ok: control: without lbd the director's kernel RSTs the client (detector works)"
in_ns "$LAB_DIRECTOR" ip addr del "$LAB_VIP/32" dev lo
in_ns "$LAB_CLIENT" ip neigh del "$LAB_VIP" dev eth0

for fwd in 0 1; do
  for vip in none lo eth0; do
    case_name="$METHOD, ip_forward=$fwd, VIP on the director: $vip"
    in_ns "$LAB_DIRECTOR" sysctl -qw net.ipv4.ip_forward=$fwd
    [ "$vip" = none ] || in_ns "$LAB_DIRECTOR" ip addr add "$LAB_VIP/32" dev "$vip"
    in_ns "$LAB_DIRECTOR" ethtool -K eth0 gro on >/dev/null 2>&1 || true
    in_ns "$LAB_CLIENT" ip neigh flush dev eth0
    before=$(box_state)

    lab_lbd
    lbadm_ -A -t "$LAB_VIP:80" -s rr
    for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")" "$(lab_method_flag "$METHOD")"; done
    sleep 0.3
    start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/client.pcap" "$REJECT_FILTER"
    cdump=$TCPDUMP_PID
    rdumps=()
    for i in 1 2 3; do
      start_tcpdump "$(lab_real_ns "$i")" "$SYN_IF" "$LAB_DIR/syn$i.pcap" \
        "tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0"
      rdumps+=("$TCPDUMP_PID")
    done
    got=$(count_answers 6 | tr '\n' ' ')
    assert_eq "real1 2 real2 2 real3 2 " "$got" "$case_name: 6 requests, 2 per real"
    gro=$(in_ns "$LAB_DIRECTOR" ethtool -k eth0 | awk '/^generic-receive-offload:/ {print $2}')
    assert_eq off "$gro" "$case_name: GRO off while lbd captures"
    vip_mac=$(in_ns "$LAB_CLIENT" ip neigh show "$LAB_VIP" dev eth0 | awk '{print $3}')
    assert_eq "$DMAC" "$vip_mac" "$case_name: the VIP resolves to the director"
    stop_tcpdump "$cdump"
    for p in "${rdumps[@]}"; do stop_tcpdump "$p"; done
    assert_eq 0 "$(pcap_count "$LAB_DIR/client.pcap")" "$case_name: no RST or ICMP from the director, no real's address"
    syns=$(for i in 1 2 3; do tcpdump -r "$LAB_DIR/syn$i.pcap" -n 2>/dev/null; done | wc -l)
    assert_eq 6 "$syns" "$case_name: each SYN reached one real exactly once"

    lab_stop_lbd
    after=$(box_state)
    assert_eq "$before" "$after" "$case_name: director state restored after lbd exits"
    [ "$vip" = none ] || in_ns "$LAB_DIRECTOR" ip addr del "$LAB_VIP/32" dev "$vip"
  done
done
