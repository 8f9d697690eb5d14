#!/usr/bin/env bash
# Packaging: `systemd-analyze verify` of both units, CPack's .deb installed with dpkg (files
# where the units expect them, conffiles, man pages), then lbd started the way its unit
# starts it: the unit's ExecStart with /etc/default/lbd, only the unit's capabilities
# (setpriv: bounding and ambient sets as the unit's, CAP_BPF included, no new privileges), a
# NOTIFY_SOCKET and WATCHDOG_USEC as systemd gives them. It must restore /etc/lbd/rules,
# say READY=1, feed the watchdog, reload on the unit's ExecReload (RELOADING=1, READY=1)
# and stop cleanly (STOPPING=1, its nftables table gone). The package is purged at exit.
# (test_systemd runs the same unit under a real systemd, sandbox enforced.)
. "$(dirname "$0")/common.sh"
lab_init
trap 'rc=$?; pkg_purge; lab_teardown "$rc"; exit "$rc"' EXIT
pkg_install  # the package of the tested build (prefix /usr: the units name it)
for f in /usr/sbin/lbd /usr/sbin/lbadm /usr/sbin/lbd-decap /usr/lib/systemd/system/lbd.service \
         /usr/lib/systemd/system/lbd-decap.service /usr/share/man/man8/lbd.8 \
         /usr/share/man/man8/lbadm.8 /usr/share/man/man8/lbd-decap.8 /etc/lbd/rules \
         /etc/default/lbd /etc/default/lbd-decap /usr/lib/lbd/ipvsadm/ipvsadm \
         /usr/lib/lbd/ipvsadm/ipvsadm-save /usr/lib/lbd/ipvsadm/ipvsadm-restore; do
  [ -e "$f" ] || fail "the package lacks $f"
done
assert_eq "/etc/lbd/rules
/etc/default/lbd
/etc/default/lbd-decap" "$(dpkg-query --control-show lbd conffiles)" "conffiles kept across upgrades"
man -l /usr/share/man/man8/lbadm.8 2>/dev/null | grep -q "DIFFERENCES FROM IPVSADM" ||
  grep -q "DIFFERENCES FROM IPVSADM" /usr/share/man/man8/lbadm.8 || fail "lbadm(8) incomplete"

# systemd's own check of the installed units (unknown keys, bad values, missing binaries).
for u in lbd lbd-decap; do
  out=$(systemd-analyze verify "/usr/lib/systemd/system/$u.service" 2>&1) || fail "systemd-analyze verify $u.service: $out"
  grep -q "$u.service" <<< "$out" && fail "systemd-analyze verify $u.service warns: $out"
  echo "ok: systemd-analyze verify $u.service"
done
unit=/usr/lib/systemd/system/lbd.service
grep -qx "Type=notify" "$unit" && grep -q "^WatchdogSec=" "$unit" && grep -qx "Restart=on-failure" "$unit" &&
  grep -qx 'ExecReload=/usr/sbin/lbd --check-rules --rules /etc/lbd/rules' "$unit" &&
  grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" || fail "unit lacks notify/watchdog/restart/reload"
caps=$(awk -F= '/^CapabilityBoundingSet=/ {print $2}' "$unit")
assert_eq "CAP_NET_RAW CAP_NET_ADMIN CAP_BPF CAP_SETUID CAP_SETGID" "$caps" \
  "the unit grants CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF (the XDP flow cache) and (to run checks as exec-user) CAP_SETUID/CAP_SETGID only"
assert_eq 600 "$(stat -c %a /etc/lbd/rules)" "/etc/lbd/rules is installed 0600 (it may hold passwords)"

# A lab to run it in, rules and options written where the unit reads them.
lab_create 2
for i in 1 2; do lab_dr_real "$i"; lab_nginx "$i"; done
for i in 1 2; do lab_wait_port "$(lab_real_ns "$i")" 80; done
V=$LAB_VIP
printf '%s\n' "# written by test_package" "-A -t $V:80 -s rr" \
  "-a -t $V:80 -r $(lab_real_ip 1):80 -g -w 1" "-a -t $V:80 -r $(lab_real_ip 2):80 -g -w 1" > /etc/lbd/rules
