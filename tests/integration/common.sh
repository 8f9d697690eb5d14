# shellcheck shell=bash
# Shared by the integration tests: the lab, and assertions that fail the test loudly.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/lab.sh
. "$HERE/../../scripts/lab.sh"

: "${LBD_BIN:?set LBD_BIN to the lbd binary (ctest does)}"
: "${LBADM_BIN:?set LBADM_BIN to the lbadm binary (ctest does)}"

fail() {
  echo "FAIL: $*" >&2
  LAB_FAIL_REASON=$*  # said again after the teardown's lbd log, where a log's tail shows it
  [ -S "${LAB_SOCKET:-}" ] && lbadm_ --lbd-counters 2>/dev/null | grep -v " 0$" >&2
  exit 1
}
assert_eq() {  # assert_eq EXPECTED ACTUAL WHAT
  [ "$1" == "$2" ] || fail "$3: expected [$1], got [$2]"
  echo "ok: $3"
}

# count_answers N: N sequential curls through the VIP; prints "realX count" lines, sorted.
count_answers() {
  local k out
  for k in $(seq 1 "$1"); do
    out=$(in_ns "$LAB_CLIENT" curl -s -m 3 "http://$LAB_VIP/") || out=FAILED
    echo "$out"
  done | sort | uniq -c | awk '{print $2, $1}'
}

