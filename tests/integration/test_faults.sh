#!/usr/bin/env bash
# Faults on the director, each with nothing lost that need not be:
# - someone else's `nft flush ruleset` (Debian's nftables.service runs it at every start
#   and reload) removes lbd's guard table: lbd hears of it (nftables netlink events) and
#   puts the table back at once, sets included, and counts it; with the VIP on the
#   director's lo, its kernel would otherwise answer clients with RSTs;
# - the same for `nft delete table netdev lbd` and a flushed guard chain.
. "$(dirname "$0")/common.sh"
dr_lab_http 3
in_ns "$LAB_DIRECTOR" ip addr add "$LAB_VIP/32" dev lo  # the hard case: the kernel owns the VIP
lbadm_ -A -t "$LAB_VIP:80" -s rr
for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")" -g; done
DMAC=$(director_mac)
counter() { lbadm_ --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
guard_rules() { in_ns "$LAB_DIRECTOR" nft list table netdev lbd 2>/dev/null | grep -c "drop" || true; }
want_rules=$(guard_rules)
[ "$want_rules" -gt 0 ] || fail "the guard table should be there with its drop rules"
want_elems=$(in_ns "$LAB_DIRECTOR" nft list set netdev lbd svc | tr -d '\n ')

n=0
for fault in "flush ruleset" "delete table netdev lbd" "flush chain netdev lbd guard"; do
  n=$((n + 1))
  in_ns "$LAB_DIRECTOR" nft "$fault"  # word splitting intended: nft takes the words
  back=0
  for k in $(seq 1 40); do  # 2 s at most; it is back within milliseconds
    [ "$(guard_rules)" = "$want_rules" ] && [ "$(counter guard_restored)" = "$n" ] && { back=1; break; }
    sleep 0.05
  done
  assert_eq 1 "$back" "nft $fault: the guard is back with its $want_rules drop rules, guard_restored $n"
  assert_eq "$want_elems" "$(in_ns "$LAB_DIRECTOR" nft list set netdev lbd svc | tr -d '\n ')" \
    "nft $fault: the guard's service set is back too"
  start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/rst$n.pcap" "ether src $DMAC and tcp[tcpflags] & tcp-rst != 0"
  got=$(count_answers 6 | tr '\n' ' ')
  stop_tcpdump "$TCPDUMP_PID"
  assert_eq "real1 2 real2 2 real3 2 " "$got" "nft $fault: 6 requests answered by the reals"
  assert_eq 0 "$(pcap_count "$LAB_DIR/rst$n.pcap")" "nft $fault: no RST from the director's kernel"
done
