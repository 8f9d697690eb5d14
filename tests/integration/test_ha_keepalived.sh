#!/usr/bin/env bash
# Two directors, real keepalived (VRRP only) owning the VIP, lbd's connection sync
# following its state through scripts/keepalived/lbd-keepalived-notify (the packaged
# recipe), three DR reals with nginx (scripts/lab_directors.sh draws the lab).
#
# Under 12 long downloads and wrk, the master's keepalived and lbd are SIGKILLed: the
# backup takes the VIP, every download completes intact (the connections it learnt by
# sync), new connections succeed within keepalived's master-down time plus 1 s. The old
# master comes back as backup (nopreempt) without disturbing anything. The passive backup
# never answers ARP for the VIP nor forwards.
. "$(dirname "$0")/common.sh"
. "$HERE/../../scripts/lab_directors.sh"
lab_init
trap lab_cleanup EXIT
command -v keepalived >/dev/null || fail "keepalived is not installed (scripts/deps.sh installs it)"
head -c 30000000 /dev/urandom > "$LAB_DIR/big"
export LAB_NGINX_KEEPALIVE=60
lab_ha_create || fail "the lab did not come up"
V=$LAB_VIP
D1=$(lab_dir_ns 1) D2=$(lab_dir_ns 2)

lab_ha_director 1 || fail "director 1 did not start"
lab_ha_wait_role 1 master || fail "d1 did not become master"  # the higher priority wins the first election
lab_ha_director 2 || fail "director 2 did not start"
lab_ha_wait_role 2 backup || fail "d2 did not become backup"
lab_vip_on 1 || fail "the VIP is not on d1"
lab_vip_on 2 && fail "the VIP is on the backup d2 too"
echo "ok: d1 is VRRP master with the VIP and lbd's master sync daemon; d2 is backup"
assert_eq "master sync daemon (mcast=eth0, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" \
  "$(lab_adm 1 -L --daemon)" "lbadm -L --daemon on d1 (ipvsadm's format)"

# The passive backup: ARP for the VIP unanswered, nothing forwarded.
arping_ok=$(ip netns exec "$LAB_CLIENT" /usr/bin/python3 - "$V" <<'PY'
import sys
from scapy.all import ARP, Ether, srp, conf
conf.verb = 0
ans, _ = srp(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=sys.argv[1]), iface="eth0", timeout=1, multi=True)
print(" ".join(sorted({r[1].hwsrc for r in ans})))
PY
)
d1mac=$(ip netns exec "$D1" cat /sys/class/net/eth0/address)
assert_eq "$d1mac" "$arping_ok" "only the master (its kernel, keepalived's VIP) answers ARP for the VIP"
assert_eq "real1 1
real2 1
real3 1" "$(count_answers 3)" "traffic through d1"

# The load: 12 downloads of 30 MB at 2 MB/s (15 s each), wrk on keep-alive connections,
# and a probe making a new connection every 100 ms.
WANT=$(sha256sum < "$LAB_DIR/big" | cut -d' ' -f1)
DL=()
for k in $(seq 1 12); do
  in_ns "$LAB_CLIENT" timeout 60 curl -s --limit-rate 2M "http://$V/big" -o "$LAB_DIR/dl$k" &
  DL+=($!)
done
in_ns "$LAB_CLIENT" timeout 60 wrk -t2 -c8 -d20s "http://$V/" > "$LAB_DIR/wrk.txt" &
WRK=$!
probe() {
  local end=$((SECONDS + 25))
  while [ "$SECONDS" -lt "$end" ]; do
    local t; t=$(date +%s.%N)  # when the connection was begun
    if in_ns "$LAB_CLIENT" curl -s -m 0.5 "http://$V/" >/dev/null 2>&1; then echo "$t ok"; else echo "$t fail"; fi
    sleep 0.1
  done
}
probe > "$LAB_DIR/probe.txt" &
PROBE=$!
sleep 3
synced=$(lab_adm 2 -L -n -c | awk '$1 == "TCP" && $3 == "ESTABLISHED"' | wc -l)
[ "$synced" -ge 12 ] || fail "d2 learnt $synced established connections by sync, fewer than the 12 downloads: $(lab_adm 2 --lbd-counters | grep sync)"
echo "ok: the backup learnt $synced established connections by sync"
[ "$(lab_adm 2 --lbd-counters | awk '$1 == "drop_backup_only" {print $2}')" = 0 ] || fail "the backup was given traffic"

