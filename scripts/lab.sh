# shellcheck shell=bash
# The namespace lab shared by the demo, the integration tests and the benchmarks.
# Source it, call lab_init, then lab_create. Everything it makes is removed by lab_cleanup,
# which lab_init installs as an EXIT/INT/TERM trap: namespaces, processes (by PID), files.
#
#   client (198.18.0.1) ─┐
#   director (198.18.0.2)─┼── bridge in the "switch" namespace
#   real1..N (198.18.0.11..)┘      VIP 198.18.0.100
#
# Each real is made a DR real (VIP on lo, no ARP for it), a NAT real (its only way out is
# the director: replies to clients pass through lbd) or a TUN real (lbd-decap unwraps the
# director's IPIP packets; the VIP lives on its TUN device).
#
# Only 198.18.0.0/15 addresses; nothing is routed out of the machine; the root
# namespace's interfaces, routes and firewall are never touched.

LAB_VIP=198.18.0.100
LAB_CLIENT_IP=198.18.0.1
LAB_DIRECTOR_IP=198.18.0.2
LAB_PIDS=()

lab_log() { printf '[lab %s] %s\n' "$(date +%T)" "$*" >&2; }

lab_init() {
  LAB_ID=$(printf '%06d' $(( ${1:-$$} % 1000000 )))
  LAB_NLINK=0
  LAB_SW=lbsw$LAB_ID
  LAB_CLIENT=lbcl$LAB_ID
  LAB_DIRECTOR=lbdr$LAB_ID
  LAB_DIR=$(mktemp -d /tmp/lbdlab.XXXXXX)
  chmod 755 "$LAB_DIR"  # nginx workers (nobody) read their documents below it
  LAB_SOCKET=$LAB_DIR/lbd.sock
  LAB_REALS=()
  LAB_EXTRA_NS=()  # namespaces a test adds (routers, ...), removed with the rest
  LAB_EXTRA_PATHS=()  # files a test makes outside LAB_DIR (/etc/netns/NS), removed with the rest
  trap lab_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

lab_real_ns() { echo "lbr$1$LAB_ID"; }
lab_real_ip() { echo "198.18.0.$((10 + $1))"; }

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# lab_link NS IFNAME ADDR/PREFIX [BRIDGE]: a veth from NS to a bridge of the switch (br0).
lab_link() {
  local ns=$1 ifname=$2 addr=$3 br=${4:-br0} peer
  LAB_NLINK=$((LAB_NLINK + 1))
  peer="sw${LAB_ID}p$LAB_NLINK"
  in_ns "$LAB_SW" ip link show "$br" >/dev/null 2>&1 || {
    in_ns "$LAB_SW" ip link add "$br" type bridge
    in_ns "$LAB_SW" ip link set "$br" up
  }
  ip link add "$ifname" netns "$ns" type veth peer name "$peer" netns "$LAB_SW"
  in_ns "$LAB_SW" ip link set "$peer" master "$br" up
  in_ns "$ns" ip addr add "$addr" dev "$ifname"
  in_ns "$ns" ip link set "$ifname" up
  in_ns "$ns" ip link set lo up
}

# lab_host_checksums NS IFNAME: the host computes its own TCP/UDP checksums, as a client or
# server on another machine does (a local veth sender would leave them to "hardware":
# partial checksums, which lbd completes on its slow path and the fast path leaves to it).
lab_host_checksums() { in_ns "$1" ethtool -K "$2" tx off >/dev/null 2>&1 || true; }

# lab_create N: client, director and N reals on one L2 segment.
lab_create() {
  local n=$1 i ns
  ip netns add "$LAB_SW"
  in_ns "$LAB_SW" ip link add br0 type bridge
  in_ns "$LAB_SW" ip link set br0 up
  in_ns "$LAB_SW" ip link set lo up
  ip netns add "$LAB_CLIENT"
  lab_link "$LAB_CLIENT" eth0 "$LAB_CLIENT_IP/24"
  lab_host_checksums "$LAB_CLIENT" eth0
  ip netns add "$LAB_DIRECTOR"
  lab_link "$LAB_DIRECTOR" eth0 "$LAB_DIRECTOR_IP/24"
  for i in $(seq 1 "$n"); do
    ns=$(lab_real_ns "$i")
    ip netns add "$ns"
    lab_link "$ns" eth0 "$(lab_real_ip "$i")/24"
    lab_host_checksums "$ns" eth0
    LAB_REALS+=("$ns")
  done
}

# lab_mixed: a lab of 3 reals for the SYN-flood bench and the soak: reals 1 and 2 DR with
# nginx on 80, real 3 NAT with nginx on 8080, LAB_VIP2 a second VIP; returns once they
# listen.
LAB_VIP2=198.18.0.101
lab_mixed() {
  local i
  lab_init
  lab_create 3
  for i in 1 2; do lab_dr_real "$i"; lab_nginx "$i"; done
  lab_nat_real 3
  lab_nginx 3 8080
  for i in 1 2; do lab_wait_port "$(lab_real_ns "$i")" 80; done
  lab_wait_port "$(lab_real_ns 3)" 8080
}

# lab_dr_real I: real server I accepts the VIP (on lo) without answering ARP for it.
lab_dr_real() {
  local ns; ns=$(lab_real_ns "$1")
  in_ns "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
  in_ns "$ns" ip addr add "$LAB_VIP/32" dev lo
}

# lab_nat_real I: real server I reaches nothing but the director directly: its default
# route is the director, so replies to clients on the shared segment go through lbd.
lab_nat_real() {
  local ns; ns=$(lab_real_ns "$1")
  in_ns "$ns" ip route del 198.18.0.0/24 dev eth0
  in_ns "$ns" ip route add "$LAB_DIRECTOR_IP" dev eth0
  in_ns "$ns" ip route add default via "$LAB_DIRECTOR_IP"
}

# lab_v6addr NS ADDR/LEN [DEV]: an IPv6 address in namespace NS (default eth0), without
# duplicate address detection (the lab's addresses are unique; DAD would only delay them).
lab_v6addr() { in_ns "$1" ip -6 addr add "$2" dev "${3:-eth0}" nodad; }

# lab_tun_real I [VIP...]: real server I runs lbd-decap for the VIPs (default: the lab's),
# accepting tunnelled packets from the director only; returns once the VIP is up.
lab_tun_real() {
  local i=$1 ns vips=() v k; shift
  ns=$(lab_real_ns "$i")
  [ $# -gt 0 ] || set -- "$LAB_VIP"
  for v in "$@"; do vips+=(--vip "$v"); done
  LBD_DECAP_BIN=${LBD_DECAP_BIN:-$(command -v lbd-decap)}
  if [ ! -c /dev/net/tun ]; then  # some minimal containers lack the node (not the driver)
    lab_log "creating /dev/net/tun (char 10:200) for lbd-decap"
    mkdir -p /dev/net && mknod -m 600 /dev/net/tun c 10 200
  fi
  # LAB_DECAP_OPTS: more of lbd-decap's options (e.g. --gue-port 6080), word-split.
  # shellcheck disable=SC2086
  lab_bg "$ns" "$LBD_DECAP_BIN" "${vips[@]}" --allow-from "$LAB_DIRECTOR_IP" \
    --state-dir "$LAB_DIR/decap-state" ${LAB_DECAP_OPTS:-}
  for k in $(seq 1 100); do
    in_ns "$ns" ip -br addr show dev lbdtun0 2>/dev/null | grep -q -e "$1/32" -e "$1/128" && return 0
    sleep 0.05
  done
  lab_log "lbd-decap did not come up in $ns"; cat "$LAB_DIR/bg.log" >&2; return 1
}

# lab_setup_real METHOD I: dr, nat or tun.
lab_setup_real() {
  case "$1" in
    dr) lab_dr_real "$2" ;;
    nat) lab_nat_real "$2" ;;
    tun) lab_tun_real "$2" ;;
    *) lab_log "unknown method $1"; return 1 ;;
  esac
}
# The lbadm flag for a method.
lab_method_flag() { case "$1" in dr) echo -g ;; nat) echo -m ;; tun) echo -i ;; esac; }

