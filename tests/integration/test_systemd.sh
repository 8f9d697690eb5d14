#!/usr/bin/env bash
# lbd under its real unit, run by a real systemd. The .deb is installed, then systemd runs
# as PID 1 of its own PID, mount, UTS and IPC namespaces inside the lab's director network
# namespace, with its own /run and a unit path ($SYSTEMD_UNIT_PATH) holding only the
# installed lbd.service and empty stand-ins for the targets it orders against: it starts
# nothing else (no tmpfiles, sysctl or journald, which would act on the host). This
# machine has no systemd of its own; what this one leaves (cgroup directories, private
# /tmp directories) is removed at the end and checked gone.
# Then: `systemctl start lbd` (Type=notify: returns once lbd says READY=1), the sandbox as
# applied (capabilities, no new privileges, seccomp, read-only /usr), traffic, `systemctl
# reload lbd` after the rules file changes, the watchdog killing a stopped lbd and
# Restart= bringing it back with its rules, and `dpkg --purge` stopping it (prerm) with
# nothing left behind.
. "$(dirname "$0")/common.sh"
lab_init
snapshot() {
  { find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d; ls -d /tmp/systemd-private-* /var/tmp/systemd-private-* || true; } 2>/dev/null | sort
}
before=$(snapshot)
SDPID=
stop_systemd() {
  [ -n "$SDPID" ] || return 0
  timeout 30 nsenter -t "$SDPID" -m -p systemctl stop lbd >/dev/null 2>&1 || true
  kill -KILL "$SDPID" 2>/dev/null || true  # PID 1 of its namespace: the rest goes with it
  local k d
  for k in $(seq 1 100); do kill -0 "$SDPID" 2>/dev/null || break; sleep 0.05; done
  SDPID=
  # What it made on the host: cgroup directories (no cgroup manager here reaps them) and
  # private /tmp directories of a service it could not stop.
  comm -13 <(echo "$before") <(snapshot) | sort -r | while read -r d; do
    case "$d" in
      /sys/fs/cgroup/*) find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true ;;
      /tmp/systemd-private-*-lbd.service-* | /var/tmp/systemd-private-*-lbd.service-*) rm -rf "$d" ;;
    esac
  done
}
trap 'rc=$?; rm -f /etc/lbd/test-check.sh /etc/lbd/test-check-root.sh; stop_systemd; pkg_purge; lab_teardown "$rc"; exit "$rc"' EXIT
pkg_install

lab_create 2
for i in 1 2; do lab_dr_real "$i"; lab_nginx "$i"; done
for i in 1 2; do lab_wait_port "$(lab_real_ns "$i")" 80; done
V=$LAB_VIP
printf '%s\n' "-A -t $V:80 -s rr" "-a -t $V:80 -r $(lab_real_ip 1):80 -g -w 1" \
  "-a -t $V:80 -r $(lab_real_ip 2):80 -g -w 1" > /etc/lbd/rules
echo 'LBD_OPTS="--interface eth0"' > /etc/default/lbd
# GRO on, as on a real NIC: lbd turns it off while it runs and must restore it, even after
# the watchdog killed it (the next lbd reads what to restore from the table it left).
in_ns "$LAB_DIRECTOR" ethtool -K eth0 gro on
gro() { in_ns "$LAB_DIRECTOR" ethtool -k eth0 | awk '/^generic-receive-offload:/ {print $2}'; }
assert_eq on "$(gro)" "GRO on before lbd"

# The unit path: the installed lbd.service and empty targets.
U=$LAB_DIR/units
mkdir -p "$U"
ln -s /usr/lib/systemd/system/lbd.service "$U/lbd.service"
for t in lbdtest sysinit basic shutdown network network-online multi-user; do
  printf '[Unit]\nDescription=%s (empty, for the test)\nDefaultDependencies=no\n' "$t" > "$U/$t.target"
done
lab_bg "$LAB_DIRECTOR" unshare --pid --fork --mount --uts --ipc --mount-proc --propagation private \
  bash -c "mount -t tmpfs tmpfs /run &&
           exec env SYSTEMD_UNIT_PATH=$U /lib/systemd/systemd --system --unit=lbdtest.target --log-target=console"
UNSHARE=${LAB_PIDS[-1]}
for k in $(seq 1 100); do
  SDPID=$(pgrep -P "$UNSHARE" -x systemd || true)
  [ -n "$SDPID" ] && [ "$(timeout 5 nsenter -t "$SDPID" -m -p systemctl is-system-running 2>/dev/null)" = running ] && break
  sleep 0.1
done
[ -n "$SDPID" ] || fail "systemd did not start as PID 1 of its namespace: $(tail -20 "$LAB_DIR/bg.log")"
sdctl() { timeout 60 nsenter -t "$SDPID" -m -p systemctl "$@"; }
in_sd() { nsenter -t "$SDPID" -m -p -n "$@"; }  # lbd's /run/lbd is in systemd's mount namespace
show() { sdctl show lbd -p "$1" --value; }
assert_eq running "$(sdctl is-system-running 2>&1)" "systemd runs (PID $SDPID outside)"

sdctl start lbd || fail "systemctl start lbd: $(sdctl status lbd --no-pager 2>&1 | tail -20)"
assert_eq active "$(sdctl is-active lbd)" "systemctl start lbd returns with lbd active (READY=1)"
pid=$(show MainPID)
assert_eq off "$(gro)" "lbd turned GRO off"
status=$(in_sd cat "/proc/$pid/status")
assert_eq 00000080000030c0 "$(echo "$status" | awk '/^CapEff:/ {print $2}')" \
  "CapEff: CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_SETUID and CAP_SETGID only"
assert_eq 00000080000030c0 "$(echo "$status" | awk '/^CapBnd:/ {print $2}')" "the bounding set holds nothing else"
assert_eq 1 "$(echo "$status" | awk '/^NoNewPrivs:/ {print $2}')" "NoNewPrivs"
assert_eq 2 "$(echo "$status" | awk '/^Seccomp:/ {print $2}')" "a seccomp filter (SystemCallFilter=)"
if in_sd nsenter -t "$pid" -m sh -c 'touch /usr/lbd-probe' 2>/dev/null; then
  rm -f /usr/lbd-probe
  fail "lbd's /usr is writable (ProtectSystem=strict)"
fi
echo "ok: /usr is read-only for lbd"
assert_eq "$(cat /etc/lbd/rules)" "$(in_sd lbadm -S -n)" "lbd restored /etc/lbd/rules"
assert_eq "real1 2
real2 2" "$(count_answers 4)" "traffic through lbd under systemd, spread by rr"
assert_eq xdp-generic "$(in_sd lbadm --lbd-counters | awk '$1 == "offload" {print $2}')" \
  "the XDP flow cache runs under the unit's capabilities and seccomp filter ($(grep -a "offload" "$LAB_DIR/bg.log" | tail -3))"

# systemctl reload: the difference of the edited file.
sed -i "s|^-a -t $V:80 -r $(lab_real_ip 2):80 -g -w 1$|-a -t $V:80 -r $(lab_real_ip 2):80 -g -w 3|" /etc/lbd/rules
sdctl reload lbd || fail "systemctl reload lbd failed"
assert_eq "$(cat /etc/lbd/rules)" "$(in_sd lbadm -S -n)" "systemctl reload applied the file"
assert_eq "$pid" "$(show MainPID)" "reload kept the process"
assert_eq active "$(sdctl is-active lbd)" "active after the reload (READY=1 again)"

# A bad file: systemctl reload fails (ExecReload checks it first) and the running rules stay.
good=$(cat /etc/lbd/rules)
echo "-a -t $V:80 -r $(lab_real_ip 1):80 -g -w banana" >> /etc/lbd/rules
rc=0; sdctl reload lbd >/dev/null 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "systemctl reload succeeded with a bad rules file"
echo "ok: systemctl reload fails on a bad rules file (exit $rc)"
assert_eq "$good" "$(in_sd lbadm -S -n)" "the running rules stay after a refused reload"
assert_eq active "$(sdctl is-active lbd)" "lbd still active after the refused reload"
echo "$good" > /etc/lbd/rules

# An exec check under the unit's sandbox runs as nobody, with no capability, only PATH and
# LBD_* in its environment and no socket inherited (the script passes only then); the
# same script asked to find root fails, so the check is not vacuous.
cat > /etc/lbd/test-check.sh <<'SH'
#!/bin/sh
want=${1:-65534}
[ "$(id -u)" = "$want" ] || exit 3
grep -q '^CapEff:[[:space:]]*0000000000000000$' /proc/$$/status || exit 4
[ "$(tr '\0' '\n' < /proc/$$/environ | grep -v -e '^PATH=' -e '^LBD_' | wc -l)" = 0 ] || exit 5
[ "$(ls -l /proc/$$/fd | grep -c 'socket:')" = 0 ] || exit 6
exit 0
SH
printf '#!/bin/sh\nexec /etc/lbd/test-check.sh 0\n' > /etc/lbd/test-check-root.sh
chmod 755 /etc/lbd/test-check.sh /etc/lbd/test-check-root.sh
health_of() { in_sd lbadm --lbd-health | awk -v r="$1:80" '$2 == r {print $3}'; }
in_sd lbadm -E -t "$V:80" -s rr --health "check=exec,cmd=/etc/lbd/test-check.sh,interval=0.3,timeout=0.25,rise=1,fall=1"
sleep 1
in_sd lbadm --lbd-health | grep -E -q -- "-> $(lab_real_ip 1):80 +UP .* ok " ||
  fail "the exec check as nobody under the unit: $(in_sd lbadm --lbd-health)"
echo "ok: under the unit, the exec check runs as nobody with no capability, a clean environment, no socket"
in_sd lbadm -E -t "$V:80" -s rr --health "check=exec,cmd=/etc/lbd/test-check-root.sh,interval=0.3,timeout=0.25,rise=1,fall=1"
for k in $(seq 1 30); do [ "$(health_of "$(lab_real_ip 1)")" = DOWN ] && break; sleep 0.1; done
in_sd lbadm --lbd-health | grep -E -q -- "-> $(lab_real_ip 1):80 +DOWN .*exit status 3" ||
  fail "the root-seeking check should fail with status 3: $(in_sd lbadm --lbd-health)"
echo "ok: and a check that needs root fails (exit status 3)"
in_sd lbadm -E -t "$V:80" -s rr --health check=none
rm -f /etc/lbd/test-check.sh /etc/lbd/test-check-root.sh

# The watchdog: a stopped event loop is killed, and Restart=on-failure starts lbd again.
# (A drop-in shortens the timings for the test.)
mkdir -p "$U/lbd.service.d"
printf '[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\nRestartSec=1s\n' > "$U/lbd.service.d/test.conf"
sdctl daemon-reload
sdctl restart lbd
pid=$(show MainPID)
in_sd kill -STOP "$pid"
for k in $(seq 1 150); do  # watchdog 2 s + abort 2 s + RestartSec 1 s
  [ "$(show NRestarts)" -ge 1 ] && [ "$(sdctl is-active lbd)" = active ] && break
  sleep 0.1
done
assert_eq 1 "$(show NRestarts)" "the watchdog killed the stopped lbd and systemd restarted it"
[ "$(show MainPID)" != "$pid" ] || fail "the same process still runs"
assert_eq "$(cat /etc/lbd/rules)" "$(in_sd lbadm -S -n)" "the restarted lbd restored its rules"
assert_eq "real1 2
real2 2" "$(count_answers 4)" "traffic again after the restart"

assert_eq off "$(gro)" "GRO still off under the restarted lbd"
# Removing the package (where systemd runs) stops lbd through its prerm.
in_sd dpkg --purge lbd >/dev/null || fail "dpkg --purge lbd failed"
PKG_INSTALLED=0
assert_eq inactive "$(sdctl is-active lbd || true)" "dpkg --purge stopped lbd (prerm)"
[ -e /etc/lbd ] && fail "purge left /etc/lbd"
assert_eq "" "$(in_ns "$LAB_DIRECTOR" nft list ruleset)" "its nftables table is gone"
assert_eq on "$(gro)" "GRO restored, though the lbd that turned it off was killed"
stop_systemd
assert_eq "$before" "$(snapshot)" "systemd gone, its cgroups and private directories removed"
