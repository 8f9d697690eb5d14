#!/usr/bin/env bash
# Active/active: three directors announce the VIP by BGP (the real BIRD 2, with BFD) to a
# router that spreads flows over them by ECMP (a Linux multipath route, L4 hash). lbd
# decides what is announced (--announce-table: BIRD's kernel protocol learns its routes);
# mh and sloppy_tcp on every director send a flow to the same real whichever director the
# router picks. scripts/lab_directors.sh draws the lab; ECMP_METHOD: dr (default) or tun.
#
# Checks: the router has a path per director; a director whose reals are all quiesced is
# withdrawn at once and comes back; one director dead (link down, lbd and BIRD SIGKILLed)
# under 24 downloads from 24 client addresses: every download completes intact, every new
# connection begun 1 s after the kill succeeds (BFD); the director back: no download
# breaks. NAT is single-director (replies must pass the director that made the
# connection), so it is not part of this.
. "$(dirname "$0")/common.sh"
. "$HERE/../../scripts/lab_directors.sh"
METHOD=${ECMP_METHOD:-dr}
command -v bird >/dev/null || fail "BIRD is not installed (scripts/deps.sh installs bird2)"
lab_init
trap lab_cleanup EXIT
head -c 12000000 /dev/urandom > "$LAB_DIR/big"
lab_ecmp_create "$METHOD" || fail "the lab did not come up"
V=$LAB_VIP
flag=$(lab_method_flag "$METHOD")
for n in 1 2 3; do lab_ecmp_director "$n" || fail "director $n did not start"; done
ALL=$LAB_ECMP_PATHS
lab_ecmp_wait_paths "$ALL" 20 >/dev/null || fail "the router has no path through each director"
echo "ok: the router reaches $V through the three directors (BGP, one multipath route)"

# lbd decides: d3 with every real quiesced withdraws the VIP at once, and announces it again.
for i in 1 2 3; do lab_adm 3 -e -t "$V:80" -r "$(lab_real_ip "$i"):80" "$flag" -w 0; done
t=$(lab_ecmp_wait_paths "198.18.0.2 198.18.0.3 " 2) || fail "d3 was not withdrawn"
echo "ok: d3 with no real to take connections is withdrawn: the router dropped it after $t s"
for i in 1 2 3; do lab_adm 3 -e -t "$V:80" -r "$(lab_real_ip "$i"):80" "$flag" -w 1; done
lab_ecmp_wait_paths "$ALL" 5 >/dev/null || fail "d3 was not announced again"
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
for n in 1 2 3; do
  c=$(lab_adm "$n" -L -n -c | awk '$1 == "TCP" && $3 == "ESTABLISHED"' | wc -l)
  echo "info: d$n carries $c established connections"
  [ "$c" -gt 0 ] && carrying=$((carrying + 1))
done
[ "$carrying" -ge 2 ] || fail "the router spread the downloads over $carrying director(s)"

KILLED=$(date +%s.%N)
lab_ecmp_kill 1
t=$(lab_ecmp_wait_paths "198.18.0.3 198.18.0.4 " 3) || fail "the router kept d1's path"
echo "ok: d1 dead: the router dropped its path after $t s (BFD: 3 x 100 ms)"
sleep 3
in_ns "$(lab_dir_ns 1)" ip link set eth0 up
lab_ecmp_director 1 || fail "director 1 did not come back"
t=$(lab_ecmp_wait_paths "$ALL" 15) || fail "the router did not take d1 back"
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
moved=0
for n in 2 3; do moved=$((moved + $(lab_adm "$n" --lbd-counters | awk '$1 == "conns_created" {print $2}'))); done
echo "info: d2 and d3 created $moved connections in all (d1's flows taken over mid-stream by sloppy_tcp among them)"
