#!/usr/bin/env bash
# lbd --metrics under traffic, read by the real consumers: Debian's Prometheus scrapes it
# (node_exporter's ipvs names, lbd's own) and PromQL through its HTTP API returns what the
# traffic made; Debian's Chromium (headless, DevTools protocol) shows the status page and
# sees a real go down and come back on the open page within its detection time. The
# page's screenshot is kept in the lab directory (LAB_KEEP=DIR keeps it).
. "$(dirname "$0")/common.sh"
CDP_PY="$(cd "$(dirname "$0")" && pwd)/cdp.py"
lab_init
CDP="ip netns exec $LAB_CLIENT /usr/bin/python3 $CDP_PY"  # DevTools listens on the client's 127.0.0.1
lab_create 2
for i in 1 2; do lab_dr_real "$i"; lab_nginx "$i"; done
for i in 1 2; do lab_wait_port "$(lab_real_ns "$i")" 80; done
M="$LAB_DIRECTOR_IP:9587"
lab_lbd --metrics "$M"
R1=$(lab_real_ip 1); R2=$(lab_real_ip 2)
# Detection: interval 1 s, timeout 0.5 s, fall 2: down within 2.5 s of the real's end.
lbadm_ -A -t "$LAB_VIP:80" -s wrr --health "check=http,interval=1,timeout=0.5,rise=1,fall=2"
lbadm_ -a -t "$LAB_VIP:80" -r "$R1" -w 1
lbadm_ -a -t "$LAB_VIP:80" -r "$R2" -w 3

# --- The endpoint itself ---------------------------------------------------------------
hdr=$(in_ns "$LAB_CLIENT" curl -s -D - -o /dev/null "http://$M/metrics")
grep -qi "^content-type: text/plain; version=0.0.4" <<<"$hdr" || fail "/metrics content type: $hdr"
assert_eq 404 "$(in_ns "$LAB_CLIENT" curl -s -o /dev/null -w '%{http_code}' "http://$M/nothing")" "an unknown path is 404"
assert_eq 405 "$(in_ns "$LAB_CLIENT" curl -s -o /dev/null -w '%{http_code}' -X POST "http://$M/metrics")" "POST is refused"
# A client that never finishes its request does not hold the server.
in_ns "$LAB_CLIENT" timeout 3 socat -u /dev/zero "TCP:$M" 2>/dev/null || true
assert_eq 200 "$(in_ns "$LAB_CLIENT" curl -s -m 3 -o /dev/null -w '%{http_code}' "http://$M/metrics")" "serves after an oversized request"

# --- Prometheus --------------------------------------------------------------------------
mkdir -p "$LAB_DIR/prom"
cat > "$LAB_DIR/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lbd
    static_configs:
      - targets: ['$M']
CONF
lab_bg "$LAB_CLIENT" prometheus --config.file="$LAB_DIR/prometheus.yml" --storage.tsdb.path="$LAB_DIR/prom" \
  --web.listen-address=127.0.0.1:9090 --log.level=warn
