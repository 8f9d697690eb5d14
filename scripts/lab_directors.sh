# shellcheck shell=bash
# Labs of several directors, on top of lab.sh (source that first, then lab_init): the demo
# (scripts/demo.sh ha|ecmp) and the integration tests (test_ha_keepalived, test_ecmp_bird)
# share them. Functions return non-zero with a log line when something does not come up.
#
# Active/standby (lab_ha_create): keepalived's VRRP owns the VIP, lbd's sync follows it.
#   client 198.18.0.1 ─┐
#   d1 198.18.0.2 ─────┼── br0 ── real1..3 198.18.0.11..13 (DR: the VIP on lo)
#   d2 198.18.0.3 ─────┘     VIP 198.18.0.100 on the VRRP master's eth0
#
# Active/active (lab_ecmp_create): BIRD announces what lbd says (--announce-table 100) by
# BGP with BFD to a router that spreads flows by ECMP (L4 hash).
#   clients 198.18.1.10-41 ── br1 ── router (198.18.1.1 | 198.18.0.1, AS 65000)
#                                      │ br0
#      d1 198.18.0.2, d2 .3, d3 .4 (lbd + BIRD, AS 65001) ── real1..3 198.18.0.11..13
#      VIP 198.18.2.100 (DR, or TUN with lbd-decap on the reals)

LAB_NOTIFY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/keepalived/lbd-keepalived-notify

# lab_dir_ns N: director N's namespace (1-based; director 1 is LAB_DIRECTOR).
lab_dir_ns() { if [ "$1" = 1 ]; then echo "$LAB_DIRECTOR"; else echo "lbd$1$LAB_ID"; fi; }
# lab_adm N ARGS...: lbadm against director N's lbd.
lab_adm() { local n=$1; shift; in_ns "$(lab_dir_ns "$n")" "${LBADM_BIN:-lbadm}" --socket "$LAB_DIR/d$n.sock" "$@"; }
lab_vip_on() { in_ns "$(lab_dir_ns "$1")" ip -br addr show dev eth0 | grep -q "$LAB_VIP/32"; }

# lab_dir_lbd N [ARGS...]: lbd in director N's namespace (its socket $LAB_DIR/dN.sock, log
# lbdN.log, PID in LAB_LBD[N]), with the rules file $LAB_DIR/rules; returns once it captures.
LAB_LBD=()
lab_dir_lbd() {
  local n=$1 before k; shift
  before=$(grep -c "capturing on" "$LAB_DIR/lbd$n.log" 2>/dev/null || true)
  ip netns exec "$(lab_dir_ns "$n")" "${LBD_BIN:-lbd}" --interface eth0 --socket "$LAB_DIR/d$n.sock" \
    --rules "$LAB_DIR/rules" --offload "${LBD_OFFLOAD:-xdp}" ${LBD_WORKERS:+--workers "$LBD_WORKERS"} "$@" \
    2>>"$LAB_DIR/lbd$n.log" &
  LAB_LBD[n]=$!
  LAB_PIDS+=($!)
  for k in $(seq 1 100); do
    [ "$(grep -c "capturing on" "$LAB_DIR/lbd$n.log" 2>/dev/null)" -gt "${before:-0}" ] && return 0
    sleep 0.05
  done
  lab_log "lbd on d$n did not start: $(tail -5 "$LAB_DIR/lbd$n.log")"; return 1
}

# --- active/standby ----------------------------------------------------------------------
# lab_ha_create: the namespaces, nginx on three DR reals ($LAB_DIR/big served if it
# exists), and a rules file (wlc).
lab_ha_create() {
  local i
  lab_create 3
  ip netns add "$(lab_dir_ns 2)"
  LAB_EXTRA_NS+=("$(lab_dir_ns 2)")
  lab_link "$(lab_dir_ns 2)" eth0 198.18.0.3/24
  for i in 1 2 3; do lab_dr_real "$i"; lab_nginx "$i"; done
  for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80 || return 1; done
  {
    echo "-A -t $LAB_VIP:80 -s wlc"
    for i in 1 2 3; do echo "-a -t $LAB_VIP:80 -r $(lab_real_ip "$i"):80 -g -w 1"; done
  } > "$LAB_DIR/rules"
}

