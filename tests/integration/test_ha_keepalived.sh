#!/usr/bin/env bash
# Two directors, real keepalived (VRRP only) owning the VIP, lbd's connection sync
# following its state through scripts/keepalived/lbd-keepalived-notify (the packaged
# recipe), three DR reals with nginx:
#
#   client 198.18.0.1 ─┐
#   d1 198.18.0.2 ─────┼── bridge ── real1..3 198.18.0.11..13 (VIP on lo)
#   d2 198.18.0.3 ─────┘     VIP 198.18.0.100: keepalived's, on the master's eth0
#
# Under 12 long downloads and wrk, the master's keepalived and lbd are SIGKILLed: the
# backup takes the VIP, every download completes intact (the connections it learnt by
# sync), new connections succeed within keepalived's master-down time plus 1 s. The old
# master comes back as backup (nopreempt) without disturbing anything. The passive backup
# never answers ARP for the VIP nor forwards.
. "$(dirname "$0")/common.sh"
lab_init
trap lab_cleanup EXIT
command -v keepalived >/dev/null || fail "keepalived is not installed (scripts/deps.sh installs it)"
lab_create 3
D1=$LAB_DIRECTOR
D2=lbd2$LAB_ID
ip netns add "$D2"
LAB_EXTRA_NS+=("$D2")
lab_link "$D2" eth0 198.18.0.3/24
head -c 30000000 /dev/urandom > "$LAB_DIR/big"
export LAB_NGINX_KEEPALIVE=60
for i in 1 2 3; do lab_dr_real "$i"; lab_nginx "$i"; done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
V=$LAB_VIP
{
  echo "-A -t $V:80 -s wlc"
  for i in 1 2 3; do echo "-a -t $V:80 -r $(lab_real_ip "$i"):80 -g -w 1"; done
} > "$LAB_DIR/rules"

NOTIFY=$HERE/../../scripts/keepalived/lbd-keepalived-notify
# start_director N: lbd (--vip-arp never: keepalived's VIP, the kernel answers ARP) and
# keepalived in director N's namespace.
start_director() {
  local n=$1 ns sock prio
  ns=$([ "$n" = 1 ] && echo "$D1" || echo "$D2")
  sock=$LAB_DIR/d$n.sock
  prio=$([ "$n" = 1 ] && echo 150 || echo 100)
  local before; before=$(grep -c "capturing on" "$LAB_DIR/lbd$n.log" 2>/dev/null || true)
  ip netns exec "$ns" "$LBD_BIN" --interface eth0 --socket "$sock" --rules "$LAB_DIR/rules" \
    --offload "${LBD_OFFLOAD:-xdp}" ${LBD_WORKERS:+--workers "$LBD_WORKERS"} --vip-arp never \
    2>>"$LAB_DIR/lbd$n.log" &
  eval "LBD$n=$!"
  LAB_PIDS+=($!)
  local k
  for k in $(seq 1 100); do
    [ "$(grep -c "capturing on" "$LAB_DIR/lbd$n.log" 2>/dev/null)" -gt "${before:-0}" ] && break
    sleep 0.05
  done
  [ -S "$sock" ] || fail "lbd on d$n did not start: $(tail -5 "$LAB_DIR/lbd$n.log")"
  cat > "$LAB_DIR/ka$n.conf" <<CONF
global_defs {
  router_id lbd-d$n
  script_user root
}
vrrp_instance lbd_vip {
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 51
  priority $prio
  advert_int 1
  virtual_ipaddress {
    $V/32 dev eth0
  }
  notify_master "$NOTIFY master eth0 51 $sock"
  notify_backup "$NOTIFY backup eth0 51 $sock"
  notify_fault "$NOTIFY fault eth0 51 $sock"
}
CONF
  ip netns exec "$ns" env LBADM="$LBADM_BIN" keepalived --vrrp --dont-fork --log-console --log-detail \
    --use-file "$LAB_DIR/ka$n.conf" --pid "$LAB_DIR/ka$n.pid" --vrrp_pid "$LAB_DIR/ka$n-vrrp.pid" \
    </dev/null >>"$LAB_DIR/ka$n.log" 2>&1 &
  eval "KA$n=$!"
  LAB_PIDS+=($!)
}
adm() { local n=$1; shift; ip netns exec "$([ "$n" = 1 ] && echo "$D1" || echo "$D2")" "$LBADM_BIN" --socket "$LAB_DIR/d$n.sock" "$@"; }
# wait_role N ROLE: until director N's lbd runs ROLE's sync daemon (at most 15 s).
wait_role() {
  local k
  for k in $(seq 1 150); do adm "$1" -L --daemon | grep -q "^$2 sync daemon" && return 0; sleep 0.1; done
  fail "d$1 is not $2 after 15 s: $(adm "$1" -L --daemon); keepalived: $(tail -5 "$LAB_DIR/ka$1.log")"
}
vip_on() { ip netns exec "$1" ip -br addr show dev eth0 | grep -q "$V/32"; }

start_director 1
wait_role 1 master  # the higher priority wins the first election
start_director 2
wait_role 2 backup
vip_on "$D1" || fail "the VIP is not on d1"
vip_on "$D2" && fail "the VIP is on the backup d2 too"
echo "ok: d1 is VRRP master with the VIP and lbd's master sync daemon; d2 is backup"
assert_eq "master sync daemon (mcast=eth0, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)" \
  "$(adm 1 -L --daemon)" "lbadm -L --daemon on d1 (ipvsadm's format)"

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
synced=$(adm 2 -L -n -c | awk '$1 == "TCP" && $3 == "ESTABLISHED"' | wc -l)
[ "$synced" -ge 12 ] || fail "d2 learnt $synced established connections by sync, fewer than the 12 downloads: $(adm 2 --lbd-counters | grep sync)"
echo "ok: the backup learnt $synced established connections by sync"
[ "$(adm 2 --lbd-counters | awk '$1 == "drop_backup_only" {print $2}')" = 0 ] || fail "the backup was given traffic"

# The master dies: keepalived and lbd SIGKILLed.
KILLED=$(date +%s.%N); echo "info: killed at $KILLED"
# (keepalived's VRRP child first: killed after its parent it would see the parent go and
# resign with a priority 0 advertisement, a clean stop rather than a death.)
kill -KILL $(cat "$LAB_DIR/ka1-vrrp.pid") "$KA1" "$LBD1"
wait "$KA1" "$LBD1" 2>/dev/null || true
wait_role 2 master
vip_on "$D2" || fail "d2 did not take the VIP"
echo "ok: d2 took the VIP and became the sync master"
sleep 4

# The old master comes back (its lbd repairs what the killed one left; the VIP keepalived
# left on it goes as at a reboot): backup, as nopreempt says, and nothing is disturbed.
ip netns exec "$D1" ip addr del "$V/32" dev eth0 2>/dev/null || true
start_director 1
wait_role 1 backup
vip_on "$D1" && fail "the returning d1 took the VIP back"
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
echo "$answers" | grep -q FAILED && fail "requests through d2 failed after d1 came back: $answers"
assert_eq 6 "$(echo "$answers" | awk '{n += $2} END {print n}')" "requests through d2 after d1 came back"
synced=$(adm 1 --lbd-counters | awk '$1 == "sync_created" {print $2}')
[ "${synced:-0}" -gt 0 ] || fail "the returning d1 learns nothing from d2's sync"
echo "ok: the returning backup d1 learns d2's connections ($synced)"
