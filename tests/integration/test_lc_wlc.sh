#!/usr/bin/env bash
# lc and wlc with connections held open: the same sequence of events gives IPVS's choices.
# 12 sequential connections to wlc weights 1,2,3 end as ActiveConn 2,4,6 (IPVS's integer
# comparison, newest real first on ties); 6 to lc end as 2,2,2 whatever the weights.
. "$(dirname "$0")/common.sh"
echo_lab 3 9 10
lab_lbd
lbadm_ -A -t "$LAB_VIP:9" -s wlc
lbadm_ -A -t "$LAB_VIP:10" -s lc
for i in 1 2 3; do
  lbadm_ -a -t "$LAB_VIP:9" -r "$(lab_real_ip "$i")" -w "$i"
  lbadm_ -a -t "$LAB_VIP:10" -r "$(lab_real_ip "$i")" -w "$((4 - i))"
done
sleep 0.5  # neighbours resolved

active_total() { lbadm_ -L -n -t "$LAB_VIP:$1" | awk '/->.*Route/ {s += $5} END {print s + 0}'; }
# hold PORT N: N connections opened one after another, each held open for 60 s.
hold() {
  local k
  for k in $(seq 1 "$2"); do
    ip netns exec "$LAB_CLIENT" socat -u EXEC:"sleep 60" "TCP:$LAB_VIP:$1" </dev/null >/dev/null 2>&1 &
    LAB_PIDS+=($!)
    local w
    for w in $(seq 1 100); do [ "$(active_total "$1")" -ge "$k" ] && break; sleep 0.05; done
  done
}
active_by_real() {
  lbadm_ -L -n -t "$LAB_VIP:$1" | awk '/->.*Route/ {print $2, $5}' | tr '\n' ' '
}

hold 9 12
assert_eq "198.18.0.11:9 2 198.18.0.12:9 4 198.18.0.13:9 6 " "$(active_by_real 9)" "wlc 1:2:3 with 12 held connections"
hold 10 6
assert_eq "198.18.0.11:10 2 198.18.0.12:10 2 198.18.0.13:10 2 " "$(active_by_real 10)" "lc with 6 held connections"
