#!/usr/bin/env bash
# Active/active: three directors announce the VIP by BGP (the real BIRD 2, with BFD) to a
# router that spreads flows over them by ECMP (a Linux multipath route, L4 hash). lbd
# decides what is announced (--announce-table: BIRD's kernel protocol learns its routes);
# mh and sloppy_tcp on every director send a flow to the same real whichever director the
# router picks.
#
#   clients 198.18.1.10-41 ── br1 ── router (198.18.1.1 | 198.18.0.1, BIRD: AS 65000)
#                                      │ br0
#      d1 198.18.0.2, d2 .3, d3 .4 (lbd + BIRD, AS 65001) ── real1..3 198.18.0.11..13
#      VIP 198.18.2.100 (ECMP_METHOD: dr, or tun with lbd-decap on the reals)
#
# Checks: the router has a path per director; a director whose reals are all quiesced is
# withdrawn at once and comes back; one director dead (link down, lbd and BIRD SIGKILLed) under 24
# downloads from 24 client addresses: every download completes intact, every new
# connection begun 1 s after the kill succeeds (BFD); the director back: no download
# breaks. NAT is single-director (replies must pass the director that made the
# connection), so it is not part of this.
. "$(dirname "$0")/common.sh"
METHOD=${ECMP_METHOD:-dr}
command -v bird >/dev/null || fail "BIRD is not installed (scripts/deps.sh installs bird2)"
LAB_VIP=198.18.2.100
V=$LAB_VIP
lab_init
trap lab_cleanup EXIT
ip netns add "$LAB_SW"
in_ns "$LAB_SW" ip link set lo up
ROUTER=lbrt$LAB_ID
D=("$LAB_DIRECTOR" "lbd2$LAB_ID" "lbd3$LAB_ID")
ip netns add "$ROUTER"
LAB_EXTRA_NS+=("$ROUTER" "${D[1]}" "${D[2]}")
lab_link "$ROUTER" eth0 198.18.0.1/24
lab_link "$ROUTER" eth1 198.18.1.1/24 br1
in_ns "$ROUTER" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
ip netns add "$LAB_CLIENT"
lab_link "$LAB_CLIENT" eth0 198.18.1.10/24 br1
lab_host_checksums "$LAB_CLIENT" eth0
for a in $(seq 11 41); do in_ns "$LAB_CLIENT" ip addr add "198.18.1.$a/24" dev eth0; done
in_ns "$LAB_CLIENT" ip route add default via 198.18.1.1
for n in 0 1 2; do
  ip netns add "${D[$n]}" 2>/dev/null || true
  lab_link "${D[$n]}" eth0 "198.18.0.$((n + 2))/24"
done
head -c 12000000 /dev/urandom > "$LAB_DIR/big"
for i in 1 2 3; do
  ns=$(lab_real_ns "$i")
  ip netns add "$ns"
  lab_link "$ns" eth0 "$(lab_real_ip "$i")/24"
  lab_host_checksums "$ns" eth0
  LAB_REALS+=("$ns")
  in_ns "$ns" ip route add default via 198.18.0.1
  if [ "$METHOD" = tun ]; then
    lab_bg "$ns" "$LBD_DECAP_BIN" --vip "$V" --allow-from 198.18.0.2 --allow-from 198.18.0.3 \
      --allow-from 198.18.0.4 --state-dir "$LAB_DIR/decap$i"
  else
    lab_dr_real "$i"
  fi
  lab_nginx "$i"
done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
flag=$(lab_method_flag "$METHOD")
{
  echo "--lbd-sysctl sloppy_tcp=1"
  echo "-A -t $V:80 -s mh"
  for i in 1 2 3; do echo "-a -t $V:80 -r $(lab_real_ip "$i"):80 $flag -w 1"; done
} > "$LAB_DIR/rules"