# lab_offloads_off NS IFNAME: no TSO/GSO/GRO/checksum offload (benchmarks; big transfers).
lab_offloads_off() {
  in_ns "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
}

lab_bg() {  # lab_bg NS CMD...: run CMD in NS in the background; its PID is remembered
  local ns=$1; shift
  # ip execs CMD, so $! is the server's own PID. Its output goes to a file: a background
  # process holding the caller's stdout would keep a pipeline (or ctest) waiting.
  ip netns exec "$ns" "$@" </dev/null >>"$LAB_DIR/bg.log" 2>&1 &
  LAB_PIDS+=($!)
}

# lab_nginx I [PORT [DIRECTIVES]]: nginx in real I answering "real<I>" on PORT (80; "443 ssl"
# with DIRECTIVES naming its certificate), closing each connection after its request unless
# LAB_NGINX_KEEPALIVE (seconds) says otherwise. Also serves /blob (1 MB) and, if
# $LAB_DIR/big exists, /big.
lab_nginx() {
  local i=$1 port=${2:-80} extra=${3:-} ns d; ns=$(lab_real_ns "$i"); d=$LAB_DIR/nginx$i
  mkdir -p "$d/html"
  printf 'real%s\n' "$i" > "$d/html/index.html"
  head -c 1048576 /dev/urandom > "$d/html/blob"
  [ -f "$LAB_DIR/big" ] && ln -sf "$LAB_DIR/big" "$d/html/big"
  cat > "$d/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  keepalive_timeout ${LAB_NGINX_KEEPALIVE:-0};
  keepalive_requests 1000000;
  server { listen $port; $extra root $d/html; location / { } }
}
CONF
  lab_bg "$ns" nginx -c "$d/nginx.conf" -e "$d/error.log"
}

