#!/usr/bin/env bash
# Two workers (--workers 2): 32 client addresses download through a NAT service, a DR
# service and a persistent DR service. Each worker owns a share of the clients (both
# create connections); every NAT reply reaches the worker that owns its connection (every
# download's sha256 matches, and no reply is dropped as belonging to no connection); a
# persistent client's connections all meet its template (one real per client); listings
# and --stats add up the two shards exactly: the same connection count, packets and bytes
# the reals saw; a real's threshold (-x 1) counts the connection of a client of the other
# worker: no client of either worker gets a new connection to it.
. "$(dirname "$0")/common.sh"
lab_init
lab_create 3
VIP2=198.18.0.101
for i in 1 2; do lab_nat_real "$i"; lab_nginx "$i" 8080; done
lab_dr_real 3
VIP3=198.18.0.102
in_ns "$(lab_real_ns 3)" ip addr add "$VIP2/32" dev lo
in_ns "$(lab_real_ns 3)" ip addr add "$VIP3/32" dev lo
lab_nginx 3 80
for i in 1 2; do lab_wait_port "$(lab_real_ns "$i")" 8080; done
lab_wait_port "$(lab_real_ns 3)" 80
CLIENTS=()
for k in $(seq 150 181); do
  in_ns "$LAB_CLIENT" ip addr add "198.18.0.$k/24" dev eth0
  CLIENTS+=("198.18.0.$k")
done
in_ns "$LAB_DIRECTOR" sysctl -qw net.ipv4.ip_forward=1
lab_lbd --workers 2
grep -q "workers: 2 workers" "$LAB_DIR/lbd.log" || fail "lbd should say it runs 2 workers"
lbadm_ -A -t "$LAB_VIP:80" -s rr
lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip 1):8080" -m
lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip 2):8080" -m
lbadm_ -A -t "$VIP2:80" -s rr
lbadm_ -a -t "$VIP2:80" -r "$(lab_real_ip 3):80" -g
# Persistent (-p): both reals of port 8000 are NAT reals 1 and 2 again, on their 8080.
lbadm_ -A -t "$LAB_VIP:8000" -s rr -p 300
lbadm_ -a -t "$LAB_VIP:8000" -r "$(lab_real_ip 1):8080" -m
lbadm_ -a -t "$LAB_VIP:8000" -r "$(lab_real_ip 2):8080" -m

