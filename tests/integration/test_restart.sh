#!/usr/bin/env bash
# A restart under load loses nothing, under the real systemd (common.sh's sd_boot) and the
# installed unit: lbd keeps its connection table in systemd's file descriptor store and
# the next lbd adopts it. During a wrk run and a 30 MB download through a DR VIP:
# `systemctl restart lbd` twice, then `dpkg -i` of a newer package (its postinst restarts
# lbd): no failed request, the download intact, `-L -n -c` the same connections to the
# same reals after, the counters carried on. Then the watchdog kills a stopped lbd
# mid-download: its table outlives it in the store, and the download completes.
. "$(dirname "$0")/common.sh"
lab_init
trap 'rc=$?; sd_stop; pkg_purge; lab_teardown "$rc"; exit "$rc"' EXIT
pkg_install

lab_create 3
head -c 30000000 /dev/urandom > "$LAB_DIR/big"
for i in 1 2 3; do lab_dr_real "$i"; lab_nginx "$i"; done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
V=$LAB_VIP
{ echo "-A -t $V:80 -s rr"; for i in 1 2 3; do echo "-a -t $V:80 -r $(lab_real_ip "$i"):80 -g -w 1"; done; } > /etc/lbd/rules
echo 'LBD_OPTS="--interface eth0"' > /etc/default/lbd
sd_boot
sdctl start lbd || fail "systemctl start lbd: $(sdctl status lbd --no-pager 2>&1 | tail -20)"
assert_eq "real1 1
real2 1
real3 1" "$(count_answers 3)" "traffic through lbd under systemd"

lbadm() { in_sd lbadm "$@"; }
counter() { lbadm --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
# The established connections, client -> real, and the real the download is on.
conns() { lbadm -L -n -c | awk '$1 == "TCP" && $3 == "ESTABLISHED" {print $4, $6}' | sort; }
still_open() {  # those of "client real" lines on stdin whose client socket is still open
  local c r open; open=$(in_ns "$LAB_CLIENT" ss -Htn state established "dst $V")
  while read -r c r; do echo "$open" | grep -q " $c " && echo "$c $r"; done || true
}
restarted() {  # restarted WHAT OLD_PID: a new lbd runs and adopted connections
  local pid; pid=$(show MainPID)
  [ "$pid" != "$2" ] && [ "$pid" != 0 ] || fail "$1: lbd was not restarted (MainPID $pid)"
  assert_eq active "$(sdctl is-active lbd)" "$1: lbd active again"
  local n; n=$(counter handover_adopted)
  [ "${n:-0}" -ge 2 ] || fail "$1: the new lbd adopted ${n:-0} connections: $(in_sd journalctl -u lbd 2>/dev/null | tail -5; tail -20 "$LAB_DIR/bg.log")"
  echo "info: $1: $n connections taken over; the data path was dark for $(counter handover_dark_ms) ms"
}

# A newer package: this build's, its version raised.
deb=$(ls "$LAB_DIR"/pkg/lbd_*.deb)
dpkg-deb -R "$deb" "$LAB_DIR/newer"
version=$(awk '/^Version:/ {print $2}' "$LAB_DIR/newer/DEBIAN/control")
sed -i "s/^Version: .*/Version: $version+1/" "$LAB_DIR/newer/DEBIAN/control"
dpkg-deb -b "$LAB_DIR/newer" "$LAB_DIR/newer.deb" >/dev/null

# A sync daemon runs again after each restart (its --start-daemon line in the store).
lbadm --start-daemon master --mcast-interface eth0 --syncid 7 || fail "--start-daemon master"
daemon_before=$(lbadm -L --daemon)
load_start "$V" 1500K 16
sleep 2
before=$(conns)
stats_before=$(lbadm -L -n --stats | awk -v v="$V:80" '$2 == v {print $3}')
pid=$(show MainPID)
sdctl restart lbd || fail "systemctl restart lbd failed"
restarted "systemctl restart (1)" "$pid"
sleep 2
pid=$(show MainPID)
sdctl restart lbd || fail "systemctl restart lbd failed"
restarted "systemctl restart (2)" "$pid"
sleep 2
pid=$(show MainPID)
in_sd dpkg -i "$LAB_DIR/newer.deb" >/dev/null || fail "dpkg -i of the newer package failed"
assert_eq "$version+1" "$(dpkg-query -W -f='${Version}' lbd)" "the newer package is installed"
restarted "dpkg -i (postinst restart)" "$pid"
missing=$(comm -23 <(echo "$before" | grep -v '^$') <(conns) | still_open)
assert_eq "" "$missing" "the connections still open are listed after three restarts, to the same reals"
assert_eq "$daemon_before" "$(lbadm -L --daemon)" "the master sync daemon runs again after three restarts"

load_check "two restarts and an upgrade"
stats_after=$(lbadm -L -n --stats | awk -v v="$V:80" '$2 == v {print $3}')
[ "$stats_after" -ge "$stats_before" ] || fail "the service's connection count went back: $stats_before, then $stats_after"
echo "ok: the counters carried on ($stats_before connections before, $stats_after after)"

# The watchdog kills a stopped lbd: nothing is handed over at its exit, but its table is
# the store's memfds, which outlive it.
mkdir -p "$SD_UNITS/lbd.service.d"
printf '[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\nRestartSec=1s\n' > "$SD_UNITS/lbd.service.d/test.conf"
sdctl daemon-reload
sdctl restart lbd
in_ns "$LAB_CLIENT" timeout 90 curl -s --limit-rate 2M "http://$V/big" -o "$LAB_DIR/big2.got" &
DL=$!
sleep 3
pid=$(show MainPID)
in_sd kill -STOP "$pid"
for k in $(seq 1 150); do
  [ "$(show NRestarts)" -ge 1 ] && [ "$(sdctl is-active lbd)" = active ] && break
  sleep 0.1
done
assert_eq 1 "$(show NRestarts)" "the watchdog killed the stopped lbd and systemd restarted it"
restarted "the watchdog's restart" "$pid"
wait "$DL" || fail "the download across the watchdog's restart failed"
assert_eq "$LOAD_WANT" "$(sha256sum < "$LAB_DIR/big2.got" | cut -d' ' -f1)" "a download across a watchdog kill and restart is intact"
