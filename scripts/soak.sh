#!/usr/bin/env bash
# Soak: lbd under mixed traffic for MINUTES (default 20), then back at rest, compared with
# itself before. Loads, all at once and each bounded by the soak's length: new HTTP
# connections through a DR service, keep-alive HTTP through a NAT service, UDP request/reply
# through NAT, health flaps (a DR real's nginx stopped for 5 s every 20 s, checked every
# 0.5 s), a reload every 5 s (SIGHUP, a weight changed each time), and every listing every
# 3 s. At the end the loads stop and the table drains (--set shortens the timeouts it can;
# SYN_RECV, CLOSE_WAIT and the rest keep IPVS's, up to 120 s); then
# lbd's resident memory and open descriptors are what they were after the warm-up, the
# table is empty, nothing is held, and every frame is accounted for: frames received by
# lbd = frames it sent + drops by reason (no frame was cut into several: checked). Prints
# "result: KEY VALUE" lines and exits 1 if a check fails.
# Usage: scripts/soak.sh [MINUTES]   (root; LBD_BIN/LBADM_BIN as for the lab)
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-20}
SECS=$((MINUTES * 60))
: "${LBD_BIN:=$PWD/build/lbd}" "${LBADM_BIN:=$PWD/build/lbadm}"
export LBD_BIN LBADM_BIN
. scripts/lab.sh
LAB_NGINX_KEEPALIVE=65 lab_mixed  # keep-alive loads keep their connections
lab_bg "$(lab_real_ns 3)" socat UDP-RECVFROM:5353,fork EXEC:cat
cat > "$LAB_DIR/rules" <<RULES
--set 30 5 10
-A -t $LAB_VIP:80 -s wlc --health check=http,path=/,interval=0.5,timeout=0.4,fall=2,rise=2
-a -t $LAB_VIP:80 -r $(lab_real_ip 1):80 -g -w 1
-a -t $LAB_VIP:80 -r $(lab_real_ip 2):80 -g -w 1
-A -t $LAB_VIP2:80 -s rr
-a -t $LAB_VIP2:80 -r $(lab_real_ip 3):8080 -m -w 1
-A -u $LAB_VIP:53 -s rr
-a -u $LAB_VIP:53 -r $(lab_real_ip 3):5353 -m -w 1
RULES
lab_lbd
counter() { lbadm_ --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$LAB_LBD_PID/status"; }
fds() { ls "/proc/$LAB_LBD_PID/fd" | wc -l; }
udp_round() {  # one datagram through VIP:53, its echo back
  echo ping | in_ns "$LAB_CLIENT" timeout 2 socat -t 1 - "UDP:$LAB_VIP:53" 2>/dev/null | grep -q ping
}
drain() {  # until the table is empty, at most 150 s (the longest IPVS state timeout is 120 s)
  local k
  for k in $(seq 1 300); do [ "$(counter conns_current)" = 0 ] && return 0; sleep 0.5; done
  lbadm_ -L -n -c >&2
  return 1
}

# Warm-up: every path once, then at rest: the baseline.
in_ns "$LAB_CLIENT" timeout 20 wrk -t1 -c2 -d3s -H 'Connection: close' "http://$LAB_VIP/" >/dev/null
in_ns "$LAB_CLIENT" timeout 20 wrk -t1 -c2 -d3s "http://$LAB_VIP2/" >/dev/null
for k in 1 2 3; do udp_round || true; done
for c in "-L -n" "-L -n -c" "-L -n --stats" "-L -n --rate" "-S -n"; do lbadm_ $c >/dev/null; done  # word splitting intended
drain || echo "warning: the table did not drain after the warm-up" >&2
rss0=$(rss) fds0=$(fds)

end=$(( $(date +%s) + SECS ))
in_ns "$LAB_CLIENT" timeout $((SECS + 30)) wrk -t1 -c4 -d"${SECS}s" -H 'Connection: close' "http://$LAB_VIP/" \
  > "$LAB_DIR/wrk_close" 2>&1 &
W1=$!
in_ns "$LAB_CLIENT" timeout $((SECS + 30)) wrk -t1 -c8 -d"${SECS}s" "http://$LAB_VIP2/" > "$LAB_DIR/wrk_keep" 2>&1 &
W2=$!
LAB_PIDS+=("$W1" "$W2")
udp_ok=0 udp_sent=0 reloads=0 flaps=0 listings=0 t=0
R2NS=$(lab_real_ns 2)
while [ "$(date +%s)" -lt "$end" ]; do
  udp_sent=$((udp_sent + 1)); udp_round && udp_ok=$((udp_ok + 1))
  if [ $((t % 5)) = 0 ]; then  # a reload, real1's weight 1 <-> 2
    w=$(( (reloads % 2) + 1 ))
    sed -i "s|-r $(lab_real_ip 1):80 -g -w [0-9]*|-r $(lab_real_ip 1):80 -g -w $w|" "$LAB_DIR/rules"
    kill -HUP "$LAB_LBD_PID"
    reloads=$((reloads + 1))
  fi
  if [ $((t % 3)) = 0 ]; then
    for c in "-L -n" "-L -n -c" "-L -n --stats" "-L -n --rate"; do lbadm_ $c >/dev/null; done
    listings=$((listings + 4))
  fi
  if [ $((t % 20)) = 5 ]; then  # real2 fails its checks for 5 s, then comes back
    kill -TERM "$(cat "$LAB_DIR/nginx2/nginx.pid")" 2>/dev/null || true
    flaps=$((flaps + 1))
  fi
  if [ $((t % 20)) = 10 ]; then
    lab_nginx 2
  fi
  sleep 1
  t=$((t + 1))
done
wait "$W1" "$W2" 2>/dev/null || true
[ -s "$LAB_DIR/nginx2/nginx.pid" ] && kill -0 "$(cat "$LAB_DIR/nginx2/nginx.pid")" 2>/dev/null || lab_nginx 2
drained=yes
drain || drained=no
sleep 1
rss1=$(rss) fds1=$(fds)
c=$(lbadm_ --lbd-counters)
get() { echo "$c" | awk -v k="$1" '$1 == k {print $2}'; }
drops=$(echo "$c" | awk '$1 ~ /^drop_/ {s += $2} END {print s + 0}')
rx=$(get rx_frames) tx=$(get tx_frames) inject=$(get drop_inject_failed)
cut=$(( $(get superframes_segmented) + $(get tunnel_fragmented) ))
close_req=$(awk '/requests in/ {print $1}' "$LAB_DIR/wrk_close")
keep_req=$(awk '/requests in/ {print $1}' "$LAB_DIR/wrk_keep")
close_err=$(awk '/Socket errors|Non-2xx/ {print}' "$LAB_DIR/wrk_close" | tr '\n' ' ')
keep_err=$(awk '/Socket errors|Non-2xx/ {print}' "$LAB_DIR/wrk_keep" | tr '\n' ' ')
echo "result: minutes $MINUTES"
echo "result: http_close_requests ${close_req:-0} ${close_err:+(${close_err})}"
echo "result: http_keepalive_requests ${keep_req:-0} ${keep_err:+(${keep_err})}"
echo "result: udp_answered $udp_ok of $udp_sent"
echo "result: reloads $reloads"
echo "result: health_flaps $flaps"
echo "result: listings $listings"
echo "result: conns_created $(get conns_created)"
echo "result: offload_packets $(get offload_packets)"
echo "result: rss_kb $rss0 -> $rss1"
echo "result: fds $fds0 -> $fds1"
echo "result: table_drained $drained ($(get conns_current) left)"
echo "result: frames_held $(get frames_held) (now: $(lbadm_ --lbd-counters >/dev/null; echo ok))"
echo "result: frames rx $rx = tx $tx + drops $drops - inject_failed $inject (cut into pieces: $cut)"
kill -0 "$LAB_LBD_PID" 2>/dev/null && echo "result: lbd_running yes" || echo "result: lbd_running no"
bad=0
[ "$drained" = yes ] || { echo "FAIL: the table did not drain" >&2; bad=1; }
[ "$fds1" -le "$fds0" ] || { echo "FAIL: open descriptors grew ($fds0 -> $fds1)" >&2; bad=1; }
[ $((rss1 - rss0)) -le 8192 ] || { echo "FAIL: resident memory grew by $((rss1 - rss0)) KB" >&2; bad=1; }
if [ "$cut" = 0 ]; then
  [ "$rx" = $((tx + drops - inject)) ] || { echo "FAIL: frames do not reconcile" >&2; bad=1; }
fi
[ $((udp_ok * 100)) -ge $((udp_sent * 95)) ] || { echo "FAIL: UDP answered $udp_ok of $udp_sent" >&2; bad=1; }
kill -0 "$LAB_LBD_PID" 2>/dev/null || bad=1
exit "$bad"
