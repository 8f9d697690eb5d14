#!/usr/bin/env bash
# lbd --takeover: a new lbd takes the running one's connections (its table's memfds passed
# over the control socket), the old one stops and undoes its changes, the new one starts
# and adopts them. Under wrk and a 30 MB download through a DR VIP, twice: no failed
# request, the download intact, `-L -n -c` the same connections to the same reals, the
# counters carried on. Then a handover from an lbd of another layout version is refused,
# logged, and the new lbd starts with an empty table and serves.
. "$(dirname "$0")/common.sh"
lab_init
trap lab_cleanup EXIT
lab_create 3
head -c 30000000 /dev/urandom > "$LAB_DIR/big"
for i in 1 2 3; do
  lab_dr_real "$i"; lab_nginx "$i"
  lab_bg "$(lab_real_ns "$i")" socat TCP-LISTEN:7,fork,reuseaddr EXEC:cat
done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; lab_wait_port "$(lab_real_ns "$i")" 7; done
V=$LAB_VIP
{
  echo "-A -t $V:80 -s rr"
  for i in 1 2 3; do echo "-a -t $V:80 -r $(lab_real_ip "$i"):80 -g -w 1"; done
  echo "-A -t $V:7 -s wlc -p 300"  # a persistence template to carry over too
  for i in 1 2 3; do echo "-a -t $V:7 -r $(lab_real_ip "$i"):7 -g -w 1"; done
} > "$LAB_DIR/rules"
lab_lbd
OLD=$LAB_LBD_PID
assert_eq "real1 1
real2 1
real3 1" "$(count_answers 3)" "traffic through the first lbd"
echo_once() { assert_eq hello "$(echo hello | in_ns "$LAB_CLIENT" timeout 5 socat -t 2 - "TCP:$V:7")" "$1"; }
echo_once "the persistent service answers"

# What the tables carry: a slow download on :80, wrk's churn on :80, the template on :7.
load_start "$V" 3M 10
sleep 2
conns() {  # the established connections: client:port -> real, sorted
  lbadm_ -L -n -c | awk '$1 == "TCP" && $3 == "ESTABLISHED" {print $4, $5, $6}' | sort
}
persist() { lbadm_ -L -n -c | awk '$3 == "NONE" {print $4, $5, $6}' | sort; }
before=$(conns)
tmpl_before=$(persist)
[ -n "$tmpl_before" ] || fail "no persistence template to carry over: $(lbadm_ -L -n -c)"
stats_before=$(lbadm_ -L -n --stats -t "$V:80" | awk -v v="$V:80" '$2 == v {print $3}')

for round in 1 2; do
  lab_lbd --takeover || fail "lbd --takeover (round $round) did not start: $(tail -20 "$LAB_DIR/lbd.log")"
  NEW=$LAB_LBD_PID
  rc=0; wait "$OLD" || rc=$?
  assert_eq 0 "$rc" "round $round: the old lbd ($OLD) handed over and stopped cleanly"
  adopted=$(lbadm_ --lbd-counters | awk '$1 == "handover_adopted" {print $2}')
  [ "${adopted:-0}" -ge 2 ] || fail "round $round: the new lbd adopted ${adopted:-0} connections: $(grep handover "$LAB_DIR/lbd.log")"
  dark=$(lbadm_ --lbd-counters | awk '$1 == "handover_dark_ms" {print $2}')
  echo "info: round $round: $adopted connections taken over; the data path was dark for $dark ms"
  OLD=$NEW
  sleep 1
done
after=$(conns)
# Every established connection listed before that still exists (wrk's end by themselves)
# is listed after, to the same real.
missing=$(comm -23 <(echo "$before" | grep -v "^$" | sort) <(echo "$after" | sort) | while read -r c v r; do
  in_ns "$LAB_CLIENT" ss -tn state established "dst $V" | grep -q " $c " 2>/dev/null && echo "$c $v $r"; done || true)
assert_eq "" "$missing" "the connections still open are listed by the new lbd, to the same reals"
assert_eq "$tmpl_before" "$(persist)" "the persistence template carried over, to the same real"

