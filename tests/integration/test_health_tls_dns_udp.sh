#!/usr/bin/env bash
# The TLS, DNS and UDP checks against real servers: nginx with TLS (certificates from a lab
# CA made here with openssl), dnsmasq, and socat's UDP echo. Each check takes a failing real
# out with the reason a user can act on (certificate name, rcode or answer, ICMP port
# unreachable, no reply) and brings it back; HTTPS clients keep being served through the VIP.
. "$(dirname "$0")/common.sh"
lab_init
lab_create 2
R1=$(lab_real_ip 1); R2=$(lab_real_ip 2)
FAST="interval=0.5,timeout=0.4,rise=1,fall=1"

# --- A lab CA; real1's certificate names www.lab.example, real2's other.example ----------
mk() { openssl "$@" >/dev/null 2>&1 || fail "openssl $*"; }
mk req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=lbd lab CA" -keyout "$LAB_DIR/ca.key" -out "$LAB_DIR/ca.pem"
for i in 1 2; do
  name=www.lab.example; [ "$i" = 2 ] && name=other.example
  mk req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$LAB_DIR/r$i.key" -out "$LAB_DIR/r$i.csr"
  printf 'subjectAltName=DNS:%s\n' "$name" >"$LAB_DIR/r$i.ext"
  mk x509 -req -in "$LAB_DIR/r$i.csr" -CA "$LAB_DIR/ca.pem" -CAkey "$LAB_DIR/ca.key" -CAcreateserial -days 2 \
    -extfile "$LAB_DIR/r$i.ext" -out "$LAB_DIR/r$i.pem"
done
chmod 644 "$LAB_DIR"/*.key
tls_nginx() {  # tls_nginx I: nginx on 443 (TLS) in real I, with its certificate
  lab_nginx "$1" "443 ssl" "ssl_certificate $LAB_DIR/r$1.pem; ssl_certificate_key $LAB_DIR/r$1.key;"
}
dns_server() {  # dns_server I ADDRESS: dnsmasq in real I saying lab.example is ADDRESS
  lab_bg "$(lab_real_ns "$1")" dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
    --listen-address="$(lab_real_ip "$1")" --port=53 --user=nobody --pid-file="$LAB_DIR/dnsmasq$1.pid" \
    --address=/lab.example/"$2"
  DNS_PID[$1]=${LAB_PIDS[-1]}
}
udp_echo() {  # udp_echo I: socat's UDP echo on port 7 in real I
  lab_bg "$(lab_real_ns "$1")" socat UDP4-RECVFROM:7,fork EXEC:cat
  ECHO_PID[$1]=${LAB_PIDS[-1]}
}
declare -a DNS_PID ECHO_PID
for i in 1 2; do lab_dr_real "$i"; tls_nginx "$i"; done
dns_server 1 198.18.0.50
dns_server 2 198.18.0.99
udp_echo 1
udp_echo 2
for i in 1 2; do lab_wait_port "$(lab_real_ns "$i")" 443; done
lab_lbd
state() { lbadm_ --lbd-health | awk -v s="$1" -v r="$2" '$1=="TCP"||$1=="UDP" {svc=$2} svc==s && $2==r {print $3}'; }
result() { lbadm_ --lbd-health | awk -v s="$1" -v r="$2" '$1=="TCP"||$1=="UDP" {svc=$2} svc==s && $2==r {$1=$2=$3=$4=$5=""; print}' | sed 's/^ *//'; }
reason_is() {  # reason_is SERVICE REAL REGEX: the real's last result matches (grep -E)
  result "$1" "$2" | grep -E -q "$3" || fail "$2 of $1: reason [$(result "$1" "$2")], expected /$3/"
}
service() {  # service -t|-u SERVICE SPEC: rr over real1 and real2 with the check SPEC
  lbadm_ -A "$1" "$2" -s rr --health "$3"
  lbadm_ -a "$1" "$2" -r "$R1"
  lbadm_ -a "$1" "$2" -r "$R2"
}
wait_state() {  # wait_state SERVICE REAL STATE: at most 5 s
  local k
  for k in $(seq 1 50); do [ "$(state "$1" "$2")" = "$3" ] && return 0; sleep 0.1; done
  fail "$2 of $1 never became $3: $(lbadm_ --lbd-health)"
}