want1=$(sha256sum < "$LAB_DIR/nginx1/html/blob" | cut -d' ' -f1)
want2=$(sha256sum < "$LAB_DIR/nginx2/html/blob" | cut -d' ' -f1)
want3=$(sha256sum < "$LAB_DIR/nginx3/html/blob" | cut -d' ' -f1)
bad=0
for c in "${CLIENTS[@]}"; do
  got=$(in_ns "$LAB_CLIENT" curl -s -m 10 --interface "$c" "http://$LAB_VIP/blob" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want1" ] || [ "$got" = "$want2" ] || { echo "NAT download from $c: bad sha256" >&2; bad=$((bad + 1)); }
  got=$(in_ns "$LAB_CLIENT" curl -s -m 10 --interface "$c" "http://$VIP2/blob" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want3" ] || { echo "DR download from $c: bad sha256" >&2; bad=$((bad + 1)); }
done
assert_eq 0 "$bad" "64 downloads (1 MB each) from 32 clients, NAT and DR: every sha256 matches"

# Persistence: three requests per client, from three source ports: always one real.
split=0
for c in "${CLIENTS[@]}"; do
  seen=$(for k in 1 2 3; do in_ns "$LAB_CLIENT" curl -s -m 3 --interface "$c" "http://$LAB_VIP:8000/"; done | sort -u | wc -l)
  [ "$seen" = 1 ] || split=$((split + 1))
done
assert_eq 0 "$split" "persistence: each of 32 clients' 3 connections went to one real"

counters=$(lbadm_ --lbd-counters)
counter() { echo "$counters" | awk -v k="$1" '$1 == k {print $2}'; }
assert_eq 2 "$(counter workers)" "the counters list 2 workers"
w0=$(counter worker0_conns_created)
w1=$(counter worker1_conns_created)
[ "$w0" -gt 0 ] && [ "$w1" -gt 0 ] || fail "both workers should own connections (worker0 $w0, worker1 $w1)"
echo "ok: both workers own connections (worker0 $w0, worker1 $w1)"
# 64 downloads + 96 persistent requests (templates are not counted as created)...
assert_eq 160 "$((w0 + w1))" "the workers' connections add up (64 + 96)"
assert_eq 160 "$(counter conns_created)" "conns_created is the sum of the workers'"
# ... and all are still in the table, with the 32 templates.
assert_eq 192 "$(( $(counter worker0_conns_current) + $(counter worker1_conns_current) ))" \
  "the shards hold 160 connections and 32 templates"
for d in orphan_reply not_syn icmp_no_connection; do
  assert_eq 0 "$(counter "drop_$d")" "no frame reached a worker without its connection (drop_$d)"
done

# Listings add up the shards: 32 NAT and 32 DR connections, 96 persistent ones.
stats=$(lbadm_ -L -n --stats --exact)
conns_of() { echo "$stats" | awk -v s="$1" '$2 == s {print $3}'; }
assert_eq 32 "$(conns_of "$LAB_VIP:80")" "--stats: $LAB_VIP:80 has 32 connections"
assert_eq 32 "$(conns_of "$VIP2:80")" "--stats: $VIP2:80 has 32 connections"
assert_eq 96 "$(conns_of "$LAB_VIP:8000")" "--stats: $LAB_VIP:8000 has 96 connections"
listed=$(lbadm_ -L -n -c | grep -c -E "^(TCP|UDP) ")
assert_eq 192 "$listed" "-L -n -c lists every connection of both workers (templates included)"
# The DR real received exactly what --stats says went to it (both shards, slow and fast path).
rx=$(in_ns "$(lab_real_ns 3)" nstat -az IpInReceives | awk '/IpInReceives/ {print $2}')
inpkts=$(echo "$stats" | awk -v r="$(lab_real_ip 3):80" '$2 == r {print $4}')
[ "$inpkts" -gt 0 ] && [ "$inpkts" -le "$rx" ] && [ $((rx - inpkts)) -le 3 ] || fail "--stats InPkts of the DR real ($inpkts) vs what it received ($rx)"
echo "ok: --stats InPkts of the DR real ($inpkts) is what it received, within 3 ($rx)"

# A threshold for the director as a whole: -x 1, one connection held open by the first
# client; then every other client, whichever worker owns it, is refused (port unreachable).
lbadm_ -A -t "$VIP3:80" -s rr
lbadm_ -a -t "$VIP3:80" -r "$(lab_real_ip 3):80" -g -x 1
lab_bg "$LAB_CLIENT" socat "TCP:$VIP3:80,bind=${CLIENTS[0]}" EXEC:"sleep 20"
HOLD=${LAB_PIDS[-1]}
for k in $(seq 1 40); do
  [ "$(lbadm_ -L -n -t "$VIP3:80" | awk -v r="$(lab_real_ip 3):80" '$2 == r {print $5}')" = 1 ] && break
  sleep 0.05
done
before=$(lbadm_ --lbd-counters)
refused=0
for c in "${CLIENTS[@]:1:12}"; do
  rc=0; in_ns "$LAB_CLIENT" curl -s -m 3 --interface "$c" "http://$VIP3/" >/dev/null || rc=$?
  [ "$rc" = 7 ] && refused=$((refused + 1))
done
after=$(lbadm_ --lbd-counters)
assert_eq 12 "$refused" "-x 1 with one connection open: 12 other clients refused"
grow() { echo "$(( $(echo "$after" | awk -v k="$1" '$1 == k {print $2}') - $(echo "$before" | awk -v k="$1" '$1 == k {print $2}') ))"; }
[ "$(grow worker0_rx_frames)" -gt 0 ] && [ "$(grow worker1_rx_frames)" -gt 0 ] ||
  fail "both workers should have refused some of those clients (rx: $(grow worker0_rx_frames), $(grow worker1_rx_frames))"
echo "ok: ... clients of both workers among them"
kill -TERM "$HOLD"; wait "$HOLD" 2>/dev/null || true

# IPv6: 16 client addresses download through a NAT66 service (real1) and a DR one (real3):
# the fanout program spreads IPv6 clients over both workers too, and every NAT66 reply
# reaches the worker that owns its connection.
V6=2001:db8::100
N6=2001:db8::101
in_ns "$LAB_DIRECTOR" ip -6 addr add 2001:db8::2/64 dev eth0 nodad
ns1=$(lab_real_ns 1)
in_ns "$ns1" ip -6 addr add 2001:db8::11/128 dev eth0 nodad
in_ns "$ns1" ip -6 route add 2001:db8::2 dev eth0
in_ns "$ns1" ip -6 route add default via 2001:db8::2 dev eth0
ns3=$(lab_real_ns 3)
in_ns "$ns3" ip -6 addr add 2001:db8::13/64 dev eth0 nodad
in_ns "$ns3" ip -6 addr add "$V6/128" dev lo nodad
for i in 1 3; do
  sed -i 's/listen \([0-9]*\);/listen \1; listen [::]:\1;/' "$LAB_DIR/nginx$i/nginx.conf"
  kill -HUP "$(cat "$LAB_DIR/nginx$i/nginx.pid")"
done
CLIENTS6=()
for k in $(seq 1 16); do
  in_ns "$LAB_CLIENT" ip -6 addr add "2001:db8::5:$k/64" dev eth0 nodad
  CLIENTS6+=("2001:db8::5:$k")
done
sleep 0.5
lbadm_ -A -t "[$N6]:80" -s rr
lbadm_ -a -t "[$N6]:80" -r "[2001:db8::11]:8080" -m
lbadm_ -A -t "[$V6]:80" -s rr
lbadm_ -a -t "[$V6]:80" -r 2001:db8::13 -g
before=$(lbadm_ --lbd-counters)
bad=0
for c in "${CLIENTS6[@]}"; do
  got=$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 10 --interface "$c" "http://[$N6]/blob" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want1" ] || { echo "NAT66 download from $c: bad sha256" >&2; bad=$((bad + 1)); }
  got=$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 10 --interface "$c" "http://[$V6]/blob" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want3" ] || { echo "DR download from $c: bad sha256" >&2; bad=$((bad + 1)); }
done
after=$(lbadm_ --lbd-counters)
assert_eq 0 "$bad" "32 IPv6 downloads (NAT66 and DR) from 16 clients: every sha256 matches"
w0=$(grow worker0_conns_created)
w1=$(grow worker1_conns_created)
[ "$w0" -gt 0 ] && [ "$w1" -gt 0 ] || fail "both workers should own IPv6 connections (worker0 $w0, worker1 $w1)"
assert_eq 32 "$((w0 + w1))" "the workers' IPv6 connections add up"
for d in orphan_reply not_syn icmp_no_connection; do
  assert_eq 0 "$(grow "drop_$d")" "no IPv6 frame reached a worker without its connection (drop_$d)"
done
echo "ok: both workers own IPv6 connections (worker0 $w0, worker1 $w1)"