# lab_ha_director N: director N's lbd (--vip-arp never: keepalived's VIP, the kernel
# answers ARP) and keepalived (VRRP only; director 1 has the higher priority; nopreempt),
# its notify scripts switching lbd's sync role. keepalived's PIDs: LAB_KA[N] (its parent)
# and $LAB_DIR/kaN-vrrp.pid (its VRRP process).
LAB_KA=()
lab_ha_director() {
  local n=$1 sock=$LAB_DIR/d$1.sock prio
  prio=$([ "$n" = 1 ] && echo 150 || echo 100)
  lab_dir_lbd "$n" --vip-arp never || return 1
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
    $LAB_VIP/32 dev eth0
  }
  notify_master "$LAB_NOTIFY master eth0 51 $sock"
  notify_backup "$LAB_NOTIFY backup eth0 51 $sock"
  notify_fault "$LAB_NOTIFY fault eth0 51 $sock"
}
CONF
  ip netns exec "$(lab_dir_ns "$n")" env LBADM="${LBADM_BIN:-lbadm}" keepalived --vrrp --dont-fork --log-console \
    --log-detail --use-file "$LAB_DIR/ka$n.conf" --pid "$LAB_DIR/ka$n.pid" --vrrp_pid "$LAB_DIR/ka$n-vrrp.pid" \
    </dev/null >>"$LAB_DIR/ka$n.log" 2>&1 &
  LAB_KA[n]=$!
  LAB_PIDS+=($!)
}

# lab_ha_wait_role N ROLE: until director N's lbd runs ROLE's sync daemon (at most 15 s).
lab_ha_wait_role() {
  local k
  for k in $(seq 1 150); do lab_adm "$1" -L --daemon | grep -q "^$2 sync daemon" && return 0; sleep 0.1; done
  lab_log "d$1 is not $2 after 15 s: $(lab_adm "$1" -L --daemon); keepalived: $(tail -5 "$LAB_DIR/ka$1.log")"
  return 1
}

# lab_sync_failover SYNCID: director 1's lbd dies (SIGKILL) and director 2's backup sync
# daemon becomes master, as keepalived's notify would make it (no keepalived in these labs).
lab_sync_failover() {
  kill -KILL "${LAB_LBD[1]}"; wait "${LAB_LBD[1]}" 2>/dev/null || true
  lab_adm 2 --stop-daemon backup
  lab_adm 2 --start-daemon master --mcast-interface eth0 --syncid "$1"
  lab_ha_wait_role 2 master
}

# lab_ha_kill N: director N dies: keepalived's VRRP process first (killed after its
# parent it would resign with a priority 0 advertisement: a clean stop, not a death), its
# parent, and lbd, all SIGKILLed.
lab_ha_kill() {
  local n=$1
  kill -KILL "$(cat "$LAB_DIR/ka$n-vrrp.pid")" "${LAB_KA[n]}" "${LAB_LBD[n]}"
  wait "${LAB_KA[n]}" "${LAB_LBD[n]}" 2>/dev/null || true
}

# --- active/active ----------------------------------------------------------------------
LAB_ECMP_VIP=198.18.2.100
LAB_ECMP_PATHS="198.18.0.2 198.18.0.3 198.18.0.4 "
# lab_ecmp_create dr|tun: the namespaces, the router (forwarding, L4 multipath hash),
# 32 client addresses, nginx on three reals ($LAB_DIR/big served if it exists), a rules
# file (mh, sloppy_tcp), and BIRD on the router.
lab_ecmp_create() {
  local method=$1 n i a ns flag
  LAB_VIP=$LAB_ECMP_VIP
  LAB_ROUTER=lbrt$LAB_ID
  ip netns add "$LAB_SW"
  in_ns "$LAB_SW" ip link set lo up
  ip netns add "$LAB_ROUTER"
  LAB_EXTRA_NS+=("$LAB_ROUTER" "$(lab_dir_ns 2)" "$(lab_dir_ns 3)")
  lab_link "$LAB_ROUTER" eth0 198.18.0.1/24
  lab_link "$LAB_ROUTER" eth1 198.18.1.1/24 br1
  in_ns "$LAB_ROUTER" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
  ip netns add "$LAB_CLIENT"
  lab_link "$LAB_CLIENT" eth0 198.18.1.10/24 br1
  lab_host_checksums "$LAB_CLIENT" eth0
  for a in $(seq 11 41); do in_ns "$LAB_CLIENT" ip addr add "198.18.1.$a/24" dev eth0; done
  in_ns "$LAB_CLIENT" ip route add default via 198.18.1.1
  for n in 1 2 3; do
    ip netns add "$(lab_dir_ns "$n")"
    lab_link "$(lab_dir_ns "$n")" eth0 "198.18.0.$((n + 1))/24"
  done
  for i in 1 2 3; do
    ns=$(lab_real_ns "$i")
    ip netns add "$ns"
    lab_link "$ns" eth0 "$(lab_real_ip "$i")/24"
    lab_host_checksums "$ns" eth0
    LAB_REALS+=("$ns")
    in_ns "$ns" ip route add default via 198.18.0.1
    if [ "$method" = tun ]; then
      lab_bg "$ns" "${LBD_DECAP_BIN:-lbd-decap}" --vip "$LAB_VIP" --allow-from 198.18.0.2 --allow-from 198.18.0.3 \
        --allow-from 198.18.0.4 --state-dir "$LAB_DIR/decap$i"
    else
      lab_dr_real "$i"
    fi
    lab_nginx "$i"
  done
  for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80 || return 1; done
  flag=$(lab_method_flag "$method")
  {
    echo "--lbd-sysctl sloppy_tcp=1"
    echo "-A -t $LAB_VIP:80 -s mh"
    for i in 1 2 3; do echo "-a -t $LAB_VIP:80 -r $(lab_real_ip "$i"):80 $flag -w 1"; done
  } > "$LAB_DIR/rules"
  cat > "$LAB_DIR/router.conf" <<CONF
log "$LAB_DIR/router.log" all;
router id 198.18.0.1;
protocol device { scan time 10; }
# One multipath route of every director's equal path (BIRD merges them).
protocol kernel { merge paths yes; ipv4 { import none; export all; }; }
$LAB_BFD
template bgp director { local 198.18.0.1 as 65000; bfd on; $LAB_BGP_TIMERS ipv4 { import all; export none; }; }
protocol bgp d1 from director { neighbor 198.18.0.2 as 65001; }
protocol bgp d2 from director { neighbor 198.18.0.3 as 65001; }
protocol bgp d3 from director { neighbor 198.18.0.4 as 65001; }
CONF
  lab_bg "$LAB_ROUTER" bird -f -c "$LAB_DIR/router.conf" -s "$LAB_DIR/router.ctl" -P "$LAB_DIR/router.pid"
  lab_bird_up "$LAB_DIR/router.ctl" router
}
LAB_BGP_TIMERS='connect retry time 1; connect delay time 1; error wait time 1,3;'
LAB_BFD='protocol bfd { interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }'