lab_wait_port "$LAB_CLIENT" 9090
# promql EXPR: the first result's value ("" if none).
promql() {
  in_ns "$LAB_CLIENT" curl -s -m 5 http://127.0.0.1:9090/api/v1/query --data-urlencode "query=$1" |
    /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
# prom_expect EXPR VALUE WHAT: until Prometheus answers VALUE (at most 15 s).
prom_expect() {
  local k got=""
  for k in $(seq 1 75); do
    got=$(promql "$1" 2>/dev/null || true)
    [ "$got" = "$2" ] && { echo "ok: $3 (Prometheus: $1 = $2)"; return 0; }
    sleep 0.2
  done
  fail "$3: Prometheus answers $1 = [$got], expected [$2]"
}
prom_expect 'up{job="lbd"}' 1 "Prometheus scrapes lbd"
out=$(count_answers 40 | tr '\n' ' ')
assert_eq "real1 10 real2 30 " "$out" "40 requests by wrr 1:3"
prom_expect 'node_ipvs_connections_total' 40 "node_exporter's total connections"
prom_expect 'sum(node_ipvs_backend_weight{local_address="'"$LAB_VIP"'",local_port="80",proto="TCP",local_mark=""})' 4 \
  "node_exporter's backend weights with its labels"
prom_expect 'lbd_real_connections_total{remote_address="'"$R2"'"}' 30 "per-real connections"
prom_expect 'node_ipvs_backend_connections_inactive{remote_address="'"$R1"'"}' 10 "inactive connections (TIME_WAIT) of real1"
prom_expect 'lbd_real_check_ok{remote_address="'"$R1"'"}' 1 "the last check of real1 passed"
# Open connections: wrk keeps 8 alive for 6 s; the active gauge counts them.
in_ns "$LAB_CLIENT" timeout 20 wrk -t 2 -c 8 -d 6s "http://$LAB_VIP/" >"$LAB_DIR/wrk.out" 2>&1 &
WRK=$!
prom_expect 'sum(node_ipvs_backend_connections_active)' 8 "8 wrk connections active"
v=$(promql 'sum(rate(lbd_service_pkts_in_total[3s]))')
awk -v v="$v" 'BEGIN { exit !(v > 100) }' || fail "packet rate under wrk: [$v] per second"
echo "ok: Prometheus computes the packet rate under load ($v/s)"
wait "$WRK"
prom_expect 'lbd_drops_total{reason="bad_checksum"}' 0 "drop counters by reason"
prom_expect 'lbd_connections_capacity' 1048576 "table capacity"

# --- The status page in Chromium ---------------------------------------------------------
lab_bg "$LAB_CLIENT" chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
  --user-data-dir="$LAB_DIR/chrome" --remote-debugging-port=9222 --window-size=1280,800 about:blank
$CDP 9222 open "http://$M/"
row() { echo "document.querySelector('[data-service=\"TCP $LAB_VIP:80\"] tr[data-real=\"$1:80\"] .state')?.textContent"; }
$CDP 9222 expect "$(row "$R1")" UP 5 >/dev/null || fail "the page does not show real1 UP"
$CDP 9222 expect "$(row "$R2")" UP 5 >/dev/null || fail "the page does not show real2 UP"
$CDP 9222 expect "document.getElementById('live').className" "pill ok" 5 >/dev/null || fail "the page is not live"
echo "ok: the page renders the service and both reals UP"
kill "$(cat "$LAB_DIR/nginx2/nginx.pid")"
t=$($CDP 9222 expect "$(row "$R2")" DOWN 6) || fail "real2 never shown DOWN"
# Detection 2.5 s at most (fall 2 at 1 s, 0.5 s timeout), then the page's next second.
awk -v t="$t" 'BEGIN { exit !(t <= 4.0) }' || fail "real2 shown DOWN after $t s (detection 2.5 s + 1 s page)"
echo "ok: real2 shown DOWN on the open page $t s after nginx stopped (detection 2.5 s, page every 1 s)"
[ "$($CDP 9222 eval "$(row "$R1")")" = UP ] || fail "real1 should still show UP"
$CDP 9222 screenshot "$LAB_DIR/status-down.png"
prom_expect 'lbd_real_up{remote_address="'"$R2"'"}' 0 "lbd_real_up of the stopped real"
prom_expect 'node_ipvs_backend_weight{remote_address="'"$R2"'"}' 0 "a down real has weight 0 in IPVS's terms"
lab_bg "$(lab_real_ns 2)" nginx -c "$LAB_DIR/nginx2/nginx.conf" -e "$LAB_DIR/nginx2/error.log"
t=$($CDP 9222 expect "$(row "$R2")" UP 6) || fail "real2 never shown UP again"
echo "ok: real2 back UP on the page after $t s"
$CDP 9222 screenshot "$LAB_DIR/status.png"
sz=$(stat -c %s "$LAB_DIR/status.png")
[ "$sz" -gt 20000 ] || fail "screenshot is $sz bytes"
echo "ok: screenshot $LAB_DIR/status.png ($sz bytes)"

# --- JSON ------------------------------------------------------------------------------------
lbadm_ -L -n --json | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["schema"] == 1, d
s = d["services"][0]
assert (s["protocol"], s["address"], s["port"], s["scheduler"]) == ("TCP", "'"$LAB_VIP"'", 80, "wrr"), s
assert [(r["address"], r["weight"], r["state"]) for r in s["reals"]] == [("'"$R1"'", 1, "up"), ("'"$R2"'", 3, "up")], s["reals"]
assert s["stats"]["conns"] >= 40, s["stats"]
' || fail "lbadm -L -n --json"
echo "ok: lbadm -L -n --json"
lbadm_ --lbd-counters --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["counters"]["conns_created"] >= 40' ||
  fail "--lbd-counters --json"
lbadm_ --lbd-health --json | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert all(r["state"]=="up" and r["result"]=="ok" for r in d["reals"]), d' ||
  fail "--lbd-health --json"
rc=0; lbadm_ -A -t 198.18.0.200:80 --json 2>"$LAB_DIR/err" || rc=$?
assert_eq 2 "$rc" "--json on a change is refused"
lbadm_ -L -n | grep -q 198.18.0.200 && fail "a refused --json line changed the table"
echo "ok: JSON listings"
[ -n "${LAB_KEEP:-}" ] && cp "$LAB_DIR"/status*.png "$LAB_KEEP"/
exit 0
