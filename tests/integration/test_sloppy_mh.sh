#!/usr/bin/env bash
# sloppy_tcp with mh: a director that has never seen a flow carries it on, to the real the
# flow's SYN went to, as a second director behind ECMP or a restarted one without a
# handover must. A download runs through lbd (DR, mh); lbd is killed (SIGKILL: nothing is
# handed over) and a fresh lbd starts: the download's next segments, not SYNs, make its
# connection there, on the same real, and it completes intact. With sloppy_tcp=0 the same
# flow is dropped as not a SYN, until `lbadm --lbd-sysctl sloppy_tcp=1` at run time lets
# it through. Also: the setting from the rules file (`-S` writes it), from lbd's --sysctl
# flag, and refusals.
. "$(dirname "$0")/common.sh"
lab_init
trap lab_cleanup EXIT
lab_create 3
head -c 30000000 /dev/urandom > "$LAB_DIR/big"
for i in 1 2 3; do lab_dr_real "$i"; lab_nginx "$i"; done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
V=$LAB_VIP
rules() {
  [ "$1" = sloppy ] && echo "--lbd-sysctl sloppy_tcp=1"
  echo "-A -t $V:80 -s mh"
  for i in 1 2 3; do echo "-a -t $V:80 -r $(lab_real_ip "$i"):80 -g -w 1"; done
}
rules sloppy > "$LAB_DIR/rules"
want=$(sha256sum < "$LAB_DIR/big" | cut -d' ' -f1)
counter() { lbadm_ --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
real_of() {  # the real lbd lists for the client's connection from port $1 ("" if none)
  lbadm_ -L -n -c | awk -v c="$LAB_CLIENT_IP:$1" '$1 == "TCP" && $4 == c {print $6}'
}
download() {  # download OUT RATE: in the background; sets DL (its PID) and DLPORT
  in_ns "$LAB_CLIENT" timeout 90 curl -s --limit-rate "$2" "http://$V/big" -o "$1" &
  DL=$!
  local k
  for k in $(seq 1 100); do
    DLPORT=$(in_ns "$LAB_CLIENT" ss -Htn state established "dst $V:80" | awk '{split($3, a, ":"); print a[2]; exit}')
    [ -n "$DLPORT" ] && return 0
    sleep 0.05
  done
  fail "the download did not start"
}
kill_lbd() {  # SIGKILL: no handover, the table dies with it
  kill -KILL "$LAB_LBD_PID"
  wait "$LAB_LBD_PID" 2>/dev/null || true
  LAB_LBD_PID=
}
LAB_CLIENT_IP=$(in_ns "$LAB_CLIENT" ip -4 -o addr show eth0 | awk '{sub(/\/.*/, "", $4); print $4; exit}')

lab_lbd
assert_eq "--lbd-sysctl sloppy_tcp=1" "$(lbadm_ -S -n | head -1)" "-S writes the rules file's sysctl first"
lbadm_ --lbd-sysctl | grep -qx "sloppy_tcp = 1" || fail "--lbd-sysctl lists it: $(lbadm_ --lbd-sysctl)"
download "$LAB_DIR/big1.got" 3M
sleep 1
first=$(real_of "$DLPORT")
[ -n "$first" ] || fail "the download's connection is not listed: $(lbadm_ -L -n -c)"
kill_lbd
lab_lbd
assert_eq 0 "$(counter handover_adopted)" "the new lbd took nothing over (a fresh table)"
# The client's next segment comes with the real's next retransmission (its backoff grew
# while no lbd ran: 1.6 s and more once it has doubled four times): up to 10 s.
for k in $(seq 1 50); do [ -n "$(real_of "$DLPORT")" ] && break; sleep 0.2; done
assert_eq "$first" "$(real_of "$DLPORT")" "mid-stream, the fresh lbd made the download's connection on the same real ($first)"
assert_eq ESTABLISHED "$(lbadm_ -L -n -c | awk -v c="$LAB_CLIENT_IP:$DLPORT" '$4 == c {print $3}')" "... in ESTABLISHED"
wait "$DL" || fail "the download across the kill failed"
assert_eq "$want" "$(sha256sum < "$LAB_DIR/big1.got" | cut -d' ' -f1)" "the download across a killed lbd and a fresh one is intact"

# sloppy_tcp=0: the fresh lbd drops the flow's segments as not SYNs, until it is set at run time.
rules plain > "$LAB_DIR/rules"
lab_stop_lbd
lab_lbd
assert_eq "" "$(lbadm_ -S -n | grep -e --lbd-sysctl || true)" "a rules file without it: IPVS's default, not written by -S"
download "$LAB_DIR/big2.got" 3M
sleep 1
kill_lbd
lab_lbd
# The client's next segment comes with the real's next retransmission (its backoff may
# have grown while no lbd ran): up to 10 s.
before=$(counter drop_not_syn)
for k in $(seq 1 50); do
  after=$(counter drop_not_syn)
  [ "$after" -gt "$before" ] && break
  sleep 0.2
done
[ "$after" -gt "$before" ] || fail "sloppy_tcp=0: the download's segments should be dropped as not SYNs ($before, then $after)"
assert_eq "" "$(real_of "$DLPORT")" "sloppy_tcp=0: no connection made for the download ($((after - before)) segments dropped)"
lbadm_ --lbd-sysctl sloppy_tcp=1
assert_eq "--lbd-sysctl sloppy_tcp=1" "$(lbadm_ -S -n | head -1)" "set at run time, -S writes it"
wait "$DL" || fail "the download did not resume once sloppy_tcp was set"
assert_eq "$want" "$(sha256sum < "$LAB_DIR/big2.got" | cut -d' ' -f1)" "the stalled download resumed once sloppy_tcp=1 was set, intact"

# lbd's flag (what a systemd drop-in's LBD_OPTS carries), and refusals.
lab_stop_lbd
lab_lbd --sysctl sloppy_tcp=1 --sysctl expire_nodest_conn=1
lbadm_ --lbd-sysctl | grep -qx "expire_nodest_conn = 1" || fail "--sysctl from lbd's command line: $(lbadm_ --lbd-sysctl)"
kill -HUP "$LAB_LBD_PID"
sleep 0.5
lbadm_ --lbd-sysctl | grep -qx "sloppy_tcp = 1" || fail "a reload keeps lbd's --sysctl values: $(lbadm_ --lbd-sysctl)"
echo "ok: lbd --sysctl sets them, and a reload of a file without them keeps them"
rc=0; out=$(lbadm_ --lbd-sysctl conn_reuse_mode=7 2>&1) || rc=$?
assert_eq "2 --lbd-sysctl conn_reuse_mode=7: expected 0 to 3" "$rc $out" "an out-of-range value: refused, exit 2"
rc=0; out=$(lbadm_ --lbd-sysctl secure_tcp=1 2>&1) || rc=$?
assert_eq 2 "$rc" "secure_tcp=1: refused ($out)"
lbadm_ --lbd-sysctl | grep -qx "conn_reuse_mode = 1" || fail "refusals changed nothing"
rc=0; out=$(ip netns exec "$LAB_DIRECTOR" "$LBD_BIN" --interface eth0 --sysctl sloppy_tcp=2 2>&1) || rc=$?
assert_eq "2 lbd: --sysctl sloppy_tcp=2: expected 0 to 1" "$rc $out" "lbd --sysctl with a bad value: refused before it starts"
echo "-a -t $V:80 -r $(lab_real_ip 1):80 -g -w 1" > "$LAB_DIR/bad"
echo "--lbd-sysctl frob=1" >> "$LAB_DIR/bad"
rc=0; out=$("$LBD_BIN" --check-rules "$LAB_DIR/bad" 2>&1) || rc=$?
[ "$rc" -ne 0 ] && grep -q "line 2: --lbd-sysctl \`frob': unknown" <<< "$out" || fail "a bad sysctl line: $rc $out"
echo "ok: a rules file with an unknown sysctl is refused with its line number"
