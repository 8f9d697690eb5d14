#!/usr/bin/env bash
# lbd under its real unit, run by a real systemd (common.sh's sd_boot: PID 1 of its own
# namespaces inside the lab's director namespace, starting nothing but lbd, and leaving
# nothing behind, which is checked at the end). The .deb is installed first.
# Then: `systemctl start lbd` (Type=notify: returns once lbd says READY=1), the sandbox as
# applied (capabilities, no new privileges, seccomp, read-only /usr), traffic, `systemctl
# reload lbd` after the rules file changes, the watchdog killing a stopped lbd and
# Restart= bringing it back with its rules, and `dpkg --purge` stopping it (prerm) with
# nothing left behind.
. "$(dirname "$0")/common.sh"
lab_init
trap 'rc=$?; rm -f /etc/lbd/test-check.sh /etc/lbd/test-check-root.sh; sd_stop; pkg_purge; lab_teardown "$rc"; exit "$rc"' EXIT
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

sd_boot

sdctl start lbd || fail "systemctl start lbd: $(sdctl status lbd --no-pager 2>&1 | tail -20)"
assert_eq active "$(sdctl is-active lbd)" "systemctl start lbd returns with lbd active (READY=1)"
# The unit's default --metrics: loopback, under the unit's sandbox.
in_sd curl -s -m 3 http://127.0.0.1:9587/metrics | grep -q '^node_ipvs_connections_total ' ||
  fail "the unit's metrics on 127.0.0.1:9587: $(in_sd curl -s -m 3 -o /dev/null -w '%{http_code}' http://127.0.0.1:9587/metrics)"
echo "ok: the unit serves metrics on 127.0.0.1:9587"
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

# A firewall-mark service under the sandbox: lbd binds its NFQUEUE and runs iptables for
# its chains (as root, CAP_NET_ADMIN, seccomp, read-only /usr), and takes them away again.
assert_eq 0 "$(in_sd lbadm --lbd-counters | awk '$1 == "fwmark_queued" {print $2}')" \
  "the fwmark queue is bound under the unit ($(grep -a "fwmark" "$LAB_DIR/bg.log" | tail -2))"
in_sd lbadm -A -f 7 -s rr || fail "lbadm -A -f 7 under the unit"
in_sd lbadm -a -f 7 -r "$(lab_real_ip 1)" -g || fail "lbadm -a -f 7 under the unit"
in_ns "$LAB_DIRECTOR" iptables -w -t mangle -S LBD_FWMARK | grep -q -- "--mark 0x7 -j NFQUEUE" ||
  fail "lbd under the unit did not make its fwmark chain: $(in_ns "$LAB_DIRECTOR" iptables -w -t mangle -S 2>&1)"
in_sd lbadm -D -f 7 || fail "lbadm -D -f 7 under the unit"
if in_ns "$LAB_DIRECTOR" iptables -w -t mangle -S LBD_FWMARK >/dev/null 2>&1; then
  fail "the fwmark chain stayed after the last fwmark service went"
fi
echo "ok: a fwmark service under the unit: queue bound, iptables chain made and removed"

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
mkdir -p "$SD_UNITS/lbd.service.d"
printf '[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\nRestartSec=1s\n' > "$SD_UNITS/lbd.service.d/test.conf"
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
sd_stop
assert_eq "$SD_BEFORE" "$(sd_snapshot)" "systemd gone, its cgroups and private directories removed"
