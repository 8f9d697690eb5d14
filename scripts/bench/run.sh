#!/usr/bin/env bash
# End-to-end benchmark: one lab, one load, the directors side by side:
#   lbd-DR, lbd-NAT, lbd-TUN   lbd forwarding every packet itself (--offload off)
#   lbd-DR-xdp, -NAT-xdp, -TUN-xdp  lbd with its XDP flow cache (generic mode, lbd's default
#                 on a veth): lbd decides, the kernel forwards established connections
#   lbd-DR-fwm, lbd-DR-fwm-xdp  lbd-DR and lbd-DR-xdp with firewall-mark services: iptables
#                 marks, the packets reach lbd through its NFQUEUE instead of libpcap
#   lbd6-DR, lbd6-DR-xdp  lbd-DR and lbd-DR-xdp over IPv6 (client, director, reals and VIP
#                 in 2001:db8::/64): IPv6's cost beside IPv4's, on each path
#   lbd-DR-native lbd's XDP flow cache in native mode (an XDP program on the switch-side
#                 veth peer, the director's NAPI threaded and pinned to the director core)
#   kernel        the director forwards as a plain IP router (ECMP over the reals; replies direct)
#   netdev-fwd    an in-kernel DR forwarder: nftables netdev ingress sets real1's MAC and
#                 `fwd`s the frame out again (the kernel doing exactly lbd-DR's job)
#   nft-dnat      nftables DNAT with numgen round robin (replies back through the director)
#   haproxy       HAProxy mode tcp on the director (both directions proxied)
# Loads: wrk with a new connection per request; wrk keep-alive (16 connections); wrk with
# one keep-alive connection for latency (p50/p99); iperf3 -R (download from a real); 64-byte
# UDP datagrams (frames of 60 bytes + FCS) from a bounded sender. Every load is bounded in
# time. Director CPU: the director's receive processing is steered to core 0 (RPS on its
# interface; native XDP: its NAPI thread pinned there), lbd/haproxy are pinned there, the
# load generator and the servers to core 1, and core 0's load is what an idle-priority
# spinner pinned to it loses. Work moved to another core would show as load there, and the
# client's core is saturated by the load generator in every mode, so it cannot hide any.
# Usage: scripts/bench/run.sh [SECONDS per load]   (as root; installs its dependencies)
# BENCH_MODES="kernel lbd_xdp ..." picks modes; BENCH_PERF=1 adds perf's top symbols on the
# director core during each UDP flood (perf samples cost a little: not for the ratios).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-8}
export LAB_NGINX_KEEPALIVE=65  # keep-alive loads keep their connections (wrk -H "Connection: close" does not)
. scripts/deps.sh
lbd_install_deps bench
lbd_build >/dev/null
export LBD_BIN=$PWD/build/lbd LBADM_BIN=$PWD/build/lbadm LBD_DECAP_BIN=$PWD/build/lbd-decap
. scripts/lab.sh
TOOLS=$(mktemp -d)
cc -O2 -o "$TOOLS/spin" scripts/bench/spin.c
cc -O2 -o "$TOOLS/udpblast" scripts/bench/udpblast.c
RESULTS=$(mktemp)
trap 'rm -rf "$TOOLS" "$RESULTS"' EXIT
DIRECTOR_CPU=0
LOAD_CPU=1

spin_rate() { chrt -i 0 taskset -c "$DIRECTOR_CPU" "$TOOLS/spin" "$1"; }

# measure CMD...: runs the load on core 1 while the spinner runs on core 0; prints
# "<load output> <director load 0..1>". The spinner's idle rate is taken right before each
# load: the VM's speed drifts too much for one baseline per run.
IDLE_RATE=0
measure() {
  local out rate
  IDLE_RATE=$(spin_rate 2)
  spin_rate "$SECS" > "$LAB_DIR/spin.out" &
  local sp=$!
  out=$("$@" 2>/dev/null | tail -1) || out=0
  wait "$sp"
  rate=$(cat "$LAB_DIR/spin.out")
  echo "$out $(awk -v r="$rate" -v i="$IDLE_RATE" 'BEGIN {l = 1 - r / i; if (l < 0) l = 0; printf "%.3f", l}')"
}

