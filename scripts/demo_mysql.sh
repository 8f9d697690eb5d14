#!/usr/bin/env bash
# scripts/demo.sh mysql: the MySQL-replication-behind-LVS setup. A MariaDB primary and two
# replicas (real replication), a read VIP balancing over the replicas with lbd's lag-aware
# replica check; reads go through the VIP all along; replication stops on one replica (it
# leaves the pool: --lbd-health says why) and starts again (it comes back), and the demo
# counts the failed reads: none.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/demo.sh mysql: run as root (it makes network namespaces)" >&2; exit 1; }
. scripts/deps.sh
lbd_demo_ready
. scripts/lab.sh

lab_init
lab_log "lab: client $LAB_CLIENT_IP, director $LAB_DIRECTOR_IP, read VIP $LAB_VIP:3306"
lab_create 3
for i in 2 3; do lab_dr_real "$i"; done
lab_log "MariaDB: primary $(lab_real_ip 1), replicas $(lab_real_ip 2) and $(lab_real_ip 3) (GTID replication)"
lab_mariadb_pool || { echo "MariaDB did not come up: $LAB_DIR/db*.err" >&2; exit 1; }
lab_lbd
printf 'checkpw\n' >"$LAB_DIR/mysql.secret"
chmod 600 "$LAB_DIR/mysql.secret"
run() { echo "# lbadm $*"; lbadm_ "$@"; }
run -A -t "$LAB_VIP:3306" -s rr --health \
  "check=mysql,user=lbdcheck,password-file=$LAB_DIR/mysql.secret,max-lag=5,interval=1,timeout=0.8,rise=2,fall=2"
run -a -t "$LAB_VIP:3306" -r "$(lab_real_ip 2)"
run -a -t "$LAB_VIP:3306" -r "$(lab_real_ip 3)"
state() { lbadm_ --lbd-health | awk -v r="$(lab_real_ip "$1"):3306" '$2 == r {print $3}'; }
wait_state() { local k; for k in $(seq 1 100); do [ "$(state "$1")" = "$2" ] && return 0; sleep 0.1; done; return 1; }
wait_state 2 UP && wait_state 3 UP

# Reads through the VIP, one every 0.1 s: the server that answered, or FAILED.
reader() {
  while [ ! -e "$LAB_DIR/stop-reader" ]; do
    ip netns exec "$LAB_CLIENT" timeout 5 mariadb --no-defaults -h "$LAB_VIP" -uapp -papppw -N -B \
      -e "SELECT @@server_id FROM shop.items WHERE id = 1" 2>/dev/null || echo FAILED
    sleep 0.1
  done
}
reader >"$LAB_DIR/reads.log" &
READER=$!
LAB_PIDS+=("$READER")
show() { echo; run -L -n; echo; run --lbd-health; echo; }
spread() { tail -n +"$1" "$LAB_DIR/reads.log" | sort | uniq -c | awk '{printf "  %s: %d reads\n", ($2 == "FAILED" ? "FAILED" : "replica server_id " $2), $1}'; }
sleep 3
show
lab_log "reads so far:"; spread 1

lab_log "STOP SLAVE on replica $(lab_real_ip 2): the replica check sees Slave_IO_Running=No"
lab_db 2 "STOP SLAVE"
wait_state 2 DOWN || { echo "replica 2 did not leave the pool" >&2; exit 1; }
mark=$(($(wc -l <"$LAB_DIR/reads.log") + 1))
sleep 3
show
lab_log "reads while replica 2 is out:"; spread "$mark"

lab_log "START SLAVE on replica $(lab_real_ip 2): back after rise=2 checks"
lab_db 2 "START SLAVE"
wait_state 2 UP || { echo "replica 2 did not come back" >&2; exit 1; }
mark=$(($(wc -l <"$LAB_DIR/reads.log") + 1))
sleep 3
touch "$LAB_DIR/stop-reader"
wait "$READER" || true
show
lab_log "reads since it is back:"; spread "$mark"
total=$(wc -l <"$LAB_DIR/reads.log")
failed=$(grep -c FAILED "$LAB_DIR/reads.log" || true)
echo
echo "Reads through the VIP: $total, failed: $failed"
[ "$failed" = 0 ]
