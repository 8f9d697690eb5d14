#!/usr/bin/env bash
# Quiesce and delete under traffic: `-e -w 0` stops new connections to a real while its open
# connection keeps working; `-d` removes a real; a 3 MB upload from a client with TSO on
# (super-frames) goes through intact.
. "$(dirname "$0")/common.sh"
echo_lab 3 7
lab_lbd
lbadm_ -A -t "$LAB_VIP:7" -s rr
for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:7" -r "$(lab_real_ip "$i")"; done
sleep 0.5

# One long-lived connection, driven line by line.
mkfifo "$LAB_DIR/to_server"
ip netns exec "$LAB_CLIENT" socat -t 30 - "TCP:$LAB_VIP:7" < "$LAB_DIR/to_server" > "$LAB_DIR/from_server" 2>/dev/null &
LAB_PIDS+=($!)
exec 7> "$LAB_DIR/to_server"
echo "first" >&7
for w in $(seq 1 50); do grep -q first "$LAB_DIR/from_server" && break; sleep 0.05; done
assert_eq "first" "$(cat "$LAB_DIR/from_server")" "long-lived connection echoes"
held=$(lbadm_ -L -n -c | awk '$3 == "ESTABLISHED" {print $6}' | cut -d: -f1)
[ -n "$held" ] || fail "the held connection is not ESTABLISHED in lbadm -L -n -c"
echo "info: held connection is on $held"

conns_of() { lbadm_ -L -n --stats -t "$LAB_VIP:7" | awk -v r="$1:7" '$2 == r {print $3}'; }
before=$(conns_of "$held")
lbadm_ -e -t "$LAB_VIP:7" -r "$held" -w 0
for k in $(seq 1 12); do
  echo "ping$k" | in_ns "$LAB_CLIENT" timeout 5 socat -t 2 - "TCP:$LAB_VIP:7" > /dev/null
done
assert_eq "$before" "$(conns_of "$held")" "no new connection reached the quiesced real"
echo "second" >&7
for w in $(seq 1 50); do grep -q second "$LAB_DIR/from_server" && break; sleep 0.05; done
assert_eq "first
second" "$(cat "$LAB_DIR/from_server")" "the quiesced real's open connection keeps working"

# lbadm -C then -R (what ipvsadm-restore does) keeps established connections, as IPVS does
# by reviving the same reals from its trash.
saved=$(lbadm_ -S -n)
lbadm_ -C
echo "$saved" | lbadm_ -R
assert_eq "$saved" "$(lbadm_ -S -n)" "rules back after -C and -R"
echo "after-restore" >&7
for w in $(seq 1 50); do grep -q after-restore "$LAB_DIR/from_server" && break; sleep 0.05; done
grep -q after-restore "$LAB_DIR/from_server" || fail "the held connection broke across -C/-R"
echo "ok: the held connection survives -C and -R"
held_active=$(lbadm_ -L -n -t "$LAB_VIP:7" | awk -v r="$held:7" '$2 == r {print $5}')
assert_eq 1 "$held_active" "its connection is counted again on the revived real"

# Delete another real: it leaves the listing, and new connections avoid it.
other=$(lbadm_ -L -n -t "$LAB_VIP:7" | awk '/->.*Route/ {print $2}' | cut -d: -f1 | grep -vx "$held" | head -1)
lbadm_ -d -t "$LAB_VIP:7" -r "$other"
lbadm_ -L -n -t "$LAB_VIP:7" | grep -q "$other:7" && fail "$other still listed after -d"
echo "ok: -d removed $other from the listing"
remaining=$(lbadm_ -L -n -t "$LAB_VIP:7" | awk '/->.*Route/ {print $2}' | cut -d: -f1 | grep -vx "$held")
r_before=$(conns_of "$remaining")
for k in $(seq 1 6); do
  echo "p$k" | in_ns "$LAB_CLIENT" timeout 5 socat -t 2 - "TCP:$LAB_VIP:7" > /dev/null
done
assert_eq "$((r_before + 6))" "$(conns_of "$remaining")" "all new connections go to the one schedulable real"

# A large upload with the client's offloads on: lbd segments its TSO super-frames.
in_ns "$LAB_CLIENT" ethtool -K eth0 tx on tso on gso on >/dev/null
head -c 3000000 /dev/urandom > "$LAB_DIR/payload"
in_ns "$LAB_CLIENT" timeout 30 socat -t 5 -b 65536 - "TCP:$LAB_VIP:7" < "$LAB_DIR/payload" > "$LAB_DIR/echo" || true
cmp -s "$LAB_DIR/payload" "$LAB_DIR/echo" || fail "3 MB upload with TSO on differs"
echo "ok: 3 MB round trip with the client's TSO on"
seg=$(lbadm_ --lbd-counters | awk '$1 == "superframes_segmented" {print $2}')
[ "$seg" -gt 0 ] || fail "expected super-frames to be segmented (got $seg)"
echo "ok: $seg super-frames segmented"
# Every real quiesced: like IPVS, new connections get ICMP port unreachable at once
# (connect() fails with "Connection refused" instead of retrying SYNs into silence).
for r in $(lbadm_ -L -n -t "$LAB_VIP:7" | awk '/->.*Route/ {print $2}'); do
  lbadm_ -e -t "$LAB_VIP:7" -r "$r" -w 0
done
start_tcpdump "$LAB_CLIENT" eth0 "$LAB_DIR/icmp.pcap" "icmp and src host $LAB_VIP"
t0=$(date +%s%N)
out=$(in_ns "$LAB_CLIENT" timeout 10 socat -T 5 - "TCP:$LAB_VIP:7" </dev/null 2>&1) && fail "connected with every real quiesced"
t_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
stop_tcpdump "$TCPDUMP_PID"
case "$out" in *"Connection refused"*) echo "ok: refused in ${t_ms} ms with every real quiesced" ;; *) fail "expected Connection refused, got: $out" ;; esac
[ "$t_ms" -lt 1000 ] || fail "refusal took ${t_ms} ms (SYN retries instead of ICMP?)"
assert_eq 1 "$(tcpdump -r "$LAB_DIR/icmp.pcap" -n 2>/dev/null | grep -c 'udp port\|tcp port 7 unreachable')" "one ICMP port unreachable from the VIP"
echo "third" >&7
for w in $(seq 1 50); do grep -q third "$LAB_DIR/from_server" && break; sleep 0.05; done
grep -q third "$LAB_DIR/from_server" || fail "the held connection stopped working after quiescing all"
echo "ok: the held connection still works with every real quiesced"
exec 7>&-