in_load() { ip netns exec "$1" taskset -c "$LOAD_CPU" "${@:2}"; }

setup_common() {
  lab_init "$1"
  trap 'lab_cleanup' EXIT
  lab_create 3
  local ns ifc
  for ns in "$LAB_CLIENT" "$LAB_DIRECTOR" "${LAB_REALS[@]}"; do lab_offloads_off "$ns" eth0; done
  # The director's receive work on core 0, wherever the sender runs; everybody else's on
  # core 1. A frame the director sends is received by the switch's port and then by a real
  # (or the client) in the sender's context unless steered: without this, the switch's and
  # the reals' receive work for every forwarded packet ran on the director core and was
  # counted as the director's, which dilutes every ratio towards 1 (the old figures).
  in_ns "$LAB_DIRECTOR" sh -c "echo $((1 << DIRECTOR_CPU)) > /sys/class/net/eth0/queues/rx-0/rps_cpus"
  for ns in "$LAB_CLIENT" "${LAB_REALS[@]}"; do
    in_ns "$ns" sh -c "echo $((1 << LOAD_CPU)) > /sys/class/net/eth0/queues/rx-0/rps_cpus"
  done
  for ifc in $(in_ns "$LAB_SW" ls /sys/class/net | grep "^sw${LAB_ID}p"); do
    in_ns "$LAB_SW" sh -c "echo $((1 << LOAD_CPU)) > /sys/class/net/$ifc/queues/rx-0/rps_cpus"
  done
  in_ns "$LAB_DIRECTOR" sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0
  in_ns "$LAB_CLIENT" sysctl -qw net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.eth0.accept_redirects=0
  in_ns "$LAB_CLIENT" ip route add "$LAB_VIP/32" via "$LAB_DIRECTOR_IP"
  for i in 1 2 3; do
    ns=$(lab_real_ns "$i")
    lab_nginx "$i"
  done
  lab_bg "$(lab_real_ns 1)" taskset -c "$LOAD_CPU" iperf3 -s -p 5201
  for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
  lab_wait_port "$(lab_real_ns 1)" 5201
}

# The address the loads go to, and its form in a URL: the VIP, or with BENCH_V6 the IPv6 one.
VIP6=2001:db8::100
target() { if [ -n "${BENCH_V6:-}" ]; then echo "$VIP6"; else echo "$LAB_VIP"; fi; }
url_host() { if [ -n "${BENCH_V6:-}" ]; then echo "[$VIP6]"; else echo "$LAB_VIP"; fi; }

