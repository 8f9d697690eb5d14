#!/usr/bin/env bash
# The checks' thread stalled, for real: an exec check looks up its exec-user (nobody) in
# /etc/passwd, and here lbd's /etc/passwd is a FIFO nobody writes (lbd runs in a mount
# namespace of its own with the FIFO bound over the file), as a lookup hangs on a dead LDAP
# or NFS server. The watchdog notices within its look (about 2 s), logs and counts it
# naming the check, --lbd-health says so, forwarding goes on; once the lookup returns the
# thread runs again and the watchdog says so; and a stop while it is stuck still stops lbd
# and restores the box (the thread is left behind after 2 s).
. "$(dirname "$0")/common.sh"
lab_init
lab_create 3
for i in 1 2 3; do lab_dr_real "$i"; lab_nginx "$i"; done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
FIFO=$LAB_DIR/passwd.fifo
mkfifo "$FIFO"
REAL_LBD=${LBD_BIN:-$(command -v lbd)}
cat > "$LAB_DIR/lbd-hung-passwd" <<WRAP
#!/bin/bash
exec unshare -m --propagation private /bin/bash -c 'mount --bind "\$0" /etc/passwd && exec "\$@"' "$FIFO" "$REAL_LBD" "\$@"
WRAP
chmod +x "$LAB_DIR/lbd-hung-passwd"
LBD_BIN=$LAB_DIR/lbd-hung-passwd lab_lbd
R1=$(lab_real_ip 1); R2=$(lab_real_ip 2); R3=$(lab_real_ip 3)
counter() { lbadm_ --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
lbadm_ -A -t "$LAB_VIP:80" -s rr --health "check=tcp,interval=0.5,timeout=0.3,rise=1,fall=1"
for r in "$R1" "$R2"; do lbadm_ -a -t "$LAB_VIP:80" -r "$r"; done
sleep 1
assert_eq "real1 2 real2 2 " "$(count_answers 4 | tr '\n' ' ')" "before: the service answers"
checks0=$(counter health_checks)
[ "$checks0" -gt 0 ] || fail "the TCP checks should run"

# The exec check whose user lookup hangs.
lbadm_ -A -t "$LAB_VIP:81" -s rr --health "check=exec,cmd=/bin/true,interval=0.5,timeout=0.3,rise=1,fall=1"
lbadm_ -a -t "$LAB_VIP:81" -r "$R3"
for k in $(seq 1 60); do [ "$(counter health_stalled)" = 1 ] && break; sleep 0.1; done
assert_eq 1 "$(counter health_stalled)" "the watchdog found the checks' thread stuck"
assert_eq 1 "$(counter health_stalls)" "one stall counted"
grep -q "the checks' thread has been stuck for .* s in the exec check of $R3:81 (TCP $LAB_VIP:81)" "$LAB_DIR/lbd.log" ||
  fail "the log should name the exec check: $(grep health "$LAB_DIR/lbd.log")"
echo "ok: the log names the exec check of $R3:81"
head=$(lbadm_ --lbd-health | head -n 1)
[[ $head == "Checks stalled for "*"s in the exec check of $R3:81 (TCP $LAB_VIP:81)" ]] ||
  fail "--lbd-health should say the checks are stalled: $head"
echo "ok: --lbd-health: $head"
assert_eq "real1 2 real2 2 " "$(count_answers 4 | tr '\n' ' ')" "stalled checks: forwarding goes on"
stuck=$(counter health_checks)
sleep 1
assert_eq "$stuck" "$(counter health_checks)" "stalled: no check runs (nothing is made up)"

# The lookup returns (the FIFO gets writers): the thread runs again.
lab_bg "$LAB_DIRECTOR" bash -c "while [ ! -e '$LAB_DIR/stop-writer' ]; do cat /etc/passwd > '$FIFO'; done"
for k in $(seq 1 40); do [ "$(counter health_stalled)" = 0 ] && break; sleep 0.1; done
assert_eq 0 "$(counter health_stalled)" "the lookup returned: not stalled any more"
grep -q "the checks' thread runs again" "$LAB_DIR/lbd.log" || fail "the log should say the thread runs again"
for k in $(seq 1 40); do lbadm_ --lbd-health | grep -E -q -- "-> $R3:81 +UP .* ok" && break; sleep 0.1; done
lbadm_ --lbd-health | grep -E -q -- "-> $R3:81 +UP .* ok" || fail "the exec check should run: $(lbadm_ --lbd-health)"
echo "ok: the exec check runs (real3 UP, ok)"
[ "$(counter health_checks)" -gt "$stuck" ] || fail "checks should run again"
echo "ok: checks run again"
[ "$(counter health_stalls)" -ge 1 ] || fail "the stall stays counted"

# Stuck again (the writers stop), then lbd is told to stop: it stops, box restored.
touch "$LAB_DIR/stop-writer"
timeout 2 cat "$FIFO" > /dev/null || true  # the last writer, if it waits for a reader
for k in $(seq 1 60); do [ "$(counter health_stalled)" = 1 ] && break; sleep 0.1; done
assert_eq 1 "$(counter health_stalled)" "stuck again"
t0=$(date +%s%N)
lab_stop_lbd
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -lt 6000 ] || fail "lbd took $ms ms to stop with its checks' thread stuck"
echo "ok: lbd stopped in $ms ms with its checks' thread stuck"
grep -q "the checks' thread does not stop (stuck in the exec check of $R3:81" "$LAB_DIR/lbd.log" ||
  fail "the log should say why the checks' thread is left: $(tail -n 5 "$LAB_DIR/lbd.log")"
grep -q "stopped; box restored" "$LAB_DIR/lbd.log" || fail "lbd should restore the box"
in_ns "$LAB_DIRECTOR" nft list table netdev lbd >/dev/null 2>&1 && fail "the guard table is still there"
echo "ok: the guard table is gone"