# The master dies: keepalived and lbd SIGKILLed.
KILLED=$(date +%s.%N)
lab_ha_kill 1
lab_ha_wait_role 2 master || fail "d2 did not take over"
lab_vip_on 2 || fail "d2 did not take the VIP"
echo "ok: d2 took the VIP and became the sync master"
sleep 4

# The old master comes back (its lbd repairs what the killed one left; the VIP keepalived
# left on it goes as at a reboot): backup, as nopreempt says, and nothing is disturbed.
ip netns exec "$D1" ip addr del "$V/32" dev eth0 2>/dev/null || true
lab_ha_director 1 || fail "director 1 did not come back"
lab_ha_wait_role 1 backup || fail "the returning d1 is not backup"
lab_vip_on 1 && fail "the returning d1 took the VIP back"
echo "ok: d1 came back as backup"

failed=0
for k in $(seq 1 12); do
  wait "${DL[$((k - 1))]}" || true
  [ "$(sha256sum < "$LAB_DIR/dl$k" | cut -d' ' -f1)" = "$WANT" ] || { failed=$((failed + 1)); echo "download $k: $(stat -c %s "$LAB_DIR/dl$k") bytes"; }
done
assert_eq 0 "$failed" "downloads broken by the failover (of 12)"
wait "$WRK" || true
wait "$PROBE" || true
# New connections: the first probe begun after the kill that succeeded, and how long after.
recovery=$(awk -v t="$KILLED" '$1 > t && $2 == "ok" {printf "%.2f", $1 - t; exit}' "$LAB_DIR/probe.txt")
[ -n "$recovery" ] || fail "no new connection succeeded after the failover: $(tail "$LAB_DIR/probe.txt")"
# keepalived's master-down interval: 3 x advert_int + (256 - priority) / 256 s.
limit=$(awk 'BEGIN {print 3 * 1 + (256 - 100) / 256 + 1}')
awk -v r="$recovery" -v l="$limit" 'BEGIN {exit !(r <= l)}' ||
  fail "new connections recovered after ${recovery} s, more than ${limit} s"
echo "ok: new connections succeed again ${recovery} s after the master died (limit ${limit} s)"
echo "info: wrk across the failover: $(grep -E 'requests in|Socket errors' "$LAB_DIR/wrk.txt" | tr -s ' ' | tr '\n' ' ')"
answers=$(count_answers 6)
grep -q FAILED <<< "$answers" && fail "requests through d2 failed after d1 came back: $answers"
assert_eq 6 "$(echo "$answers" | awk '{n += $2} END {print n}')" "requests through d2 after d1 came back"
synced=$(lab_adm 1 --lbd-counters | awk '$1 == "sync_created" {print $2}')
[ "${synced:-0}" -gt 0 ] || fail "the returning d1 learns nothing from d2's sync"
echo "ok: the returning backup d1 learns d2's connections ($synced)"

# lbd --takeover on the backup keeps its role (keepalived says nothing on an lbd restart).
old=${LAB_LBD[1]}
lab_dir_lbd 1 --vip-arp never --takeover || fail "lbd --takeover on d1 did not start"
wait "$old" 2>/dev/null || true
assert_eq "backup sync daemon (mcast=eth0, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" \
  "$(lab_adm 1 -L --daemon)" "the backup's sync daemon runs again after lbd --takeover"
count_answers 6 >/dev/null
sleep 0.5
synced=$(lab_adm 1 --lbd-counters | awk '$1 == "sync_created" {print $2}')
[ "${synced:-0}" -gt 0 ] || fail "the restarted backup learns nothing from d2's sync"
[ "$(lab_adm 1 --lbd-counters | awk '$1 == "drop_backup_only" {print $2}')" = 0 ] || fail "the restarted backup was given traffic"
echo "ok: the restarted backup is passive and learns d2's connections ($synced)"