run_loads() {  # run_loads MODE [udp]
  local mode=$1 r host
  host=$(url_host)
  local LAB_VIP=$host  # the wrk URLs below
  if [ -n "${BENCH_UDP_ONLY:-}" ]; then run_udp "$mode"; return; fi
  r=$(measure in_load "$LAB_CLIENT" sh -c "wrk -t1 -c16 -d${SECS}s -H 'Connection: close' http://$LAB_VIP/ | awk '/Requests\/sec/ {print \$2}'")
  echo "$mode conn/s $r" >> "$RESULTS"
  r=$(measure in_load "$LAB_CLIENT" sh -c "wrk -t1 -c16 -d${SECS}s http://$LAB_VIP/ | awk '/Requests\/sec/ {print \$2}'")
  echo "$mode keepalive_req/s $r" >> "$RESULTS"
  # Latency at low load: one keep-alive connection, p50 and p99 in microseconds.
  r=$(in_load "$LAB_CLIENT" wrk -t1 -c1 -d"$(( SECS / 2 + 1 ))"s --latency "http://$LAB_VIP/" |
      awk 'function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; return v * 1e6 }
           $1 == "50%" {p50 = us($2)} $1 == "99%" {p99 = us($2)} END {printf "%.0f %.0f", p50, p99}')
  echo "$mode latency_p50_p99_us $r" >> "$RESULTS"
  r=$(measure in_load "$LAB_CLIENT" sh -c "iperf3 -c $(target) -p 5201 -R -t $SECS -f m | awk '/receiver/ {print \$7}'")
  echo "$mode iperf3-R_Mbit/s $r" >> "$RESULTS"
  [ "${2:-}" = udp ] && run_udp "$mode"
  return 0
}

run_udp() {
  local mode=$1 r
  {
    lab_bg "$(lab_real_ns 1)" taskset -c "$LOAD_CPU" "$TOOLS/udpblast" recv 9000 "$((SECS + 2))"
    local rpid=${LAB_PIDS[-1]}
    sleep 0.3
    if [ -n "${BENCH_PERF:-}" ]; then  # where the director core's time goes under the UDP flood
      (sleep 3; perf record -q -C "$DIRECTOR_CPU" -o "$LAB_DIR/perf.data" -- sleep 2 >/dev/null 2>&1
       perf report -q -i "$LAB_DIR/perf.data" --stdio --sort symbol --percent-limit 1.5 2>/dev/null |
         sed "s/^/$mode perf /" >> "$RESULTS") &
    fi
    local perf_pid=$!
    r=$(measure in_load "$LAB_CLIENT" "$TOOLS/udpblast" send "$(target)" 9000 "$SECS" 18)
    [ -n "${BENCH_PERF:-}" ] && wait "$perf_pid"
    wait "$rpid" 2>/dev/null || true
    local recv_pps; recv_pps=$(tail -1 "$LAB_DIR/bg.log")
    echo "$mode udp64_sent/s ${r%% *}" >> "$RESULTS"
    echo "$mode udp64_recv_pps $recv_pps ${r##* }" >> "$RESULTS"
  }
}

# mode_lbd_with METHOD LABEL LAB_ID OFFLOAD [fwmark]: lbd with every real forwarded by
# METHOD; with fwmark, as firewall-mark services (-f) the director's iptables marks (the VIP
# on its eth0, packets through lbd's NFQUEUE) instead of -t/-u services.
mode_lbd_with() {
  local method=$1 label=$2 offload=$4 fwmark=${5:-} flag
  flag=$(lab_method_flag "$method")
  setup_common "$3"
  for i in 1 2 3; do
    lab_setup_real "$method" "$i"
    # lbd-decap works on the reals' side: on the load core, with the servers.
    [ "$method" = tun ] && taskset -p -c "$LOAD_CPU" "${LAB_PIDS[-1]}" >/dev/null
  done
  if [ "$offload" = xdp-native ]; then
    # The switch-side peer takes XDP frames only with an XDP program of its own.
    in_ns "$LAB_SW" ip link set dev "sw${LAB_ID}p2" xdp obj "$PWD/build/lbd_xdp_pass.o" sec xdp
  fi
  if [ -n "${BENCH_V6:-}" ]; then  # every host in 2001:db8::/64 too; the DR reals take the VIP on lo
    in_ns "$LAB_CLIENT" ip -6 addr add 2001:db8::1/64 dev eth0 nodad
    in_ns "$LAB_DIRECTOR" ip -6 addr add 2001:db8::2/64 dev eth0 nodad
    for i in 1 2 3; do
      in_ns "$(lab_real_ns "$i")" ip -6 addr add "2001:db8::1$i/64" dev eth0 nodad
      in_ns "$(lab_real_ns "$i")" ip -6 addr add "$VIP6/128" dev lo nodad
      sed -i "s/listen 80;/listen 80; listen [::]:80;/" "$LAB_DIR/nginx$i/nginx.conf"
      kill -HUP "$(cat "$LAB_DIR/nginx$i/nginx.pid")"
    done
    in_ns "$LAB_CLIENT" ip -6 route add "$VIP6/128" via 2001:db8::2
  fi
  : > "$LAB_DIR/rules"  # no rules at start: the services are added below
  ip netns exec "$LAB_DIRECTOR" taskset -c "$DIRECTOR_CPU" "$LBD_BIN" --interface eth0 \
    --socket "$LAB_SOCKET" --rules "$LAB_DIR/rules" --offload "$offload" ${LBD_OPTS:-} 2>>"$LAB_DIR/lbd.log" &
  LAB_LBD_PID=$!; LAB_PIDS+=("$LAB_LBD_PID")
  for k in $(seq 1 100); do grep -q "capturing on" "$LAB_DIR/lbd.log" 2>/dev/null && break; sleep 0.05; done
  if [ "$offload" = xdp-native ]; then
    # Native XDP on a veth runs in the *sender's* context unless the receiver's NAPI is a
    # thread: make it one and pin it to the director core, or its work would not count.
    # (The knob exists once XDP has given the veth a NAPI instance.)
    in_ns "$LAB_DIRECTOR" sh -c 'echo 1 > /sys/class/net/eth0/threaded' ||
      { echo "lbd-DR-native: cannot thread eth0's NAPI: its figures would not count its work" >&2; lab_cleanup_keep; return 1; }
    sleep 0.2
    local napi; napi=$(pgrep '^napi/eth0-')
    [ -n "$napi" ] || { echo "lbd-DR-native: no napi/eth0 thread" >&2; lab_cleanup_keep; return 1; }
    for pid in $napi; do taskset -p -c "$DIRECTOR_CPU" "$pid" >/dev/null; done
    echo "$label napi threads $napi pinned to core $DIRECTOR_CPU" >> "$RESULTS"
  fi
  grep offload "$LAB_DIR/lbd.log" | sed "s/^/$label log /" >> "$RESULTS"
  if [ -n "$fwmark" ]; then
    in_ns "$LAB_DIRECTOR" ip addr add "$LAB_VIP/32" dev eth0
    in_ns "$LAB_DIRECTOR" iptables -t mangle -A PREROUTING -d "$LAB_VIP" -p tcp --dport 80 -j MARK --set-mark 1
    in_ns "$LAB_DIRECTOR" iptables -t mangle -A PREROUTING -d "$LAB_VIP" -p tcp --dport 5201 -j MARK --set-mark 2
    in_ns "$LAB_DIRECTOR" iptables -t mangle -A PREROUTING -d "$LAB_VIP" -p udp --dport 9000 -j MARK --set-mark 3
    lbadm_ -A -f 1 -s rr
    for i in 1 2 3; do lbadm_ -a -f 1 -r "$(lab_real_ip "$i")" "$flag"; done
    lbadm_ -A -f 2 -s rr
    lbadm_ -a -f 2 -r "$(lab_real_ip 1)" "$flag"
    lbadm_ -A -f 3 -s rr
    lbadm_ -a -f 3 -r "$(lab_real_ip 1)" "$flag"
  elif [ -n "${BENCH_V6:-}" ]; then
    lbadm_ -A -t "[$VIP6]:80" -s rr
    for i in 1 2 3; do lbadm_ -a -t "[$VIP6]:80" -r "2001:db8::1$i" "$flag"; done
    lbadm_ -A -t "[$VIP6]:5201" -s rr
    lbadm_ -a -t "[$VIP6]:5201" -r 2001:db8::11 "$flag"
    lbadm_ -A -u "[$VIP6]:9000" -s rr
    lbadm_ -a -u "[$VIP6]:9000" -r 2001:db8::11 "$flag"
  else
    lbadm_ -A -t "$LAB_VIP:80" -s rr
    for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")" "$flag"; done
    lbadm_ -A -t "$LAB_VIP:5201" -s rr
    lbadm_ -a -t "$LAB_VIP:5201" -r "$(lab_real_ip 1)" "$flag"
    lbadm_ -A -u "$LAB_VIP:9000" -s rr
    lbadm_ -a -u "$LAB_VIP:9000" -r "$(lab_real_ip 1)" "$flag"
  fi
  sleep 1.2
  in_ns "$LAB_CLIENT" curl -g -s -m 2 "http://$(url_host)/" >/dev/null
  run_loads "$label" udp
  lbadm_ --lbd-counters | grep -E "drop_|kernel_drops|^xdp_forwarded|^xdp_miss|^offload_" | grep -v " 0$" |
    sed "s/^/$label counter /" >> "$RESULTS" || true
  lab_cleanup_keep
}
mode_lbd() { mode_lbd_with dr lbd-DR 901 off; }
mode_lbd_nat() { mode_lbd_with nat lbd-NAT 905 off; }
mode_lbd_tun() { mode_lbd_with tun lbd-TUN 906 off; }
mode_lbd_xdp() { mode_lbd_with dr lbd-DR-xdp 907 xdp; }
mode_lbd_nat_xdp() { mode_lbd_with nat lbd-NAT-xdp 908 xdp; }
mode_lbd_tun_xdp() { mode_lbd_with tun lbd-TUN-xdp 909 xdp; }
mode_lbd_native() { mode_lbd_with dr lbd-DR-native 910 xdp-native; }
mode_lbd_fwmark() { mode_lbd_with dr lbd-DR-fwm 911 off fwmark; }
mode_lbd_fwmark_xdp() { mode_lbd_with dr lbd-DR-fwm-xdp 912 xdp fwmark; }
mode_lbd6() { BENCH_V6=1 mode_lbd_with dr lbd6-DR 913 off; }
mode_lbd6_xdp() { BENCH_V6=1 mode_lbd_with dr lbd6-DR-xdp 914 xdp; }

# The kernel doing lbd-DR's job at its earliest hook: frames to the VIP get real1's MAC
# (and the director's as source, as lbd sets it: the switch must not learn the client's MAC
# on the director's port) and leave by the same interface (netdev ingress `fwd`), never
# reaching the IP stack.
mode_netdev() {
  setup_common 911
  for i in 1 2 3; do lab_dr_real "$i"; done
  local mac own
  mac=$(in_ns "$(lab_real_ns 1)" cat /sys/class/net/eth0/address)
  own=$(in_ns "$LAB_DIRECTOR" cat /sys/class/net/eth0/address)
  in_ns "$LAB_DIRECTOR" nft -f - <<NFT
table netdev bench {
  chain in {
    type filter hook ingress device eth0 priority 0;
    ip daddr $LAB_VIP ether saddr set $own ether daddr set $mac fwd to eth0
  }
}
NFT
  run_loads netdev-fwd udp
  lab_cleanup_keep
}

mode_kernel() {
  # The director routes the VIP over an ECMP route to the three reals, hashed on L4 ports
  # so connections spread like a load balancer's; the reals own the VIP (as for DR).
  setup_common 902
  for i in 1 2 3; do lab_dr_real "$i"; done
  in_ns "$LAB_DIRECTOR" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
  in_ns "$LAB_DIRECTOR" ip route add "$LAB_VIP/32" \
    nexthop via "$(lab_real_ip 1)" nexthop via "$(lab_real_ip 2)" nexthop via "$(lab_real_ip 3)"
  # iperf3 and the UDP sink run on real1 only, as in the other modes.
  in_ns "$LAB_DIRECTOR" ip route add "$LAB_VIP/32" via "$(lab_real_ip 1)" table 100
  in_ns "$LAB_DIRECTOR" ip rule add ipproto tcp dport 5201 table 100
  in_ns "$LAB_DIRECTOR" ip rule add ipproto udp dport 9000 table 100
  run_loads kernel udp
  lab_cleanup_keep
}

mode_nft() {
  setup_common 903
  in_ns "$LAB_DIRECTOR" sysctl -qw net.ipv4.ip_forward=1
  for i in 1 2 3; do in_ns "$(lab_real_ns "$i")" ip route add "$LAB_CLIENT_IP/32" via "$LAB_DIRECTOR_IP"; done
  in_ns "$LAB_DIRECTOR" nft -f - <<NFT
table ip bench {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr $LAB_VIP tcp dport 80 dnat to numgen inc mod 3 map { 0 : $(lab_real_ip 1), 1 : $(lab_real_ip 2), 2 : $(lab_real_ip 3) }
    ip daddr $LAB_VIP tcp dport 5201 dnat to $(lab_real_ip 1)
    ip daddr $LAB_VIP udp dport 9000 dnat to $(lab_real_ip 1)
  }
}
NFT
  run_loads nft-dnat udp
  lab_cleanup_keep
}