# --- check=https ---------------------------------------------------------------------------
S=$LAB_VIP:443
service -t "$S" "check=https,$FAST,sni=www.lab.example,ca=$LAB_DIR/ca.pem"
wait_state "$S" "$R1:443" UP
wait_state "$S" "$R2:443" DOWN
reason_is "$S" "$R2:443" "tls: certificate: hostname mismatch"
echo "ok: https with ca=: real1 UP, real2 DOWN ($(result "$S" "$R2:443"))"
for k in 1 2 3 4; do
  out=$(in_ns "$LAB_CLIENT" curl -s -m 3 --cacert "$LAB_DIR/ca.pem" --resolve "www.lab.example:443:$LAB_VIP" https://www.lab.example/) || out=FAILED
  assert_eq real1 "$out" "HTTPS through the VIP reaches the verified real ($k)"
done
# Without verification both certificates do; SNI still sent.
lbadm_ -E -t "$S" -s rr --health "check=https,$FAST,sni=www.lab.example,ca=none"
wait_state "$S" "$R2:443" UP
echo "ok: without ca= the TLS check takes any certificate: real2 UP"
kill "$(cat "$LAB_DIR/nginx1/nginx.pid")"
wait_state "$S" "$R1:443" DOWN
reason_is "$S" "$R1:443" "connect: Connection refused"
echo "ok: nginx stopped: real1 DOWN ($(result "$S" "$R1:443"))"

# --- check=dns -----------------------------------------------------------------------------
D=$LAB_VIP:53
service -u "$D" "check=dns,$FAST,query=lab.example,answer=198.18.0.50"
wait_state "$D" "$R1:53" UP
wait_state "$D" "$R2:53" DOWN
reason_is "$D" "$R2:53" "no A record 198.18.0.50 in 1 answer"
echo "ok: dns: real1 UP, real2 DOWN ($(result "$D" "$R2:53"))"
lbadm_ -E -u "$D" -s rr --health "check=dns,$FAST,query=nothing.invalid,rcode=NOERROR"
wait_state "$D" "$R1:53" DOWN
reason_is "$D" "$R1:53" "rcode (NXDOMAIN|REFUSED), expected NOERROR"
echo "ok: dns: an unexpected rcode takes it DOWN ($(result "$D" "$R1:53"))"
lbadm_ -E -u "$D" -s rr --health "check=dns,$FAST,query=lab.example,answer=none"
wait_state "$D" "$R1:53" UP
wait_state "$D" "$R2:53" UP
kill "${DNS_PID[1]}"
wait_state "$D" "$R1:53" DOWN
reason_is "$D" "$R1:53" "ICMP port unreachable"
echo "ok: dnsmasq stopped: real1 DOWN ($(result "$D" "$R1:53"))"

# --- check=udp -----------------------------------------------------------------------------
U=$LAB_VIP:7
service -u "$U" "check=udp,$FAST,send=lbd-ping,expect=lbd-ping"
wait_state "$U" "$R1:7" UP
wait_state "$U" "$R2:7" UP
kill "${ECHO_PID[2]}"
wait_state "$U" "$R2:7" DOWN
echo "ok: udp with expect=: echo stopped, real2 DOWN ($(result "$U" "$R2:7"))"
udp_echo 2
wait_state "$U" "$R2:7" UP
echo "ok: echo back: real2 UP"
# Without expect=: silence is up (a UDP service need not answer), ICMP unreachable is down.
lbadm_ -E -u "$U" -s rr --health "check=udp,$FAST,send=x,expect=none"
in_ns "$(lab_real_ns 1)" nft add table inet lbdtest
in_ns "$(lab_real_ns 1)" nft add chain inet lbdtest in '{ type filter hook input priority 0; }'
in_ns "$(lab_real_ns 1)" nft add rule inet lbdtest in udp dport 7 drop
kill "${ECHO_PID[2]}"
wait_state "$U" "$R2:7" DOWN
reason_is "$U" "$R2:7" "ICMP port unreachable"
sleep 1.5
assert_eq UP "$(state "$U" "$R1:7")" "a real dropping the datagrams silently stays UP without expect="
echo "ok: udp without expect=: ICMP unreachable DOWN, silence UP"

# --- One check for every service naming the same real, port and check ------------------------
for svc in 1 2 3 4; do
  lbadm_ -A -t "198.18.0.$((100 + svc)):443" -s rr --health "check=https,$FAST,sni=www.lab.example"
  lbadm_ -a -t "198.18.0.$((100 + svc)):443" -r "$R2"
done
sleep 1
t0=$(date +%s.%N)
before=$(lbadm_ --lbd-counters | awk '$1 == "health_checks" {print $2}')
sleep 3
after=$(lbadm_ --lbd-counters | awk '$1 == "health_checks" {print $2}')
t1=$(date +%s.%N)
# Every 0.5 s, 6 checks run (VIP:443's two, real2's shared by the 4 new services; VIP:53's
# two; VIP:7's two); unshared, real2's would run 5 times: 10. Checks per interval, over the
# window as long as it really was (a loaded machine stretches it):
n=$((after - before))
per=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", n / ((b - a) / 0.5)}')
awk -v p="$per" 'BEGIN { exit !(p <= 8) }' || fail "$per checks per interval ($n in all): real2's https check is not shared by its 5 services"
for svc in 1 2 3 4; do
  lbadm_ --lbd-health | grep -A2 "198.18.0.$((100 + svc)):443" | grep -E -q -- "-> $R2:443 +UP" || fail "service $svc: $(lbadm_ --lbd-health)"
done
echo "ok: 5 services naming real2's https check share one ($per checks per 0.5 s in all; unshared: 10)"
exit 0
