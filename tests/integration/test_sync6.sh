#!/usr/bin/env bash
# IPv6 connections in IPVS's sync messages (struct ip_vs_sync_v6), between two real lbd
# directors: d1 runs the master sync daemon, d2 the backup (passive: backup_only, it
# answers no solicitation for the VIP and forwards nothing). Over IPv6, by DR to three
# reals with nginx, a 30 MB download at 2 MB/s through d1 and a persistent (-p, /64)
# service's connection: d2 learns them (-L -n -c: the same client, VIP and real, template
# included). Then d1's lbd dies (SIGKILL) and d2 becomes master: the client's next
# solicitation finds d2, and the download completes intact through it, on the real the
# sync named.
. "$(dirname "$0")/common.sh"
. "$HERE/../../scripts/lab_directors.sh"
lab_init
trap lab_cleanup EXIT
V6=2001:db8::100
C6=2001:db8::1
head -c 30000000 /dev/urandom > "$LAB_DIR/big"
lab_ha_create || fail "the lab did not come up"
D1=$(lab_dir_ns 1) D2=$(lab_dir_ns 2)
lab_v6addr "$LAB_CLIENT" "$C6/64"
lab_v6addr "$D1" 2001:db8::2/64
lab_v6addr "$D2" 2001:db8::3/64
for i in 1 2 3; do
  lab_v6addr "$(lab_real_ns "$i")" "2001:db8::1$i/64"
  lab_v6addr "$(lab_real_ns "$i")" "$V6/128" lo
done
# The reals' nginx listens on IPv4 only (lab_ha_create's): [::]:80 and [::]:8080 too.
for i in 1 2 3; do
  sed -i 's/listen 80;/listen 80; listen [::]:80; listen [::]:8080;/' "$LAB_DIR/nginx$i/nginx.conf"
  kill -HUP "$(cat "$LAB_DIR/nginx$i/nginx.pid")"
done
for i in 1 2 3; do
  for k in $(seq 1 50); do in_ns "$(lab_real_ns "$i")" ss -ltn | grep -q "\[::\]:80" && break; sleep 0.1; done
done
{
  echo "-A -t [$V6]:80 -s rr"
  for i in 1 2 3; do echo "-a -t [$V6]:80 -r [2001:db8::1$i]:80 -g -w 1"; done
  echo "-A -t [$V6]:8080 -s rr -p 300 -M 64"
  for i in 1 2 3; do echo "-a -t [$V6]:8080 -r 2001:db8::1$i -g -w 1"; done
} > "$LAB_DIR/rules"
lab_dir_lbd 1 || fail "d1's lbd did not start"
lab_dir_lbd 2 || fail "d2's lbd did not start"
lab_adm 1 --start-daemon master --mcast-interface eth0 --syncid 9
lab_adm 2 --start-daemon backup --mcast-interface eth0 --syncid 9
lab_ha_wait_role 1 master || fail "d1 is not master"
lab_ha_wait_role 2 backup || fail "d2 is not backup"

got=$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 5 "http://[$V6]/") || got=FAILED
case "$got" in real[123]) echo "ok: traffic over IPv6 through d1 ($got)" ;; *) fail "through d1: $got" ;; esac
d1mac=$(in_ns "$D1" cat /sys/class/net/eth0/address)
in_ns "$LAB_CLIENT" ip -6 neigh show "$V6" | grep -q "lladdr $d1mac" ||
  fail "the client's neighbour entry for $V6 is not d1's: $(in_ns "$LAB_CLIENT" ip -6 neigh)"
echo "ok: only the active d1 answered the solicitation for the VIP"

WANT=$(sha256sum < "$LAB_DIR/big" | cut -d' ' -f1)
in_ns "$LAB_CLIENT" timeout 60 curl -6 -g -s --limit-rate 2M "http://[$V6]/big" -o "$LAB_DIR/dl" &
DL=$!
persistent=$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 5 "http://[$V6]:8080/") || persistent=FAILED
case "$persistent" in real[123]) ;; *) fail "the persistent service through d1: $persistent" ;; esac
sleep 3
conns=$(lab_adm 2 -L -n -c)
line=$(grep -E "^TCP .* ESTABLISHED +\[$C6\]:[0-9]+ +\[$V6\]:80 +\[2001:db8::1[123]\]:80\$" <<< "$conns") ||
  fail "d2 did not learn the IPv6 download's connection by sync: $conns $(lab_adm 2 --lbd-counters | grep sync)"
real=$(awk '{print $6}' <<< "$line")
echo "ok: the backup learnt the IPv6 connection by sync (to $real)"
grep -qE "^(TCP|IP ) .* NONE +\[2001:db8::\]:0 +\[$V6\]:8080 +\[2001:db8::1[123]\]:8080\$" <<< "$conns" ||
  fail "d2 did not learn the /64's persistence template: $conns"
echo "ok: and the persistence template of the client's /64"
assert_eq "$(lab_adm 1 -L -n -c | grep -E "ESTABLISHED +\[$C6\]:[0-9]+ +\[$V6\]:80 " | awk '{print $6}')" "$real" \
  "the master's connection goes to the same real"
[ "$(lab_adm 1 --lbd-counters | awk '$1 == "sync_mixed_family" {print $2}')" = 0 ] || fail "IPv6 connections not synced"

# d1 dies; d2 becomes master and active. The client's stale neighbour entry goes as an
# unsolicited advertisement would take it: its next solicitation is answered by d2.
lab_sync_failover 9 || fail "d2 did not become master"
in_ns "$LAB_CLIENT" ip -6 neigh flush dev eth0
wait "$DL" || true
assert_eq "$WANT" "$(sha256sum < "$LAB_DIR/dl" | cut -d' ' -f1)" \
  "the IPv6 download completes intact through d2 on the synced connection"
d2mac=$(in_ns "$D2" cat /sys/class/net/eth0/address)
in_ns "$LAB_CLIENT" ip -6 neigh show "$V6" | grep -q "lladdr $d2mac" ||
  fail "the client's neighbour entry for $V6 is not d2's: $(in_ns "$LAB_CLIENT" ip -6 neigh)"
assert_eq "$persistent" "$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 5 "http://[$V6]:8080/")" \
  "the persistent service keeps the client's /64 on its real through d2 (the synced template)"
