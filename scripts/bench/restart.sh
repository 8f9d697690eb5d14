#!/usr/bin/env bash
# The restart's dark time and how it grows with the table: for each size, a DR service
# whose table holds that many connections (SYNs from an attacker-style namespace,
# scripts/synflood.c: random sources, each its own connection, SYN_RECV's 60 s), then
# `lbd --takeover`: the new lbd adopts the table and reports how long the data path was
# dark (from the old lbd's workers stopping to the new one's starting: handover_dark_ms),
# how many it adopted, and how long the adoption itself took (adopt_ms, part of the dark
# time). Prints "result: KEY VALUE" lines. Bounded: each flood is SIZE SYNs at most, 30 s
# at most.
# Usage: scripts/bench/restart.sh [SIZE...] (default: 10000 1000000)
#   (root; LBD_BIN/LBADM_BIN as for the lab, else the build's or the PATH's)
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 1000000)
: "${LBD_BIN:=$PWD/build/lbd}" "${LBADM_BIN:=$PWD/build/lbadm}"
export LBD_BIN LBADM_BIN
. scripts/lab.sh
lab_init
trap lab_cleanup EXIT
lab_create 2
for i in 1 2; do lab_dr_real "$i"; done
ATTACKER=lbat$LAB_ID
ip netns add "$ATTACKER"
LAB_EXTRA_NS+=("$ATTACKER")
lab_link "$ATTACKER" eth0 198.18.0.250/24
cc -O2 -o "$LAB_DIR/synflood" scripts/synflood.c
counter() { lbadm_ --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
{ echo "-A -t $LAB_VIP:80 -s rr"; for i in 1 2; do echo "-a -t $LAB_VIP:80 -r $(lab_real_ip "$i"):80 -g -w 1"; done; } > "$LAB_DIR/rules"
for size in "${SIZES[@]}"; do
  # Four times the size: the table stays under three quarters full (no short SYN timeout).
  lab_lbd --max-connections $((size * 4)) --offload off
  DMAC=$(in_ns "$LAB_DIRECTOR" cat /sys/class/net/eth0/address)
  for k in 1 2 3 4 5 6 7 8 9 10; do
    have=$(counter conns_current)
    [ "$have" -ge $((size * 95 / 100)) ] && break
    in_ns "$ATTACKER" "$LAB_DIR/synflood" eth0 "$DMAC" "$LAB_VIP" 80 $((size - have)) 30 300000 > /dev/null
    sleep 2.2  # the counts are gathered every 2 s
  done
  have=$(counter conns_current)
  rss_old=$(awk '/^VmRSS/ {print $2}' "/proc/$LAB_LBD_PID/status")
  OLD=$LAB_LBD_PID
  lab_lbd --max-connections $((size * 4)) --offload off --takeover
  wait "$OLD" || true
  echo "result: table_$size $have"
  echo "result: adopted_$size $(counter handover_adopted)"
  echo "result: dark_ms_$size $(counter handover_dark_ms)"
  echo "result: adopt_ms_$size $(grep -o "took over [0-9]* connections from .* in [0-9]* ms" "$LAB_DIR/lbd.log" | tail -1 | awk '{print $(NF-1)}')"
  echo "result: old_rss_kb_$size $rss_old"
  lab_stop_lbd
done
