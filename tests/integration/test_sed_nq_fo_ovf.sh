#!/usr/bin/env bash
# sed, nq, fo and ovf with connections held open, on real TCP through DR: IPVS's choices
# for the same sequence of events, worked out by hand from ip_vs_sed.c, ip_vs_nq.c,
# ip_vs_fo.c and ip_vs_ovf.c. Reals of weight 1, 2, 3 (list order newest first: 3, 2, 1).
#   sed: (active+1)/weight, ties to the earlier real: 3 held → 0,1,2; 12 held → 2,4,6.
#   nq: an idle real first: 3 held → 1,1,1; then as sed, 12 held → 2,4,6.
#   fo: all to the highest weight (4 → 0,0,4); the real of weight 3 quiesced: to weight 2.
#   ovf: the highest weight until its active connections exceed its weight: 9 held →
#        2,3,4, and a tenth finds none (refused, as IPVS's ip_vs_leave).
. "$(dirname "$0")/common.sh"
echo_lab 3 11 12 13 14
lab_lbd
declare -A sched=([11]=sed [12]=nq [13]=fo [14]=ovf)
for port in 11 12 13 14; do
  lbadm_ -A -t "$LAB_VIP:$port" -s "${sched[$port]}"
  for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:$port" -r "$(lab_real_ip "$i")" -w "$i"; done
done

active_total() { lbadm_ -L -n -t "$LAB_VIP:$1" | awk '/->.*Route/ {s += $5} END {print s + 0}'; }
# The reals' ActiveConn, in address order: "A1 A2 A3".
active_by_real() { lbadm_ -L -n -t "$LAB_VIP:$1" | awk '/->.*Route/ {print $2, $5}' | sort | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//'; }
# hold PORT N: N more connections, one after another, each held open for 60 s.
hold() {
  local k start
  start=$(active_total "$1")
  for k in $(seq 1 "$2"); do
    ip netns exec "$LAB_CLIENT" socat -u EXEC:"sleep 60" "TCP:$LAB_VIP:$1" </dev/null >/dev/null 2>&1 &
    LAB_PIDS+=($!)
    local w
    for w in $(seq 1 100); do [ "$(active_total "$1")" -ge $((start + k)) ] && break; sleep 0.05; done
  done
}

assert_eq "TCP  $LAB_VIP:11 sed" "$(lbadm_ -L -n -t "$LAB_VIP:11" | awk '/^TCP/ {print $1 "  " $2 " " $3}')" "-L shows the scheduler sed"

hold 11 3
assert_eq "0 1 2" "$(active_by_real 11)" "sed: 3 held connections"
hold 11 9
assert_eq "2 4 6" "$(active_by_real 11)" "sed: 12 held connections"

hold 12 3
assert_eq "1 1 1" "$(active_by_real 12)" "nq: each idle real takes one first"
hold 12 9
assert_eq "2 4 6" "$(active_by_real 12)" "nq: 12 held connections"

hold 13 4
assert_eq "0 0 4" "$(active_by_real 13)" "fo: all to the highest weight"
lbadm_ -e -t "$LAB_VIP:13" -r "$(lab_real_ip 3)" -w 0
hold 13 2
assert_eq "0 2 4" "$(active_by_real 13)" "fo: the highest weight quiesced, the next takes them"

hold 14 9
assert_eq "2 3 4" "$(active_by_real 14)" "ovf: each real up to one more than its weight, highest first"
if ip netns exec "$LAB_CLIENT" timeout 5 socat -u EXEC:"sleep 1" "TCP:$LAB_VIP:14,connect-timeout=3" </dev/null >/dev/null 2>&1; then
  fail "ovf: a tenth connection was accepted though every real is over its weight"
fi
echo "ok: ovf: a tenth connection is refused"
assert_eq "2 3 4" "$(active_by_real 14)" "ovf: no real took the tenth"