# start_lbd N / start_bird N (0..2): director N's lbd (announcing in table 100) and BIRD.
start_lbd() {
  local n=$1 before k
  before=$(grep -c "capturing on" "$LAB_DIR/lbd$n.log" 2>/dev/null || true)
  ip netns exec "${D[$n]}" "$LBD_BIN" --interface eth0 --socket "$LAB_DIR/d$n.sock" --rules "$LAB_DIR/rules" \
    --offload "${LBD_OFFLOAD:-xdp}" ${LBD_WORKERS:+--workers "$LBD_WORKERS"} --announce-table 100 \
    2>>"$LAB_DIR/lbd$n.log" &
  LBD_PID[$n]=$!
  LAB_PIDS+=($!)
  for k in $(seq 1 100); do
    [ "$(grep -c "capturing on" "$LAB_DIR/lbd$n.log" 2>/dev/null)" -gt "${before:-0}" ] && return 0
    sleep 0.05
  done
  fail "lbd on d$((n + 1)) did not start: $(tail -5 "$LAB_DIR/lbd$n.log")"
}
BGP_TIMERS='connect retry time 1; connect delay time 1; error wait time 1,3;'
BFD='protocol bfd { interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }'
start_bird() {
  local n=$1
  cat > "$LAB_DIR/bird$n.conf" <<CONF
log "$LAB_DIR/bird$n.log" all;
router id 198.18.0.$((n + 2));
ipv4 table vips;
protocol device { scan time 10; }
# lbd's routes (--announce-table 100): learnt, and gone the moment lbd withdraws them or dies.
protocol kernel lbd_vips {
  kernel table 100;
  learn;
  scan time 10;
  ipv4 { table vips; import all; export none; };
}
$BFD
protocol bgp upstream {
  local 198.18.0.$((n + 2)) as 65001;
  neighbor 198.18.0.1 as 65000;
  bfd on;
  $BGP_TIMERS
  ipv4 { table vips; import none; export all; next hop self; };
}
CONF
  lab_bg "${D[$n]}" bird -f -c "$LAB_DIR/bird$n.conf" -s "$LAB_DIR/bird$n.ctl" -P "$LAB_DIR/bird$n.pid"
  BIRD_PID[$n]=${LAB_PIDS[-1]}
  bird_up "$LAB_DIR/bird$n.ctl" "d$((n + 1))"
}
bird_up() {  # bird_up SOCKET WHO: until BIRD answers on its control socket
  local k
  for k in $(seq 1 100); do birdc -s "$1" show status >/dev/null 2>&1 && return 0; sleep 0.05; done
  fail "BIRD on $2 did not start: $(tail -3 "$LAB_DIR/bg.log")"
}
cat > "$LAB_DIR/router.conf" <<CONF
log "$LAB_DIR/router.log" all;
router id 198.18.0.1;
protocol device { scan time 10; }
# One multipath route of every director's equal path (BIRD merges them).
protocol kernel { merge paths yes; ipv4 { import none; export all; }; }
$BFD
template bgp director { local 198.18.0.1 as 65000; bfd on; $BGP_TIMERS ipv4 { import all; export none; }; }
protocol bgp d1 from director { neighbor 198.18.0.2 as 65001; }
protocol bgp d2 from director { neighbor 198.18.0.3 as 65001; }
protocol bgp d3 from director { neighbor 198.18.0.4 as 65001; }
CONF
lab_bg "$ROUTER" bird -f -c "$LAB_DIR/router.conf" -s "$LAB_DIR/router.ctl" -P "$LAB_DIR/router.pid"
bird_up "$LAB_DIR/router.ctl" router
for n in 0 1 2; do start_lbd "$n"; start_bird "$n"; done

# paths: the router's next hops for the VIP, sorted.
paths() { in_ns "$ROUTER" ip -4 route show "$V" | grep -o 'via 198.18.0.[0-9]*' | awk '{print $2}' | sort | tr '\n' ' '; }
# wait_paths WANT SECONDS: until the router's next hops are WANT; prints how long it took.
wait_paths() {
  local start; start=$(date +%s.%N)
  while [ "$(paths)" != "$1" ]; do
    awk -v s="$start" -v l="$2" -v n="$(date +%s.%N)" 'BEGIN {exit !(n - s > l)}' &&
      fail "the router's paths to $V are [$(paths)], not [$1], after $2 s: $(in_ns "$ROUTER" birdc -s "$LAB_DIR/router.ctl" show protocols 2>&1 | tail -4)"
    sleep 0.05
  done
  awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN {printf "%.2f", n - s}'
}
ALL="198.18.0.2 198.18.0.3 198.18.0.4 "
wait_paths "$ALL" 20 >/dev/null
echo "ok: the router reaches $V through the three directors (BGP, one multipath route)"
adm() { local n=$1; shift; in_ns "${D[$n]}" "$LBADM_BIN" --socket "$LAB_DIR/d$n.sock" "$@"; }