mode_haproxy() {
  setup_common 904
  in_ns "$LAB_DIRECTOR" ip addr add "$LAB_VIP/32" dev lo
  cat > "$LAB_DIR/haproxy.cfg" <<CFG
global
  maxconn 8000
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend web
  bind $LAB_VIP:80
  default_backend reals
backend reals
  balance roundrobin
  server r1 $(lab_real_ip 1):80
  server r2 $(lab_real_ip 2):80
  server r3 $(lab_real_ip 3):80
frontend iperf
  bind $LAB_VIP:5201
  default_backend iperf
backend iperf
  server r1 $(lab_real_ip 1):5201
CFG
  lab_bg "$LAB_DIRECTOR" taskset -c "$DIRECTOR_CPU" haproxy -f "$LAB_DIR/haproxy.cfg" -db
  lab_wait_port "$LAB_DIRECTOR" 80 || { cat "$LAB_DIR/bg.log" >&2; return 1; }
  run_loads haproxy
  lab_cleanup_keep
}

# Ends one mode's lab without leaving the script.
lab_cleanup_keep() { trap - EXIT; lab_teardown; }

for mode in ${BENCH_MODES:-kernel netdev lbd lbd6 lbd_xdp lbd6_xdp lbd_native lbd_fwmark lbd_fwmark_xdp lbd_tun lbd_tun_xdp nft lbd_nat lbd_nat_xdp haproxy}; do "mode_$mode" || echo "mode $mode failed" >&2; done

