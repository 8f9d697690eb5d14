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

# - a SIGHUP storm (50 reloads asked at once, a systemd unit's ExecReload hammered): lbd
#   coalesces them, keeps every rule and every connection, and answers throughout.
cat > "$LAB_DIR/rules" <<RULES
-A -t $LAB_VIP:80 -s rr
-a -t $LAB_VIP:80 -r $(lab_real_ip 1):80 -g -w 1
-a -t $LAB_VIP:80 -r $(lab_real_ip 2):80 -g -w 1
-a -t $LAB_VIP:80 -r $(lab_real_ip 3):80 -g -w 1
RULES
before=$(lbadm_ -S -n)
lab_bg "$LAB_CLIENT" socat "TCP:$LAB_VIP:80" EXEC:"sleep 30"  # a connection held through it all
HOLD=${LAB_PIDS[-1]}
sleep 0.3
for k in $(seq 1 50); do kill -HUP "$LAB_LBD_PID"; done
got=$(count_answers 6 | tr '\n' ' ')
assert_eq "real1 2 real2 2 real3 2 " "$got" "SIGHUP storm: 6 requests answered during the reloads"
for k in $(seq 1 40); do grep -q "reloaded" "$LAB_DIR/lbd.log" && break; sleep 0.05; done
kill -0 "$LAB_LBD_PID" || fail "SIGHUP storm: lbd died"
assert_eq "$before" "$(lbadm_ -S -n)" "SIGHUP storm: the rules are what they were"
held=$(lbadm_ -L -n -c | grep -c "ESTABLISHED" || true)
[ "$held" -ge 1 ] || fail "SIGHUP storm: the held connection is gone"
echo "ok: SIGHUP storm: lbd alive, the held connection still ESTABLISHED"
kill -TERM "$HOLD"; wait "$HOLD" 2>/dev/null || true

# - a real's MAC changing (a replaced NIC, a VM moved): once the director's kernel learns
#   it (here its neighbour cache is flushed, as a gratuitous ARP would update it), lbd's
#   next neighbour refresh (1 s) takes it and traffic to that real resumes.
R1NS=$(lab_real_ns 1)
in_ns "$R1NS" ip link set eth0 address 02:00:5e:00:53:77
in_ns "$LAB_DIRECTOR" ip neigh flush dev eth0 >/dev/null 2>&1 || true
ok=0
for k in $(seq 1 60); do  # 3 s at most
  got=$(count_answers 3 | tr '\n' ' ')
  [ "$got" = "real1 1 real2 1 real3 1 " ] && { ok=1; break; }
  sleep 0.05
done
assert_eq 1 "$ok" "a real's new MAC: real1 answers again within 3 s"
grep -q "real server $(lab_real_ip 1) is at 02:00:5e:00:53:77" "$LAB_DIR/lbd.log" ||
  fail "lbd should log real1's new MAC"
echo "ok: lbd logged real1's new MAC"

# - the capture interface's MTU changing: lbd takes the new one within its 1 s refresh
#   (frames it sends are cut to it from then on) and keeps serving.
in_ns "$LAB_DIRECTOR" ip link set eth0 mtu 1400
seen=0
for k in $(seq 1 40); do grep -q "eth0: MTU 1400 (was 1500)" "$LAB_DIR/lbd.log" && { seen=1; break; }; sleep 0.05; done
assert_eq 1 "$seen" "an MTU change on the capture interface is taken within 2 s"
got=$(count_answers 3 | tr '\n' ' ')
assert_eq "real1 1 real2 1 real3 1 " "$got" "requests answered after the MTU change"
in_ns "$LAB_DIRECTOR" ip link set eth0 mtu 1500