# lbd decides: d3 with every real quiesced withdraws the VIP at once, and announces it again.
for i in 1 2 3; do adm 2 -e -t "$V:80" -r "$(lab_real_ip "$i"):80" "$flag" -w 0; done
t=$(wait_paths "198.18.0.2 198.18.0.3 " 2)
echo "ok: d3 with no real to take connections is withdrawn: the router dropped it after $t s"
for i in 1 2 3; do adm 2 -e -t "$V:80" -r "$(lab_real_ip "$i"):80" "$flag" -w 1; done
wait_paths "$ALL" 5 >/dev/null
echo "ok: d3 announced again once its reals take connections"

# The load: 24 downloads of 12 MB at 1 MB/s, each from its own client address, and a
# probe making a new connection every 100 ms from the next address in turn.
WANT=$(sha256sum < "$LAB_DIR/big" | cut -d' ' -f1)
DL=()
for k in $(seq 1 24); do
  in_ns "$LAB_CLIENT" timeout 60 curl -s --interface "198.18.1.$((10 + k))" --limit-rate 1M "http://$V/big" \
    -o "$LAB_DIR/dl$k" &
  DL+=($!)
done
probe() {
  local end=$((SECONDS + 16)) a=10 t
  while [ "$SECONDS" -lt "$end" ]; do
    a=$(( a == 41 ? 10 : a + 1 ))
    t=$(date +%s.%N)
    if in_ns "$LAB_CLIENT" curl -s -m 0.5 --interface "198.18.1.$a" "http://$V/" >/dev/null 2>&1; then
      echo "$t ok $a"; else echo "$t fail $a"; fi
    sleep 0.1
  done
}
probe > "$LAB_DIR/probe.txt" &
PROBE=$!
sleep 3
carrying=0
for n in 0 1 2; do
  c=$(adm "$n" -L -n -c | awk '$1 == "TCP" && $3 == "ESTABLISHED"' | wc -l)
  echo "info: d$((n + 1)) carries $c established connections"
  [ "$c" -gt 0 ] && carrying=$((carrying + 1))
done
[ "$carrying" -ge 2 ] || fail "the router spread the downloads over $carrying director(s)"

# d1 dies as a box does: its link goes first (so its kernel cannot close BIRD's BGP
# session for it: the router learns it from BFD), then its lbd and BIRD are SIGKILLed.
KILLED=$(date +%s.%N)
in_ns "${D[0]}" ip link set eth0 down
kill -KILL "${LBD_PID[0]}" "${BIRD_PID[0]}"
wait "${LBD_PID[0]}" "${BIRD_PID[0]}" 2>/dev/null || true
t=$(wait_paths "198.18.0.3 198.18.0.4 " 3)
echo "ok: d1 dead: the router dropped its path after $t s (BFD: 3 x 100 ms)"
sleep 3
in_ns "${D[0]}" ip link set eth0 up
start_lbd 0
start_bird 0
t=$(wait_paths "$ALL" 15)
echo "ok: d1 back: the router sends to it again after $t s"

failed=0
for k in $(seq 1 24); do
  wait "${DL[$((k - 1))]}" || true
  [ "$(sha256sum < "$LAB_DIR/dl$k" | cut -d' ' -f1)" = "$WANT" ] ||
    { failed=$((failed + 1)); echo "download $k (198.18.1.$((10 + k))): $(stat -c %s "$LAB_DIR/dl$k") bytes"; }
done
assert_eq 0 "$failed" "downloads broken by a director's death and return (of 24)"
wait "$PROBE" || true
total=$(awk -v t="$KILLED" '$1 > t + 1' "$LAB_DIR/probe.txt" | wc -l)
bad=$(awk -v t="$KILLED" '$1 > t + 1 && $2 == "fail"' "$LAB_DIR/probe.txt" | wc -l)
early=$(awk -v t="$KILLED" '$1 > t && $1 <= t + 1 && $2 == "fail"' "$LAB_DIR/probe.txt" | wc -l)
[ "$total" -ge 50 ] || fail "too few new connections after the kill to judge ($total)"
assert_eq 0 "$bad" "new connections failed among the $total begun from 1 s after the kill (d1's return included)"
echo "info: in the first second after the kill $early new connection(s) failed (those the router still sent to d1)"
