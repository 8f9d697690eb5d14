#!/usr/bin/env bash
# The classic LVS read pool: a MariaDB primary and two replicas with real replication, the
# VIP balancing reads over the replicas with lbd's replica check (logs in, SHOW SLAVE
# STATUS, both threads running, lag within max-lag). STOP SLAVE on replica 2 takes it out
# of the pool, START SLAVE brings it back, and the mariadb client through the VIP keeps
# working throughout (a query every 0.1 s, none may fail).
. "$(dirname "$0")/common.sh"
lab_init
lab_create 3
R2=$(lab_real_ip 2); R3=$(lab_real_ip 3)
for i in 2 3; do lab_dr_real "$i"; done

lab_mariadb_pool || fail "the MariaDB primary and replicas did not come up (see $LAB_DIR/db*.err)"
db() { lab_db "$@"; }
for i in 2 3; do assert_eq 2 "$(db "$i" "SELECT COUNT(*) FROM shop.items")" "replica $i has the primary's rows"; done
echo "ok: three MariaDB servers up, replicating"

lab_lbd
# The check's password from a file lbd reads (not in argv, listings or logs).
printf 'checkpw\n' > "$LAB_DIR/mysql.secret"
chmod 600 "$LAB_DIR/mysql.secret"
lbadm_ -A -t "$LAB_VIP:3306" -s rr \
  --health "check=mysql,user=lbdcheck,password-file=$LAB_DIR/mysql.secret,max-lag=5,interval=1,timeout=0.8,rise=2,fall=2"
lbadm_ -a -t "$LAB_VIP:3306" -r "$R2"
lbadm_ -a -t "$LAB_VIP:3306" -r "$R3"
wait_health() {  # wait_health REAL STATE SECONDS
  local k
  for k in $(seq 1 $(( $3 * 10 ))); do
    lbadm_ --lbd-health | grep -E -q -- "-> $1:3306 +$2 " && return 0
    sleep 0.1
  done
  fail "$1 not $2 after $3 s: $(lbadm_ --lbd-health)"
}
sleep 2.5
lbadm_ --lbd-health | grep -E -q -- "-> $R2:3306 +UP .*ok" || fail "replica check not passing: $(lbadm_ --lbd-health)"
echo "ok: both replicas pass the replica check (password from password-file=)"
grep -q checkpw "$LAB_DIR/lbd.log" && fail "the password is in lbd's log"
lbadm_ --lbd-health | grep -q checkpw && fail "the password is in --lbd-health"
lbadm_ -S -n | grep -q checkpw && fail "the password is in -S"
echo "ok: the password appears in no log, listing or -S"
# An inline password= is redacted in the log, --lbd-health and -S (unless --lbd-secrets).
lbadm_ -A -t "$LAB_VIP:3307" -s rr --health "check=mysql,user=lbdcheck,password=inl1nepw"
grep -q inl1nepw "$LAB_DIR/lbd.log" && fail "an inline password is in lbd's log"
lbadm_ --lbd-health | grep -q inl1nepw && fail "an inline password is in --lbd-health"
saved=$(lbadm_ -S -n 2>"$LAB_DIR/save.err")
grep -q -- "--health check=mysql,user=lbdcheck,password=<redacted>" <<< "$saved" || fail "-S: $saved"
grep -q "1 password(s) written as password=<redacted>" "$LAB_DIR/save.err" || fail "-S says nothing: $(cat "$LAB_DIR/save.err")"
lbadm_ -S -n --lbd-secrets | grep -q "password=inl1nepw" || fail "-S --lbd-secrets lacks the password"
rc=0; echo "$saved" | lbadm_ -R 2>"$LAB_DIR/restore.err" || rc=$?
assert_eq 2 "$rc" "restoring a redacted password is refused"
grep -q "redacted by lbadm -S" "$LAB_DIR/restore.err" || fail "restore message: $(cat "$LAB_DIR/restore.err")"
lbadm_ -D -t "$LAB_VIP:3307"
echo "ok: inline passwords are redacted everywhere, kept on request, refused when restored redacted"

# Reads through the VIP for the rest of the test; each line: server_id or FAILED.
reader() {
  while [ ! -e "$LAB_DIR/stop-reader" ]; do
    in_ns "$LAB_CLIENT" timeout 5 mariadb --no-defaults -h "$LAB_VIP" -uapp -papppw -N -B \
      -e "SELECT @@server_id, COUNT(*) FROM shop.items" 2>/dev/null | tr '\t' ' ' || echo FAILED
    sleep 0.1
  done
}
reader > "$LAB_DIR/reads.log" &
READER=$!
sleep 2
db 2 "STOP SLAVE"
T_STOP=$(date +%s.%N)
wait_health "$R2" DOWN 4
lbadm_ --lbd-health | grep -E -q -- "-> $R2:3306 +DOWN .*Slave_IO_Running=No" ||
  fail "reason: $(lbadm_ --lbd-health)"
echo "ok: STOP SLAVE on replica 2 takes it out ($(awk -v s="$T_STOP" -v n="$(date +%s.%N)" 'BEGIN {printf "%.1f", n - s}') s), reason Slave_IO_Running=No"
MARK=$(wc -l < "$LAB_DIR/reads.log")
sleep 2
served=$(tail -n +"$((MARK + 1))" "$LAB_DIR/reads.log" | awk '{print $1}' | sort -u | tr '\n' ' ')
assert_eq "3 " "$served" "while replica 2 is out, reads go to replica 3 only"
db 2 "START SLAVE"
wait_health "$R2" UP 4
echo "ok: START SLAVE brings replica 2 back"
MARK=$(wc -l < "$LAB_DIR/reads.log")
sleep 2
touch "$LAB_DIR/stop-reader"
wait "$READER"
served=$(tail -n +"$((MARK + 1))" "$LAB_DIR/reads.log" | awk '{print $1}' | sort -u | tr '\n' ' ')
assert_eq "2 3 " "$served" "replica 2 serves reads again"
total=$(wc -l < "$LAB_DIR/reads.log")
failed=$(grep -c FAILED "$LAB_DIR/reads.log" || true)
assert_eq "0" "$failed" "failed reads through the VIP (of $total)"
wrong=$(grep -c -v " 2$" "$LAB_DIR/reads.log" || true)
assert_eq 0 "$wrong" "reads with a wrong row count (of $total)"
echo "ok: $total reads through the VIP, every one answered with the replicated rows"
