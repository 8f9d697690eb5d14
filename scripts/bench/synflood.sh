#!/usr/bin/env bash
# A SYN flood against a DR and a NAT service while a legitimate client keeps connecting.
# An attacker's namespace on the director's segment sends SYNS spoofed SYNs (scripts/
# synflood.c: random sources in 198.18.1.0-198.19.255.255, valid checksums, raw frames)
# half to each service, at the director's saturation rate: first a second at the
# attacker's full speed (far more than lbd takes) measures how many SYNs per second lbd
# handles, then the flood runs at that rate (FLOOD_RATE overrides); meanwhile the client
# makes one new connection per request to each service in turn (curl, 2 s timeout), and
# after the flood ends it measures how long until a request succeeds again. It prints
# "result: KEY VALUE" lines: the flood's SYNs and rate, the legitimate requests made and
# answered during the flood, the time to the first success after it, lbd's resident
# memory before and after, its table, the SYNs it evicted and dropped, and whether lbd is
# still running. Bounded: the flood stops after SYNS frames or FLOOD_SECONDS (60).
# Usage: scripts/bench/synflood.sh [SYNS (3000000)] [--max-connections (20000)]
#   FLOOD_RATE=N: SYNs per second (default: the measured saturation rate)
#   (root; LBD_BIN/LBADM_BIN as for the lab, else the build's or the PATH's)
set -euo pipefail
cd "$(dirname "$0")/../.."
SYNS=${1:-3000000}
MAXCONN=${2:-20000}
FLOOD_SECONDS=${FLOOD_SECONDS:-60}
: "${LBD_BIN:=$PWD/build/lbd}" "${LBADM_BIN:=$PWD/build/lbadm}"
export LBD_BIN LBADM_BIN
. scripts/lab.sh
lab_mixed
ATTACKER=lbat$LAB_ID
ip netns add "$ATTACKER"
LAB_EXTRA_NS+=("$ATTACKER")
lab_link "$ATTACKER" eth0 198.18.0.250/24
cc -O2 -o "$LAB_DIR/synflood" scripts/synflood.c
lab_lbd --max-connections "$MAXCONN"
lbadm_ -A -t "$LAB_VIP:80" -s rr
for i in 1 2; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")" -g; done
lbadm_ -A -t "$LAB_VIP2:80" -s rr
lbadm_ -a -t "$LAB_VIP2:80" -r "$(lab_real_ip 3):8080" -m
DMAC=$(in_ns "$LAB_DIRECTOR" cat /sys/class/net/eth0/address)
rss() { awk '/^VmRSS/ {print $2}' "/proc/$LAB_LBD_PID/status"; }
counter() { lbadm_ --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
for v in "$LAB_VIP" "$LAB_VIP2"; do in_ns "$LAB_CLIENT" curl -s -m 2 -o /dev/null "http://$v/" || { echo "no service before the flood" >&2; exit 1; }; done
rss_before=$(rss)

# Calibration: one second at full speed; lbd's new connections in it are its SYN rate.
c0=$(counter conns_created)
in_ns "$ATTACKER" "$LAB_DIR/synflood" eth0 "$DMAC" "$LAB_VIP" 80 100000000 1 > /dev/null &
C1=$!
in_ns "$ATTACKER" "$LAB_DIR/synflood" eth0 "$DMAC" "$LAB_VIP2" 80 100000000 1 > /dev/null &
C2=$!
LAB_PIDS+=("$C1" "$C2")
wait "$C1" "$C2" 2>/dev/null || true
saturation=$(( $(counter conns_created) - c0 ))
rate=${FLOOD_RATE:-$saturation}
sleep 1
half=$((SYNS / 2))
in_ns "$ATTACKER" "$LAB_DIR/synflood" eth0 "$DMAC" "$LAB_VIP" 80 "$half" "$FLOOD_SECONDS" "$((rate / 2))" > "$LAB_DIR/flood1" &
F1=$!
in_ns "$ATTACKER" "$LAB_DIR/synflood" eth0 "$DMAC" "$LAB_VIP2" 80 "$((SYNS - half))" "$FLOOD_SECONDS" "$((rate / 2))" > "$LAB_DIR/flood2" &
F2=$!
drops0=$(counter capture_kernel_drops)
LAB_PIDS+=("$F1" "$F2")
sleep 0.5  # the table is full by now
full_during=$(counter conns_current)
made=0 answered=0
: > "$LAB_DIR/times"
while kill -0 "$F1" 2>/dev/null || kill -0 "$F2" 2>/dev/null; do
  for v in "$LAB_VIP" "$LAB_VIP2"; do
    made=$((made + 1))
    if t=$(in_ns "$LAB_CLIENT" curl -s -m 2 -o /dev/null -w '%{time_total}' "http://$v/"); then
      answered=$((answered + 1))
      echo "$t" >> "$LAB_DIR/times"
    fi
  done
done
wait "$F1" "$F2" 2>/dev/null || true
flood_end=$(date +%s.%N)
recovered=none
for k in $(seq 1 100); do
  if in_ns "$LAB_CLIENT" curl -s -m 1 -o /dev/null "http://$LAB_VIP/" &&
     in_ns "$LAB_CLIENT" curl -s -m 1 -o /dev/null "http://$LAB_VIP2/"; then
    recovered=$(awk -v a="$(date +%s.%N)" -v b="$flood_end" 'BEGIN {printf "%.3f", a - b}')
    break
  fi
done
after_ok=0
for k in $(seq 1 10); do
  for v in "$LAB_VIP" "$LAB_VIP2"; do in_ns "$LAB_CLIENT" curl -s -m 2 -o /dev/null "http://$v/" && after_ok=$((after_ok + 1)); done
done
sent=$(awk '{s += $2} END {print s}' "$LAB_DIR/flood1" "$LAB_DIR/flood2")
p50=$(sort -n "$LAB_DIR/times" | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]; else print "-"}')
p99=$(sort -n "$LAB_DIR/times" | awk '{a[NR] = $1} END {if (!NR) {print "-"; exit} i = int(NR * 0.99 + 0.5); if (i < 1) i = 1; print a[i]}')
echo "result: saturation_syns_per_s $saturation"
echo "result: syns_sent $sent"
echo "result: flood_rate_per_s $(cat "$LAB_DIR/flood1" "$LAB_DIR/flood2" | sed -E 's/.*\(([0-9]+)\/s\)/\1/' | awk '{s += $1} END {print s}')"
echo "result: legit_made $made"
echo "result: legit_answered $answered"
echo "result: legit_p50_s $p50"
echo "result: legit_p99_s $p99"
echo "result: recovered_after_s $recovered"
echo "result: after_flood_answered $after_ok of 20"
echo "result: table_during $full_during of $MAXCONN"
echo "result: embryonic_evicted $(counter embryonic_evicted)"
echo "result: embryonic_short_timeouts $(counter embryonic_short_timeouts)"
echo "result: drop_conn_table_full $(counter drop_conn_table_full)"
echo "result: capture_kernel_drops_during $(( $(counter capture_kernel_drops) - drops0 ))"
echo "result: rx_frames $(counter rx_frames)"
echo "result: rss_kb_before $rss_before"
echo "result: rss_kb_after $(rss)"
kill -0 "$LAB_LBD_PID" 2>/dev/null && echo "result: lbd_running yes" || echo "result: lbd_running no"