# lab_db I SQL...: SQL as MariaDB's root over instance I's own socket (lab_mariadb_pool's).
lab_db() {
  local i=$1; shift
  in_ns "$(lab_real_ns "$i")" mariadb --no-defaults -uroot -S "$LAB_DIR/db$i.sock" -N -B -e "$*"
}

# lab_mariadb_pool: MariaDB in reals 1 (primary), 2 and 3 (replicas, real replication by
# GTID), port 3306; users repl, lbdcheck (password checkpw, SLAVE MONITOR: the replica
# check's) and app (apppw, SELECT on shop); shop.items holds 2 rows, replicated. Returns
# once both replicas have them (non-zero if a server or the replication did not come up).
lab_mariadb_pool() {
  local i k d
  # Every data directory first: a bootstrap that overlaps a starting server failed once
  # (mariadb-install-db exit 1, under the ASan run's load).
  for i in 1 2 3; do
    mariadb-install-db --no-defaults --datadir="$LAB_DIR/db$i" --user=root --skip-test-db \
      --auth-root-authentication-method=normal >"$LAB_DIR/install$i.log" 2>&1 ||
      { cat "$LAB_DIR/install$i.log" >&2; return 1; }
  done
  for i in 1 2 3; do
    d=$LAB_DIR/db$i
    lab_bg "$(lab_real_ns "$i")" mariadbd --no-defaults --datadir="$d" --user=root \
      --socket="$LAB_DIR/db$i.sock" --pid-file="$LAB_DIR/db$i.pid" --port=3306 \
      --bind-address=0.0.0.0 --server-id="$i" --log-bin=binlog --skip-name-resolve \
      --log-error="$LAB_DIR/db$i.err"
  done
  for i in 1 2 3; do
    for k in $(seq 1 100); do lab_db "$i" "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
    lab_db "$i" "SELECT 1" >/dev/null || { cat "$LAB_DIR/db$i.err" >&2; return 1; }
  done
  lab_db 1 "CREATE USER 'repl'@'%' IDENTIFIED BY 'replpw'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
        CREATE USER 'lbdcheck'@'%' IDENTIFIED BY 'checkpw'; GRANT SLAVE MONITOR ON *.* TO 'lbdcheck'@'%';
        CREATE USER 'app'@'%' IDENTIFIED BY 'apppw'; GRANT SELECT ON shop.* TO 'app'@'%';
        CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name TEXT);
        INSERT INTO shop.items VALUES (1, 'lamp'), (2, 'desk');"
  for i in 2 3; do
    lab_db "$i" "CHANGE MASTER TO MASTER_HOST='$(lab_real_ip 1)', MASTER_USER='repl', MASTER_PASSWORD='replpw',
             MASTER_USE_GTID=slave_pos; START SLAVE;"
  done
  for i in 2 3; do
    for k in $(seq 1 100); do [ "$(lab_db "$i" "SELECT COUNT(*) FROM shop.items" 2>/dev/null)" = 2 ] && break; sleep 0.1; done
    [ "$(lab_db "$i" "SELECT COUNT(*) FROM shop.items" 2>/dev/null)" = 2 ] || return 1
  done
}