load_check "two takeovers"
stats_after=$(lbadm_ -L -n --stats -t "$V:80" | awk -v v="$V:80" '$2 == v {print $3}')
[ "$stats_after" -ge "$stats_before" ] || fail "the service's connection count went back: $stats_before, then $stats_after"
echo "ok: the service's counters carried on ($stats_before connections before, $stats_after after)"
echo_once "the persistent service answers after"
[ "$(lbadm_ -L -n -c | awk '$3 == "NONE"' | wc -l)" -eq "$(echo "$tmpl_before" | wc -l)" ] ||
  fail "the client's next connection made a second template: $(lbadm_ -L -n -c)"
echo "ok: the client's next persistent connection used the adopted template"
assert_eq 1 "$(in_ns "$LAB_DIRECTOR" nft list tables | grep -c lbd)" "one nftables guard table: the old lbds removed theirs"

# Another layout: a "previous lbd" (a fixture speaking lbd's control protocol) hands over
# a directory of version 999. The new lbd refuses it, says so, and starts empty.
lab_stop_lbd
python3 - "$LAB_SOCKET" > "$LAB_DIR/fixture.log" 2>&1 <<'PY' &
import os, socket, struct, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path); os.chmod(path, 0o600); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
c.recv(100)
fd = os.memfd_create("lbd-table")
os.write(fd, b"LBDREALS" + struct.pack("<II", 999, 0) + bytes(48))
socket.send_fds(c, [b"OK %d\n" % os.getpid()], [fd])
c.close(); s.close(); os.unlink(path)
PY
FIX=$!
LAB_PIDS+=("$FIX")
for k in $(seq 1 100); do grep -q listening "$LAB_DIR/fixture.log" 2>/dev/null && break; sleep 0.05; done
lab_lbd --takeover || fail "lbd did not start after refusing the handover: $(tail -20 "$LAB_DIR/lbd.log")"
grep -q "the connection table from .* is refused: directory layout version 999; this lbd reads version 2; starting with an empty table" "$LAB_DIR/lbd.log" ||
  fail "the refusal is not logged: $(grep handover "$LAB_DIR/lbd.log" | tail -5)"
echo "ok: a handover of another layout version is refused and logged"
assert_eq 0 "$(lbadm_ --lbd-counters | awk '$1 == "handover_adopted" {print $2}')" "nothing adopted"
# (Not rr's spread: after wrk's churn the client may reuse one port, whose DR entry sits
# in FIN_WAIT, which conn_reuse_mode 1 reuses, real and all, as IPVS does.)
answers=$(count_answers 6)
grep -q FAILED <<< "$answers" && fail "the new lbd does not serve: $answers"
echo "ok: the new lbd serves with an empty table ($(echo $answers))"

# A real down by its checks stays down across a takeover: the next lbd starts its check
# from the previous lbd's state, not from up (it would send clients to it until fall checks
# failed again).
sed -i "s|^-A -t $V:80 -s rr\$|-A -t $V:80 -s rr --health check=http,interval=5,timeout=1,rise=2,fall=1|" "$LAB_DIR/rules"
kill -HUP "$LAB_LBD_PID"
kill "$(cat "$LAB_DIR/nginx3/nginx.pid")"
R3=$(lab_real_ip 3)
for k in $(seq 1 80); do lbadm_ --lbd-health | grep -E -q -- "-> $R3:80 +DOWN" && break; sleep 0.1; done
lbadm_ --lbd-health | grep -E -q -- "-> $R3:80 +DOWN" || fail "real3 not DOWN before the takeover: $(lbadm_ --lbd-health)"
lab_lbd --takeover || fail "lbd --takeover did not start: $(tail -20 "$LAB_DIR/lbd.log")"
lbadm_ --lbd-health | grep -E -q -- "-> $R3:80 +DOWN" || fail "real3 not DOWN at once after the takeover: $(lbadm_ --lbd-health)"
grep -q "1 real(s) stay down as the previous lbd had them" "$LAB_DIR/lbd.log" || fail "not logged: $(grep handover "$LAB_DIR/lbd.log" | tail -3)"
answers=$(count_answers 6)
grep -q real3 <<< "$answers" && fail "real3 got connections right after the takeover: $answers"
echo "ok: a real down before the takeover is down at once after it ($(echo $answers))"
