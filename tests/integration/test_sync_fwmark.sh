#!/usr/bin/env bash
# A firewall-mark service's connections in IPVS's sync messages, between two real lbd
# directors with two workers each: d1 runs the master sync daemon, d2 the backup. The
# operator's iptables marks port 80 of the VIP (FWM 1, DR, persistent) on both; the VIP is
# on each director's lo (fwmark services need it local, as IPVS does) and the client routes
# it through d1. A 30 MB download at 1 MB/s from 198.18.0.51, an address the fanout program
# steers to worker 1: d2 learns its connection and template by sync. d1's lbd dies
# (SIGKILL), d2 becomes master, the client's route moves to d2 (as a router would), and the
# download completes intact through d2: the synced connection sits on worker 0, the one
# that reads the fwmark queue, not on worker 1 where its client's captured frames would go.
. "$(dirname "$0")/common.sh"
. "$HERE/../../scripts/lab_directors.sh"
LBD_WORKERS=2
lab_init
trap lab_cleanup EXIT
head -c 30000000 /dev/urandom > "$LAB_DIR/big"
lab_ha_create || fail "the lab did not come up"
D1=$(lab_dir_ns 1) D2=$(lab_dir_ns 2)
C=198.18.0.51
in_ns "$LAB_CLIENT" ip addr add "$C/24" dev eth0
for d in "$D1" "$D2"; do
  in_ns "$d" ip addr add "$LAB_VIP/32" dev lo
  in_ns "$d" sysctl -qw net.ipv4.conf.eth0.arp_ignore=1  # the VIP on lo is not answered for on eth0
  in_ns "$d" iptables -t mangle -A PREROUTING -d "$LAB_VIP/32" -p tcp --dport 80 -j MARK --set-mark 1
done
in_ns "$LAB_CLIENT" ip route add "$LAB_VIP/32" via 198.18.0.2
{
  echo "-A -f 1 -s rr -p 300"
  for i in 1 2 3; do echo "-a -f 1 -r $(lab_real_ip "$i") -g -w 1"; done
} > "$LAB_DIR/rules"
lab_dir_lbd 1 || fail "d1's lbd did not start"
lab_dir_lbd 2 || fail "d2's lbd did not start"
lab_adm 1 --start-daemon master --mcast-interface eth0 --syncid 7
lab_adm 2 --start-daemon backup --mcast-interface eth0 --syncid 7
lab_ha_wait_role 1 master || fail "d1 is not master"
lab_ha_wait_role 2 backup || fail "d2 is not backup"

got=$(in_ns "$LAB_CLIENT" curl -s -m 5 "http://$LAB_VIP/") || got=FAILED
case "$got" in real[123]) echo "ok: FWM 1 through d1 ($got)" ;; *) fail "through d1: $got" ;; esac

WANT=$(sha256sum < "$LAB_DIR/big" | cut -d' ' -f1)
in_ns "$LAB_CLIENT" timeout 60 curl -s --interface "$C" --limit-rate 1M -o "$LAB_DIR/dl" "http://$LAB_VIP/big" &
DL=$!
sleep 3
conns=$(lab_adm 2 -L -n -c)
line=$(grep -E "^TCP .* ESTABLISHED +$C:[0-9]+ +$LAB_VIP:80 +198\.18\.0\.1[123]:80\$" <<< "$conns") ||
  fail "d2 did not learn the download's connection by sync: $conns $(lab_adm 2 --lbd-counters | grep sync)"
real=$(awk '{print $6}' <<< "$line")
echo "ok: the backup learnt the fwmark connection by sync (to $real)"
grep -qE "^IP +.* NONE +$C:0 +0\.0\.0\.1:0 +${real%:80}:0\$" <<< "$conns" ||
  fail "d2 did not learn the client's FWM 1 template (to ${real%:80}): $conns"
echo "ok: and the client's FWM 1 template, to the same real"

kill -0 "$DL" 2>/dev/null || fail "the download ended before d1 died: nothing left to carry over"
lab_sync_failover 7 || fail "d2 did not become master"
in_ns "$LAB_CLIENT" ip route replace "$LAB_VIP/32" via 198.18.0.3
rc=0; wait "$DL" || rc=$?
assert_eq 0 "$rc" "the download's curl ended well"
assert_eq "$WANT" "$(sha256sum < "$LAB_DIR/dl" | cut -d' ' -f1)" \
  "the download completes intact through d2 on the synced fwmark connection"
# What d2 forwarded for FWM 1 (its first packet from the queue, the rest through the queue
# or, with the offload, the XDP fast path): the ACKs of the rest of the download.
inpkts=$(lab_adm 2 -L -n --stats | awk '$1 == "FWM" && $2 == 1 {print $4}')
[ "${inpkts:-0}" -gt 0 ] || fail "d2 forwarded ${inpkts:-0} packets for FWM 1: $(lab_adm 2 -L -n --stats)"
echo "ok: d2 forwarded the rest of it ($inpkts packets for FWM 1)"
assert_eq "$real" "$(lab_adm 2 -L -n -c | grep -E "^TCP .* $C:[0-9]+ +$LAB_VIP:80 " | awk '{print $6}' | sort -u)" \
  "d2 kept it on the real the sync named"