lab_wait_port() {  # lab_wait_port NS PORT: until something listens on tcp PORT
  local k
  for k in $(seq 1 100); do
    in_ns "$1" ss -ltn "sport = :$2" | grep -q LISTEN && return 0
    sleep 0.05
  done
  lab_log "nothing listens on $2 in $1"; return 1
}

# lab_lbd [extra args]: start lbd in the director namespace and wait for its socket.
lab_lbd() {
  LBD_BIN=${LBD_BIN:-$(command -v lbd)}
  # Ready = one more "capturing on" line than before (the log may hold earlier runs').
  local ready_before
  ready_before=$(grep -c "capturing on" "$LAB_DIR/lbd.log" 2>/dev/null || true)
  # A given rules file must exist (lbd refuses a missing one): start empty unless a test wrote one.
  [ -e "$LAB_DIR/rules" ] || : > "$LAB_DIR/rules"
  # LBD_OFFLOAD (CI runs the suite with xdp and with off): lbd's --offload, unless the test sets it.
  local offload=()
  [[ " $* " == *" --offload "* ]] || offload=(--offload "${LBD_OFFLOAD:-xdp}")
  # LBD_WORKERS (CI runs the suite with 1 and 2 workers): lbd's --workers, unless the test sets it.
  local workers=()
  [[ " $* " == *" --workers "* ]] || [ -z "${LBD_WORKERS:-}" ] || workers=(--workers "$LBD_WORKERS")
  ip netns exec "$LAB_DIRECTOR" "$LBD_BIN" --interface eth0 --socket "$LAB_SOCKET" \
    --rules "$LAB_DIR/rules" "${offload[@]}" "${workers[@]}" "$@" 2>>"$LAB_DIR/lbd.log" &
  LAB_LBD_PID=$!
  LAB_PIDS+=("$LAB_LBD_PID")
  local k
  for k in $(seq 1 100); do
    [ -S "$LAB_SOCKET" ] &&
      [ "$(grep -c "capturing on" "$LAB_DIR/lbd.log")" -gt "${ready_before:-0}" ] && return 0
    kill -0 "$LAB_LBD_PID" 2>/dev/null || { cat "$LAB_DIR/lbd.log" >&2; return 1; }
    sleep 0.05
  done
  cat "$LAB_DIR/lbd.log" >&2; return 1
}

lab_stop_lbd() {
  [ -n "${LAB_LBD_PID:-}" ] || return 0
  kill -TERM "$LAB_LBD_PID" 2>/dev/null || true
  wait "$LAB_LBD_PID" 2>/dev/null || true
  LAB_LBD_PID=
}

lbadm_() {  # lbadm against the lab's lbd, run on the director
  LBADM_BIN=${LBADM_BIN:-$(command -v lbadm)}
  in_ns "$LAB_DIRECTOR" "$LBADM_BIN" --socket "$LAB_SOCKET" "$@"
}

lab_cleanup() {  # the EXIT trap: tear down, then exit with the script's status
  local rc=$?
  trap - EXIT INT TERM
  lab_teardown "$rc"
  exit "$rc"
}

lab_teardown() {  # lab_teardown [RC]: end the lab's processes, namespaces and files
  local rc=${1:-0} pid ns pids
  lab_stop_lbd
  for pid in "${LAB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${LAB_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  # Whatever still runs inside the lab's namespaces was started by this lab (forked
  # per-connection servers, clients' children): end it, then remove the namespaces.
  for ns in "$LAB_CLIENT" "$LAB_DIRECTOR" "${LAB_REALS[@]}" "${LAB_EXTRA_NS[@]}" "$LAB_SW"; do
    pids=$(ip netns pids "$ns" 2>/dev/null) || true
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ] && [ -f "$LAB_DIR/lbd.log" ]; then
    lab_log "lbd log:"; tail -n 40 "$LAB_DIR/lbd.log" >&2
  fi
  [ "$rc" -ne 0 ] && [ -n "${LAB_FAIL_REASON:-}" ] && lab_log "failed: $LAB_FAIL_REASON"
  [ -n "${LAB_KEEP:-}" ] && cp -r "$LAB_DIR" "$LAB_KEEP" 2>/dev/null; rm -rf "$LAB_DIR" "${LAB_EXTRA_PATHS[@]}"
  LAB_PIDS=()
  LAB_REALS=()
  LAB_EXTRA_NS=()
  LAB_EXTRA_PATHS=()
}