echo 'LBD_OPTS="--interface eth0"' > /etc/default/lbd
mkdir -p /run/lbd && chmod 0755 /run/lbd  # RuntimeDirectory=lbd

# ExecStart as systemd would run it: the unit's Environment=, then its EnvironmentFile,
# $LBD_OPTS split on blanks, ${LBD_METRICS} one word.
exec_start=$(awk -F= '/^ExecStart=/ {sub(/^ExecStart=/, ""); print}' "$unit")
while IFS= read -r e; do export "${e#Environment=}"; done < <(grep '^Environment=' "$unit")
# shellcheck disable=SC1091
. /etc/default/lbd
# shellcheck disable=SC2086
eval "set -- ${exec_start//\$LBD_OPTS/$LBD_OPTS}"
assert_eq /usr/sbin/lbd "$1" "ExecStart runs the packaged lbd"
lab_bg "$LAB_DIRECTOR" socat -u "UNIX-RECV:$LAB_DIR/notify.sock" "OPEN:$LAB_DIR/notify.log,creat,append"
for k in $(seq 1 40); do [ -S "$LAB_DIR/notify.sock" ] && break; sleep 0.05; done
NOTIFY_SOCKET=$LAB_DIR/notify.sock WATCHDOG_USEC=1000000 \
  ip netns exec "$LAB_DIRECTOR" setpriv --no-new-privs \
    --bounding-set=-all,+net_raw,+net_admin,+bpf,+setuid,+setgid --inh-caps=-all,+net_raw,+net_admin,+bpf,+setuid,+setgid \
    --ambient-caps=-all,+net_raw,+net_admin,+bpf,+setuid,+setgid "$@" 2>>"$LAB_DIR/lbd.log" &
LAB_LBD_PID=$!
LAB_PIDS+=("$LAB_LBD_PID")
for k in $(seq 1 100); do grep -q "READY=1" "$LAB_DIR/notify.log" 2>/dev/null && break; sleep 0.05; done
grep -q "READY=1" "$LAB_DIR/notify.log" || fail "no READY=1 from lbd: $(cat "$LAB_DIR/lbd.log")"
echo "ok: READY=1 once capturing"
in_ns "$LAB_DIRECTOR" curl -s -m 3 http://127.0.0.1:9587/metrics | grep -q '^lbd_info{version="0.1.0"' ||
  fail "the unit's --metrics 127.0.0.1:9587 does not answer"
echo "ok: the unit's metrics answer on 127.0.0.1:9587"
capeff=$(awk '/^CapEff:/ {print $2}' /proc/"$LAB_LBD_PID"/status)
assert_eq 00000080000030c0 "$capeff" "lbd runs with CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_SETUID and CAP_SETGID only"
grep -q "offload: XDP flow cache on eth0" "$LAB_DIR/lbd.log" ||
  fail "the XDP flow cache does not run with the unit's capabilities: $(grep offload "$LAB_DIR/lbd.log")"
echo "ok: the XDP flow cache runs with the unit's capabilities"
lbadm() { in_ns "$LAB_DIRECTOR" /usr/sbin/lbadm "$@"; }  # the packaged lbadm, default socket
assert_eq "$(grep -v '^#' /etc/lbd/rules)" "$(lbadm -S -n)" "the unit's lbd restored /etc/lbd/rules"
assert_eq "$(lbadm -S -n)" "$(in_ns "$LAB_DIRECTOR" env PATH="/usr/lib/lbd/ipvsadm:$PATH" ipvsadm-save -n)" \
  "the packaged ipvsadm-save (ipvsadm scripts: /usr/lib/lbd/ipvsadm first in PATH)"
