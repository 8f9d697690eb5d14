#!/usr/bin/env bash
# scripts/demo.sh ha|ecmp: several directors, a director dying live (scripts/lab_directors.sh
# draws the labs). Installs the dependencies and builds first, as the demo does; tears the
# lab down at the end (also on Ctrl-C).
#   ha:   keepalived's VRRP moves the VIP to the backup director, which carries on the
#         downloads it learnt by lbd's connection sync.
#   ecmp: three directors announce the VIP by BGP; the router drops the dead one within
#         BFD's 300 ms; mh and sloppy_tcp keep every flow on its real.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?ha or ecmp}
. scripts/deps.sh
lbd_demo_ready
. scripts/lab.sh
. scripts/lab_directors.sh
lab_init
head -c 20000000 /dev/urandom > "$LAB_DIR/big"
WANT=$(sha256sum < "$LAB_DIR/big" | cut -d' ' -f1)
say() { echo; echo "=== $*"; }
run() { local n=$1; shift; echo "# d$n: lbadm $*"; lab_adm "$n" "$@"; }
# downloads N [ADDRESS-BASE]: N downloads of 20 MB at 2 MB/s in the background (PIDs in DL).
DL=()
downloads() {
  local k src
  for k in $(seq 1 "$1"); do
    src=()
    [ -n "${2:-}" ] && src=(--interface "$2.$((10 + k))")
    in_ns "$LAB_CLIENT" timeout 60 curl -s "${src[@]}" --limit-rate 2M "http://$LAB_VIP/big" -o "$LAB_DIR/dl$k" &
    DL+=($!)
  done
}
verdict() {
  local k ok=0
  for k in $(seq 1 "${#DL[@]}"); do
    wait "${DL[$((k - 1))]}" || true
    [ "$(sha256sum < "$LAB_DIR/dl$k" | cut -d' ' -f1)" = "$WANT" ] && ok=$((ok + 1))
  done
  say "$ok of ${#DL[@]} downloads completed intact (sha256) across the failure"
}

if [ "$MODE" = ha ]; then
  lab_ha_create
  lab_ha_director 1
  lab_ha_wait_role 1 master
  lab_ha_director 2
  lab_ha_wait_role 2 backup
  say "keepalived made d1 master (it holds the VIP $LAB_VIP); lbd's sync follows"
  run 1 -L --daemon
  run 2 -L --daemon
  downloads 8
  sleep 3
  say "8 downloads through d1; the backup d2 learnt them by sync (it forwards nothing)"
  run 1 -L -n
  run 2 -L -n -c
  say "d1 dies: keepalived and lbd SIGKILLed"
  t0=$(date +%s.%N)
  lab_ha_kill 1
  lab_ha_wait_role 2 master
  say "d2 is master after $(awk -v s="$t0" -v n="$(date +%s.%N)" 'BEGIN {printf "%.1f", n - s}') s (keepalived's master-down time), with the VIP"
  run 2 -L --daemon
  run 2 -L -n
  verdict
else
  lab_ecmp_create dr
  for n in 1 2 3; do lab_ecmp_director "$n"; done
  lab_ecmp_wait_paths "$LAB_ECMP_PATHS" 20 >/dev/null
  say "the router's route to $LAB_VIP: one path per director (BGP from BIRD, which announces what lbd says)"
  in_ns "$LAB_ROUTER" ip route show "$LAB_VIP"
  downloads 16 198.18.1
  sleep 3
  say "16 downloads from 16 client addresses, spread by the router's L4 hash"
  for n in 1 2 3; do echo "d$n: $(lab_adm "$n" -L -n -c | awk '$3 == "ESTABLISHED"' | wc -l) established connections"; done
  say "d1 dies (link down, lbd and BIRD SIGKILLed)"
  lab_ecmp_kill 1
  t=$(lab_ecmp_wait_paths "198.18.0.3 198.18.0.4 " 3)
  say "the router dropped d1 after $t s (BFD); its flows go on through d2 and d3 to the same reals (mh, sloppy_tcp)"
  in_ns "$LAB_ROUTER" ip route show "$LAB_VIP"
  sleep 2
  in_ns "$(lab_dir_ns 1)" ip link set eth0 up
  lab_ecmp_director 1
  t=$(lab_ecmp_wait_paths "$LAB_ECMP_PATHS" 15)
  say "d1 is back, announced again after $t s"
  verdict
fi
say "tearing the lab down"