echo
echo "Raw results (value, director core load 0..1):"
cat "$RESULTS"
echo
awk '
  $2 == "conn/s" || $2 == "keepalive_req/s" || $2 == "iperf3-R_Mbit/s" || $2 == "udp64_recv_pps" {
    v[$1, $2] = $3; l[$1, $2] = $4; metrics[$2] = 1
  }
  $2 == "latency_p50_p99_us" { p50[$1] = $3; p99[$1] = $4 }
  function eff(d, m) { return (l[d, m] > 0.005) ? v[d, m] / l[d, m] : 0 }
  END {
    n = split("kernel netdev-fwd lbd-DR lbd6-DR lbd-DR-xdp lbd6-DR-xdp lbd-DR-native lbd-DR-fwm lbd-DR-fwm-xdp lbd-TUN lbd-TUN-xdp nft-dnat lbd-NAT lbd-NAT-xdp haproxy", order, " ")
    nm = split("udp64_recv_pps keepalive_req/s conn/s iperf3-R_Mbit/s", mlist, " ")
    printf "%-16s %-14s %12s %9s %14s %10s %10s %10s\n", "load", "director", "value", "dir.load", "value/dir.CPU",
           "vs kernel", "per-CPU/k", "per-CPU/nft"
    for (j = 1; j <= nm; j++) {
      m = mlist[j]
      if (!(m in metrics)) continue
      ke = eff("kernel", m); ne = eff("nft-dnat", m)
      for (i = 1; i <= n; i++) {
        d = order[i]
        if (!((d, m) in v)) continue
        e = eff(d, m)
        printf "%-16s %-14s %12.0f %9.3f %14.0f %10.2f %10.2f %10s\n", m, d, v[d, m], l[d, m], e,
               (v["kernel", m] > 0 ? v[d, m] / v["kernel", m] : 0), (ke > 0 ? e / ke : 0),
               (d ~ /NAT|nft|haproxy/ && ne > 0) ? sprintf("%.2f", e / ne) : "-"
      }
    }
    printf "\n%-14s %10s %10s   (one keep-alive connection, wrk --latency)\n", "director", "p50 us", "p99 us"
    for (i = 1; i <= n; i++) if (order[i] in p50) printf "%-14s %10s %10s\n", order[i], p50[order[i]], p99[order[i]]
  }' "$RESULTS"