got=$(for k in 1 2 3 4; do in_ns "$LAB_CLIENT" curl -s -m 5 "http://$V/"; done | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')
assert_eq "2 2 " "$got" "traffic through the packaged lbd, spread by rr"
sleep 1.2
grep -q "WATCHDOG=1" "$LAB_DIR/notify.log" || fail "no WATCHDOG=1 within the interval"
echo "ok: the watchdog is fed"

# lbd-decap the way its unit starts it, on real 2 for a second VIP tunnelled to it.
V2=198.18.0.101
echo "LBD_DECAP_OPTS=\"--vip $V2 --allow-from $LAB_DIRECTOR_IP\"" > /etc/default/lbd-decap
dunit=/usr/lib/systemd/system/lbd-decap.service
assert_eq "CAP_NET_RAW CAP_NET_ADMIN" "$(awk -F= '/^CapabilityBoundingSet=/ {print $2}' "$dunit")" \
  "lbd-decap's unit grants only CAP_NET_RAW and CAP_NET_ADMIN"
dstart=$(awk -F= '/^ExecStart=/ {sub(/^ExecStart=/, ""); print}' "$dunit")
# shellcheck disable=SC1091
. /etc/default/lbd-decap
[ -c /dev/net/tun ] || { mkdir -p /dev/net && mknod -m 600 /dev/net/tun c 10 200; }
# shellcheck disable=SC2086
eval "set -- ${dstart//\$LBD_DECAP_OPTS/$LBD_DECAP_OPTS}"
assert_eq /usr/sbin/lbd-decap "$1" "ExecStart runs the packaged lbd-decap"
lab_bg "$(lab_real_ns 2)" setpriv --no-new-privs --bounding-set=-all,+net_raw,+net_admin \
  --inh-caps=-all,+net_raw,+net_admin --ambient-caps=-all,+net_raw,+net_admin "$@"
for k in $(seq 1 100); do
  in_ns "$(lab_real_ns 2)" ip -br addr show dev lbdtun0 2>/dev/null | grep -q "$V2/32" && break
  sleep 0.05
done
addrs=$(in_ns "$(lab_real_ns 2)" ip -br addr show dev lbdtun0)
grep -q "$V2/32" <<< "$addrs" ||
  fail "the unit's lbd-decap did not bring $V2 up: $(tail -5 "$LAB_DIR/bg.log")"
lbadm -A -t "$V2:80" -s rr
lbadm -a -t "$V2:80" -r "$(lab_real_ip 2)" -i
assert_eq real2 "$(in_ns "$LAB_CLIENT" curl -s -m 5 "http://$V2/")" "a request tunnelled by the unit's lbd to the unit's lbd-decap"

# ExecReload, with $MAINPID.
echo "-e -t $V:80 -r $(lab_real_ip 2):80 -g -w 4" >> /etc/lbd/rules
MAINPID=$LAB_LBD_PID  # ip netns exec and setpriv exec lbd: the same process
while IFS= read -r reload; do  # each ExecReload= line in turn, as systemd runs them
  eval "${reload//\$MAINPID/$MAINPID}" || fail "ExecReload $reload failed"
done < <(awk -F= '/^ExecReload=/ {sub(/^ExecReload=/, ""); print}' "$unit")
for k in $(seq 1 40); do grep -q "rules reloaded" "$LAB_DIR/notify.log" && break; sleep 0.05; done
grep -q "RELOADING=1" "$LAB_DIR/notify.log" && grep -q "rules reloaded" "$LAB_DIR/notify.log" ||
  fail "no RELOADING=1 / READY=1 around the reload: $(cat "$LAB_DIR/notify.log")"
saved=$(lbadm -S -n)
grep -qx -- "-a -t $V:80 -r $(lab_real_ip 2):80 -g -w 4" <<< "$saved" || fail "reload not applied: $saved"
echo "ok: ExecReload applied the edited rules"

lab_stop_lbd
grep -q "STOPPING=1" "$LAB_DIR/notify.log" || fail "no STOPPING=1"
assert_eq "" "$(in_ns "$LAB_DIRECTOR" nft list ruleset)" "its nftables table is gone after stop"
[ -e /run/lbd/lbd.sock ] && fail "the control socket was left behind"
pkg_purge
dpkg-query -W lbd >/dev/null 2>&1 && fail "dpkg --purge left the package"
[ -e /etc/lbd/rules ] || [ -e /etc/default/lbd-decap ] && fail "purge left configuration files"
echo "ok: purged, nothing left"
