#!/usr/bin/env bash
# lblc, lblcr and twos with connections held open, on real TCP through DR. Every client
# packet's destination is the VIP: one cache entry, whose real changes only when it is
# overloaded (ActiveConn above its weight while some real is under half its weight).
# IPVS's choices, worked out by hand from ip_vs_lblc.c and ip_vs_lblcr.c for reals of
# weight 1, 2, 3 (list order newest first: 3, 2, 1; the least-connection pick is by
# ActiveConn * 50 + InActConn over the weight, ties to the earlier real):
#   both: the first 4 to the weight-3 real (0 0 4); the 5th finds it overloaded and goes
#         to the weight-2 real, which keeps the next two; the 8th finds that one
#         overloaded and goes to the weight-1 real (1 3 4).
#   lblc: its cache now says the weight-1 real, and no real is under half its weight any
#         more, so the 9th and 10th go there too (3 3 4).
#   lblcr: its set holds all three and each connection goes to the set's least loaded
#         real: the 9th to the weight-1 one, the 10th to the weight-3 one (2 3 5).
#   twos: two reals drawn by weight, the less loaded of them: 30 held connections reach
#         every real, more on the weight-3 real than on the weight-1 one.
. "$(dirname "$0")/common.sh"
echo_lab 3 15 16 17
lab_lbd
declare -A sched=([15]=lblc [16]=lblcr [17]=twos)
for port in 15 16 17; do
  lbadm_ -A -t "$LAB_VIP:$port" -s "${sched[$port]}"
  for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:$port" -r "$(lab_real_ip "$i")" -w "$i"; done
done
active_total() { lbadm_ -L -n -t "$LAB_VIP:$1" | awk '/->.*Route/ {s += $5} END {print s + 0}'; }
active_by_real() { lbadm_ -L -n -t "$LAB_VIP:$1" | awk '/->.*Route/ {print $2, $5}' | sort | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//'; }
hold() {  # hold PORT N: N more connections, one after another, each held open for 60 s
  local k w start
  start=$(active_total "$1")
  for k in $(seq 1 "$2"); do
    ip netns exec "$LAB_CLIENT" socat -u EXEC:"sleep 60" "TCP:$LAB_VIP:$1" </dev/null >/dev/null 2>&1 &
    LAB_PIDS+=($!)
    for w in $(seq 1 100); do [ "$(active_total "$1")" -ge $((start + k)) ] && break; sleep 0.05; done
  done
}

for port in 15 16; do
  s=${sched[$port]}
  hold "$port" 4
  assert_eq "0 0 4" "$(active_by_real "$port")" "$s: the first four to the weight-3 real"
  hold "$port" 4
  assert_eq "1 3 4" "$(active_by_real "$port")" "$s: overloaded, then the weight-2 real, then the weight-1 real"
done
hold 15 2
assert_eq "3 3 4" "$(active_by_real 15)" "lblc: the cache keeps the weight-1 real once no real is under half its weight"
hold 16 2
assert_eq "2 3 5" "$(active_by_real 16)" "lblcr: each to the least loaded real of the set"

hold 17 30
read -r a1 a2 a3 <<< "$(active_by_real 17)"
[ "$a1" -ge 1 ] && [ "$a2" -ge 1 ] && [ "$a3" -ge 1 ] && [ "$a3" -gt "$a1" ] ||
  fail "twos: 30 held connections spread as $a1 $a2 $a3 (weights 1 2 3)"
echo "ok: twos: 30 held connections spread $a1 $a2 $a3 over weights 1 2 3"