lab_bird_up() {  # lab_bird_up SOCKET WHO: until BIRD answers on its control socket
  local k
  for k in $(seq 1 100); do birdc -s "$1" show status >/dev/null 2>&1 && return 0; sleep 0.05; done
  lab_log "BIRD on $2 did not start: $(tail -3 "$LAB_DIR/bg.log")"; return 1
}

# lab_ecmp_director N: director N's lbd (announcing in table 100) and BIRD (its kernel
# protocol learns lbd's routes, BGP with BFD exports them). BIRD's PID: LAB_BIRD[N].
LAB_BIRD=()
lab_ecmp_director() {
  local n=$1 addr=198.18.0.$(($1 + 1))
  lab_dir_lbd "$n" --announce-table 100 || return 1
  cat > "$LAB_DIR/bird$n.conf" <<CONF
log "$LAB_DIR/bird$n.log" all;
router id $addr;
ipv4 table vips;
protocol device { scan time 10; }
# lbd's routes (--announce-table 100): learnt, and gone the moment lbd withdraws them or dies.
protocol kernel lbd_vips {
  kernel table 100;
  learn;
  scan time 10;
  ipv4 { table vips; import all; export none; };
}
$LAB_BFD
protocol bgp upstream {
  local $addr as 65001;
  neighbor 198.18.0.1 as 65000;
  bfd on;
  $LAB_BGP_TIMERS
  ipv4 { table vips; import none; export all; next hop self; };
}
CONF
  lab_bg "$(lab_dir_ns "$n")" bird -f -c "$LAB_DIR/bird$n.conf" -s "$LAB_DIR/bird$n.ctl" -P "$LAB_DIR/bird$n.pid"
  LAB_BIRD[n]=${LAB_PIDS[-1]}
  lab_bird_up "$LAB_DIR/bird$n.ctl" "d$n"
}

# lab_ecmp_paths: the router's next hops for the VIP, sorted, each followed by a blank.
lab_ecmp_paths() { in_ns "$LAB_ROUTER" ip -4 route show "$LAB_VIP" | grep -o 'via 198.18.0.[0-9]*' | awk '{print $2}' | sort | tr '\n' ' '; }
# lab_ecmp_wait_paths WANT SECONDS: until the router's next hops are WANT; prints how
# long it took (seconds).
lab_ecmp_wait_paths() {
  local start; start=$(date +%s.%N)
  while [ "$(lab_ecmp_paths)" != "$1" ]; do
    if awk -v s="$start" -v l="$2" -v n="$(date +%s.%N)" 'BEGIN {exit !(n - s > l)}'; then
      lab_log "the router's paths to $LAB_VIP are [$(lab_ecmp_paths)], not [$1], after $2 s: $(in_ns "$LAB_ROUTER" birdc -s "$LAB_DIR/router.ctl" show protocols 2>&1 | tail -4)"
      return 1
    fi
    sleep 0.05
  done
  awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN {printf "%.2f", n - s}'
}

# lab_ecmp_kill N: director N dies as a box does: its link first (so its kernel cannot
# close BIRD's BGP session for it: the router learns it from BFD), then lbd and BIRD SIGKILLed.
lab_ecmp_kill() {
  local n=$1
  in_ns "$(lab_dir_ns "$n")" ip link set eth0 down
  kill -KILL "${LAB_LBD[n]}" "${LAB_BIRD[n]}"
  wait "${LAB_LBD[n]}" "${LAB_BIRD[n]}" 2>/dev/null || true
}
