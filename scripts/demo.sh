#!/usr/bin/env bash
# The demo: installs the dependencies, builds, brings up a namespace lab (a client, the
# director, three nginx real servers that answer with their own name), starts lbd in DR
# mode (or NAT, or TUN with lbd-decap on the reals), configures it with lbadm, sends real
# HTTP requests through the VIP, prints `lbadm -L -n` and how many requests each real
# server answered, and tears the lab down (also on Ctrl-C).
# Usage: scripts/demo.sh [REQUESTS] [SCHEDULER] [dr|nat|tun]
#        scripts/demo.sh ha     two directors, keepalived and connection sync: a failover live
#        scripts/demo.sh ecmp   three directors behind an ECMP router (BIRD, BGP, BFD): one dies
#        scripts/demo.sh mysql  a MariaDB read pool: a replica's replication stops and starts
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/demo.sh: run as root (it makes network namespaces)" >&2; exit 1; }
case "${1:-}" in
  ha|ecmp) exec bash scripts/demo_directors.sh "$1" ;;
  mysql) exec bash scripts/demo_mysql.sh ;;
esac
REQUESTS=${1:-60}
SCHED=${2:-wrr}
METHOD=${3:-dr}
case "$METHOD" in dr|nat|tun) ;; *) echo "scripts/demo.sh: method must be dr, nat or tun" >&2; exit 2 ;; esac
. scripts/deps.sh
lbd_demo_ready
. scripts/lab.sh

lab_init
lab_log "lab: client $LAB_CLIENT_IP, director $LAB_DIRECTOR_IP, VIP $LAB_VIP, 3 real servers"
lab_create 3
for i in 1 2 3; do lab_setup_real "$METHOD" "$i"; lab_nginx "$i"; done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
lab_lbd
lab_log "lbd is running on the director (log: $LAB_DIR/lbd.log)"

run() { echo "# lbadm $*"; lbadm_ "$@"; }
run -A -t "$LAB_VIP:80" -s "$SCHED"
FLAG=$(lab_method_flag "$METHOD")
run -a -t "$LAB_VIP:80" -r "$(lab_real_ip 1):80" "$FLAG" -w 3
run -a -t "$LAB_VIP:80" -r "$(lab_real_ip 2):80" "$FLAG" -w 2
run -a -t "$LAB_VIP:80" -r "$(lab_real_ip 3):80" "$FLAG" -w 1
sleep 0.5

lab_log "sending $REQUESTS HTTP requests from the client to http://$LAB_VIP/"
declare -A answered=()
failed=0
for k in $(seq 1 "$REQUESTS"); do
  if out=$(ip netns exec "$LAB_CLIENT" curl -s -m 3 "http://$LAB_VIP/"); then
    answered[$out]=$(( ${answered[$out]:-0} + 1 ))
  else
    failed=$((failed + 1))
  fi
done
echo
run -L -n
echo
run -L -n --stats
echo
echo "Requests answered per real server ($METHOD, $SCHED, weights 3:2:1):"
for name in $(printf '%s\n' "${!answered[@]}" | sort); do
  printf '  %-6s %4d\n' "$name" "${answered[$name]}"
done
printf '  %-6s %4d\n' failed "$failed"
echo
lab_log "tearing the lab down"