# start_tcpdump NS IFACE FILE FILTER...: background capture, returns once it listens.
start_tcpdump() {
  local ns=$1 ifc=$2 file=$3; shift 3
  # --immediate-mode: without it packets wait in the ring up to a second and a capture
  # stopped early would miss them (and a "no RST seen" check would pass vacuously).
  ip netns exec "$ns" tcpdump --immediate-mode -i "$ifc" -U -n -w "$file" "$@" 2>"$file.err" &
  LAB_PIDS+=($!)
  TCPDUMP_PID=$!
  local k
  for k in $(seq 1 100); do grep -q "listening on" "$file.err" 2>/dev/null && return 0; sleep 0.05; done
  fail "tcpdump did not start in $ns"
}
stop_tcpdump() { sleep 0.3; kill -INT "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
pcap_count() { tcpdump -r "$1" -n 2>/dev/null | wc -l; }

# download_matches FILE URL WHAT: the client downloads URL; its sha256 must be FILE's.
download_matches() {
  local want got
  want=$(sha256sum < "$1" | cut -d' ' -f1)
  got=$(in_ns "$LAB_CLIENT" curl -s -m 60 "$2" | sha256sum | cut -d' ' -f1)
  assert_eq "$want" "$got" "$3: sha256 matches"
}

# load_start VIP RATE SECONDS: in the background, a download of $LAB_DIR/big (30 MB) at
# RATE and wrk for SECONDS (2 threads, 8 connections, a new connection per request);
# load_check WHAT then waits for both: no failed request, enough of them to judge, the
# download intact.
load_start() {
  LOAD_WANT=$(sha256sum < "$LAB_DIR/big" | cut -d' ' -f1)
  in_ns "$LAB_CLIENT" timeout 90 curl -s --limit-rate "$2" "http://$1/big" -o "$LAB_DIR/big.got" &
  LOAD_DL=$!
  in_ns "$LAB_CLIENT" timeout 90 wrk -t2 -c8 -d"$3"s -H 'Connection: close' "http://$1/" > "$LAB_DIR/wrk.txt" &
  LOAD_WRK=$!
}
load_check() {
  local reqs
  wait "$LOAD_WRK" || fail "wrk failed: $(cat "$LAB_DIR/wrk.txt")"
  wait "$LOAD_DL" || fail "the download across $1 failed"
  grep -q "Socket errors" "$LAB_DIR/wrk.txt" && fail "requests failed across $1: $(cat "$LAB_DIR/wrk.txt")"
  grep -q "Non-2xx" "$LAB_DIR/wrk.txt" && fail "non-2xx answers across $1: $(cat "$LAB_DIR/wrk.txt")"
  reqs=$(awk '/requests in/ {print $1}' "$LAB_DIR/wrk.txt")
  [ "${reqs:-0}" -gt 200 ] || fail "wrk made too few requests to judge: $(cat "$LAB_DIR/wrk.txt")"
  echo "ok: $reqs requests across $1, none failed"
  assert_eq "$LOAD_WANT" "$(sha256sum < "$LAB_DIR/big.got" | cut -d' ' -f1)" "a 30 MB download across $1 is intact"
}

# tcp_round_trips PORT WHAT: three 3 MB TCP round trips through VIP:PORT (an echo server
# behind it), compared byte for byte.
tcp_round_trips() {
  local port=$1 what=$2 k
  head -c 3000000 /dev/urandom > "$LAB_DIR/payload"
  for k in 1 2 3; do
    in_ns "$LAB_CLIENT" timeout 30 socat -t 5 -b 65536 - "TCP:$LAB_VIP:$port" \
      < "$LAB_DIR/payload" > "$LAB_DIR/echo$k" 2>/dev/null || true
    cmp -s "$LAB_DIR/payload" "$LAB_DIR/echo$k" ||
      fail "TCP round trip $k $what differs ($(stat -c %s "$LAB_DIR/echo$k") bytes back)"
    echo "ok: 3 MB TCP round trip $k $what byte for byte"
  done
}

# udp_round_trips PORT WHAT [BYTES]: six datagrams of ~800 bytes (or ~4/3 × BYTES: more
# than the MTU makes the client send IP fragments) echoed through VIP:PORT.
udp_round_trips() {
  local port=$1 what=$2 size=${3:-600} k msg back
  for k in $(seq 1 6); do
    msg="datagram-$k-$(head -c "$size" /dev/urandom | base64 -w0)"
    back=$(echo "$msg" | in_ns "$LAB_CLIENT" timeout 5 socat -t 2 - "UDP:$LAB_VIP:$port") || true
    assert_eq "$msg" "$back" "UDP datagram $k echoed $what"
  done
}

# syns_through_tunnels WHAT [OUTER_FILTER]: six HTTP requests to the VIP of three tunnel
# reals behind lbd-decap, two per real, and each SYN leaves the tunnel (lbdtun0) exactly as
# the client sent it. With OUTER_FILTER each real's eth0 is captured as well, into
# $LAB_DIR/outerI.pcap, for the caller to read.
syns_through_tunnels() {
  local what=$1 outer=${2:-} i p cdump got sent recv dumps=()
  local syns="tcp dst port 80 and tcp[tcpflags] & tcp-syn != 0"
  start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/client.pcap" "$syns"
  cdump=$TCPDUMP_PID
  for i in 1 2 3; do
    start_tcpdump "$(lab_real_ns "$i")" lbdtun0 "$LAB_DIR/inner$i.pcap" "$syns"
    dumps+=("$TCPDUMP_PID")
    [ -z "$outer" ] && continue
    start_tcpdump "$(lab_real_ns "$i")" eth0 "$LAB_DIR/outer$i.pcap" "$outer"
    dumps+=("$TCPDUMP_PID")
  done
  got=$(count_answers 6 | tr '\n' ' ')
  assert_eq "real1 2 real2 2 real3 2 " "$got" "HTTP $what: 6 requests, 2 per real"
  stop_tcpdump "$cdump"
  for p in "${dumps[@]}"; do stop_tcpdump "$p"; done
  sent=$(pcap_hex "$LAB_DIR/client.pcap" | sort)
  recv=$(for i in 1 2 3; do pcap_hex "$LAB_DIR/inner$i.pcap"; done | sort)
  [ "$(echo "$sent" | wc -l)" = 6 ] || fail "expected 6 SYNs at the client"
  assert_eq "$sent" "$recv" "each SYN leaves $what exactly as the client sent it"
}

# pcap_hex FILE: each packet of a capture as one hex line, from its IP header on.
pcap_hex() {
  tcpdump -r "$1" -n -x 2>/dev/null |
    awk '/^[0-9]/ {if (p) print p; p=""; next} {for (i=2;i<=NF;i++) p=p $i} END {if (p) print p}'
}

director_mac() { in_ns "$LAB_DIRECTOR" cat /sys/class/net/eth0/address; }

# The three-real DR lab with nginx, lbd running.
dr_lab_http() {
  lab_init
  lab_create "${1:-3}"
  local i
  for i in $(seq 1 "${1:-3}"); do lab_dr_real "$i"; lab_nginx "$i"; done
  for i in $(seq 1 "${1:-3}"); do lab_wait_port "$(lab_real_ns "$i")" 80; done
  lab_lbd
}

# echo_lab N PORT...: N reals with the VIP (DR) each running a TCP echo server (socat) on
# every PORT, then lbd. (UDP services add their own servers.)
echo_lab() {
  local n=$1 i p; shift
  lab_init
  lab_create "$n"
  for i in $(seq 1 "$n"); do
    lab_dr_real "$i"
    for p in "$@"; do lab_bg "$(lab_real_ns "$i")" socat "TCP-LISTEN:$p,fork,reuseaddr" EXEC:cat; done
  done
  for i in $(seq 1 "$n"); do
    for p in "$@"; do lab_wait_port "$(lab_real_ns "$i")" "$p"; done
  done
}

# The .deb of the tested build, installed with dpkg; pkg_purge removes it and everything it
# put under /etc and /run. Refuses to touch a machine that already has lbd installed or
# configured. Callers set their EXIT trap to run pkg_purge before lab_teardown.
pkg_install() {
  local build prefix deb
  build=$(dirname "$LBD_BIN")
  dpkg-query -W -f='${Status}' lbd 2>/dev/null | grep -q "install ok" &&
    fail "an lbd package is already installed on this machine: not touching it"
  if [ -e /etc/lbd ] || [ -e /etc/default/lbd ] || [ -e /etc/default/lbd-decap ] || [ -e /run/lbd ] || [ -e /run/lbd-decap ]; then
    fail "/etc/lbd, /etc/default/lbd(-decap), /run/lbd or /run/lbd-decap already exist: not touching them"
  fi
  prefix=$(awk -F= '/^CMAKE_INSTALL_PREFIX:/ {print $2}' "$build/CMakeCache.txt")
  if [ "$prefix" != /usr ]; then
    # A package installs under /usr, where its units name the programs: a build configured
    # for another prefix (cmake's default /usr/local) gets a sibling build for /usr, kept in
    # its own directory and rebuilt incrementally by the next test.
    local src
    src=$(awk -F= '/^lbd_SOURCE_DIR:/ {print $2}' "$build/CMakeCache.txt")
    echo "the build is configured for $prefix: building the package in $build/pkg-usr for /usr"
    cmake -S "$src" -B "$build/pkg-usr" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
      -DLBD_TESTS=OFF -DLBD_LTO=OFF >/dev/null || fail "configuring $build/pkg-usr failed"
    cmake --build "$build/pkg-usr" -j "$(nproc)" >"$LAB_DIR/pkg-build.log" 2>&1 ||
      fail "building $build/pkg-usr failed: $(tail -5 "$LAB_DIR/pkg-build.log")"
    build=$build/pkg-usr
  fi
  (cd "$build" && cpack -G DEB -B "$LAB_DIR/pkg" >/dev/null) || fail "cpack failed"
  deb=$(ls "$LAB_DIR"/pkg/lbd_*.deb)
  PKG_INSTALLED=1
  dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb failed"
  echo "ok: $(basename "$deb") installed"
}
pkg_purge() {
  [ "${PKG_INSTALLED:-0}" = 1 ] || return 0
  dpkg --purge lbd >/dev/null 2>&1 || true
  rm -rf /run/lbd /run/lbd-decap
  PKG_INSTALLED=0
}

# A real systemd for lbd's unit (test_systemd, test_restart): PID 1 of its own PID, mount,
# UTS and IPC namespaces inside the lab's director network namespace, with its own /run
# and a unit path ($SD_UNITS) holding only the installed lbd.service and empty stand-ins
# for the targets it orders against: it starts nothing else (no tmpfiles, sysctl or
# journald, which would act on the host). This machine has no systemd of its own; what
# this one leaves (cgroup directories, private /tmp directories) sd_stop removes.
# After sd_boot: sdctl (systemctl), in_sd (a command in its namespaces), show (a property of lbd).
sd_snapshot() {
  { find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -type d; ls -d /tmp/systemd-private-* /var/tmp/systemd-private-* || true; } 2>/dev/null | sort
}
sd_boot() {
  SD_BEFORE=$(sd_snapshot)
  SD_UNITS=$LAB_DIR/units
  mkdir -p "$SD_UNITS"
  ln -s /usr/lib/systemd/system/lbd.service "$SD_UNITS/lbd.service"
  local t k unshare
  for t in lbdtest sysinit basic shutdown network network-online multi-user; do
    printf '[Unit]\nDescription=%s (empty, for the test)\nDefaultDependencies=no\n' "$t" > "$SD_UNITS/$t.target"
  done
  lab_bg "$LAB_DIRECTOR" unshare --pid --fork --mount --uts --ipc --mount-proc --propagation private \
    bash -c "mount -t tmpfs tmpfs /run &&
             exec env SYSTEMD_UNIT_PATH=$SD_UNITS /lib/systemd/systemd --system --unit=lbdtest.target --log-target=console"
  unshare=${LAB_PIDS[-1]}
  for k in $(seq 1 100); do
    SDPID=$(pgrep -P "$unshare" -x systemd || true)
    [ -n "$SDPID" ] && [ "$(timeout 5 nsenter -t "$SDPID" -m -p systemctl is-system-running 2>/dev/null)" = running ] && break
    sleep 0.1
  done
  [ -n "$SDPID" ] || fail "systemd did not start as PID 1 of its namespace: $(tail -20 "$LAB_DIR/bg.log")"
  assert_eq running "$(sdctl is-system-running 2>&1)" "systemd runs (PID $SDPID outside)"
}
sdctl() { timeout 60 nsenter -t "$SDPID" -m -p systemctl "$@"; }
in_sd() { nsenter -t "$SDPID" -m -p -n "$@"; }  # lbd's /run/lbd is in systemd's mount namespace
show() { sdctl show lbd -p "$1" --value; }
sd_stop() {
  [ -n "${SDPID:-}" ] || return 0
  timeout 30 nsenter -t "$SDPID" -m -p systemctl stop lbd >/dev/null 2>&1 || true
  kill -KILL "$SDPID" 2>/dev/null || true  # PID 1 of its namespace: the rest goes with it
  local k d
  for k in $(seq 1 100); do kill -0 "$SDPID" 2>/dev/null || break; sleep 0.05; done
  SDPID=
  # What it made on the host: cgroup directories (no cgroup manager here reaps them) and
  # private /tmp directories of a service it could not stop.
  comm -13 <(echo "$SD_BEFORE") <(sd_snapshot) | sort -r | while read -r d; do
    case "$d" in
      /sys/fs/cgroup/*) find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true ;;
      /tmp/systemd-private-*-lbd.service-* | /var/tmp/systemd-private-*-lbd.service-*) rm -rf "$d" ;;
    esac
  done
}
