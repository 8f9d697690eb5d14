#!/usr/bin/env bash
# lbadm --from-keepalived on a keepalived.conf the real keepalived validates
# (--config-test): its VRRP part skipped, its LVS part loaded into lbd with lbadm -R,
# carrying traffic as keepalived's IPVS would (wrr weights, the three checkers, the sorry
# server's absence), a real failing its MISC_CHECK leaving; then a valid keepalived.conf
# lbd cannot honour (an HTTP_GET digest) refused with its line, nothing printed.
. "$(dirname "$0")/common.sh"
lab_init
lab_create 3
for i in 1 2 3; do lab_dr_real "$i"; lab_nginx "$i"; done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
lab_lbd
R1=$(lab_real_ip 1); R2=$(lab_real_ip 2); R3=$(lab_real_ip 3)
# The MISC_CHECK's script: lbd runs it with the real in LBD_REAL_ADDR (as nobody).
cat > "$LAB_DIR/check-web" <<'SH'
#!/bin/sh
exec curl -sf -m 1 -o /dev/null "http://$LBD_REAL_ADDR/"
SH
chmod 755 "$LAB_DIR/check-web"
cat > "$LAB_DIR/keepalived.conf" <<CONF
! The director's keepalived.conf: VRRP for the VIP, then the LVS part lbd takes over.
global_defs {
   router_id LBD_LAB
   script_user root
   enable_script_security
   lvs_timeouts tcp 7200 tcpfin 60 udp 120
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    virtual_ipaddress {
        $LAB_VIP
    }
}
virtual_server $LAB_VIP 80 {
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server $R1 80 {
        weight 1
        HTTP_GET {
            url {
              path /
              status_code 200
            }
            connect_timeout 0.5
            retry 1
            delay_before_retry 1
        }
    }
    real_server $R2 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 0.5
            connect_port 80
        }
    }
    real_server $R3 80 {
        weight 1
        MISC_CHECK {
            misc_path $LAB_DIR/check-web
            misc_timeout 1
        }
    }
}
CONF
keepalived --config-test -f "$LAB_DIR/keepalived.conf" >"$LAB_DIR/kcheck.out" 2>&1 ||
  fail "keepalived --config-test refuses the input: $(cat "$LAB_DIR/kcheck.out")"
echo "ok: keepalived --config-test accepts keepalived.conf"
"$LBADM_BIN" --from-keepalived "$LAB_DIR/keepalived.conf" >"$LAB_DIR/rules.imported" 2>"$LAB_DIR/import.err" ||
  fail "import: $(cat "$LAB_DIR/import.err")"
grep -q "vrrp_instance skipped" "$LAB_DIR/import.err" || fail "the skipped VRRP block is not said: $(cat "$LAB_DIR/import.err")"
lbadm_ -R <"$LAB_DIR/rules.imported" || fail "lbadm -R refused the imported rules: $(cat "$LAB_DIR/rules.imported")"
echo "ok: imported and restored: $(grep -c '^-' "$LAB_DIR/rules.imported") rules"
assert_eq "Timeout (tcp tcpfin udp): 7200 60 120" "$(lbadm_ -L --timeout)" "lvs_timeouts became --set"
lbadm_ -L -n | grep -q "^TCP  $LAB_VIP:80 wrr$" || fail "the service: $(lbadm_ -L -n)"
wait_up() {  # wait_up N: until N reals are UP (at most 5 s)
  local k
  for k in $(seq 1 50); do
    [ "$(lbadm_ --lbd-health | grep -c ' UP ')" = "$1" ] && return 0
    sleep 0.1
  done
  fail "expected $1 reals UP: $(lbadm_ --lbd-health)"
}
wait_up 3
lbadm_ --lbd-health | grep -q "check=http,interval=1,timeout=0.5,rise=1,fall=2,status=200" ||
  fail "the service's check: $(lbadm_ --lbd-health)"
assert_eq "real1 2 real2 4 real3 2 " "$(count_answers 8 | tr '\n' ' ')" "wrr 1:2:1 as keepalived's weights"
# real3's nginx stops: its MISC_CHECK script fails, lbd takes it out (fall = retry 0 + 1).
kill "$(cat "$LAB_DIR/nginx3/nginx.pid")"
for k in $(seq 1 50); do lbadm_ --lbd-health | grep -E -q -- "-> $R3:80 +DOWN" && break; sleep 0.1; done
lbadm_ --lbd-health | grep -E -q -- "-> $R3:80 +DOWN" || fail "real3 not DOWN: $(lbadm_ --lbd-health)"
echo "ok: the MISC_CHECK's script took real3 out"
assert_eq "real1 2 real2 4 " "$(count_answers 6 | tr '\n' ' ')" "real1 and real2 only"
# -S -n gives back what was imported (the same rules load again).
lbadm_ -S -n >"$LAB_DIR/saved"
lbadm_ -C
lbadm_ -R <"$LAB_DIR/saved"
assert_eq "$(grep -c '^-a' "$LAB_DIR/rules.imported")" "$(lbadm_ -S -n | grep -c '^-a')" "saved and restored"

# A keepalived.conf keepalived takes and lbd cannot honour: refused with its line.
sed 's|              status_code 200|              digest 640205b7b0fc66c1ea91c463fac6334d|' "$LAB_DIR/keepalived.conf" >"$LAB_DIR/digest.conf"
keepalived --config-test -f "$LAB_DIR/digest.conf" >/dev/null 2>&1 || fail "keepalived refuses digest.conf"
rc=0
"$LBADM_BIN" --from-keepalived "$LAB_DIR/digest.conf" >"$LAB_DIR/digest.out" 2>"$LAB_DIR/digest.err" || rc=$?
assert_eq 2 "$rc" "a digest is refused (exit 2)"
assert_eq 0 "$(stat -c %s "$LAB_DIR/digest.out")" "nothing printed"
line=$(grep -n digest "$LAB_DIR/digest.conf" | cut -d: -f1)
grep -q "$LAB_DIR/digest.conf:$line: digest: " "$LAB_DIR/digest.err" || fail "the refusal: $(cat "$LAB_DIR/digest.err")"
echo "ok: refused with file and line: $(cat "$LAB_DIR/digest.err")"

# IPv6: an IPv6 virtual server (DR, persistence by a /64, a TCP_CHECK) and an IPv6
# firewall-mark one (ip_family inet6), as keepalived validates them, imported in ipvsadm's
# IPv6 forms and carrying IPv6 traffic.
V6=2001:db8::100
in_ns "$LAB_CLIENT" ip -6 addr add 2001:db8::1/64 dev eth0 nodad
in_ns "$LAB_DIRECTOR" ip -6 addr add 2001:db8::2/64 dev eth0 nodad
for i in 1 2; do
  ns=$(lab_real_ns "$i")
  in_ns "$ns" ip -6 addr add "2001:db8::1$i/64" dev eth0 nodad
  in_ns "$ns" ip -6 addr add "$V6/128" dev lo nodad
  sed -i 's/listen 80;/listen 80; listen [::]:80;/' "$LAB_DIR/nginx$i/nginx.conf"
  kill -HUP "$(cat "$LAB_DIR/nginx$i/nginx.pid")"
done
cat > "$LAB_DIR/keepalived6.conf" <<CONF
virtual_server $V6 80 {
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    persistence_timeout 60
    persistence_granularity 64
    real_server 2001:db8::11 80 {
        TCP_CHECK {
            connect_timeout 0.5
        }
    }
    real_server 2001:db8::12 80 {
        TCP_CHECK {
            connect_timeout 0.5
        }
    }
}
virtual_server fwmark 6 {
    ip_family inet6
    lb_algo rr
    lb_kind DR
    real_server 2001:db8::11 {
    }
}
CONF
keepalived --config-test -f "$LAB_DIR/keepalived6.conf" >"$LAB_DIR/kcheck6.out" 2>&1 ||
  fail "keepalived --config-test refuses the IPv6 input: $(cat "$LAB_DIR/kcheck6.out")"
"$LBADM_BIN" --from-keepalived "$LAB_DIR/keepalived6.conf" >"$LAB_DIR/rules6" 2>"$LAB_DIR/import6.err" ||
  fail "IPv6 import: $(cat "$LAB_DIR/import6.err")"
grep -qx -- "-A -t \[$V6\]:80 -s rr -p 60 -M 64 --health check=tcp,interval=1,timeout=0.5,rise=1,fall=2" "$LAB_DIR/rules6" ||
  fail "the IPv6 service: $(cat "$LAB_DIR/rules6")"
grep -qx -- "-A -f 6 -6 -s rr --health check=none" "$LAB_DIR/rules6" || fail "the IPv6 fwmark service: $(cat "$LAB_DIR/rules6")"
lbadm_ -C
lbadm_ -R <"$LAB_DIR/rules6" || fail "lbadm -R refused the imported IPv6 rules: $(cat "$LAB_DIR/rules6")"
lbadm_ -L -n | grep -qx "FWM  6 IPv6 rr" || fail "-L -n: $(lbadm_ -L -n)"
wait_up 2
first=$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 3 "http://[$V6]/") || first=FAILED
case "$first" in real1|real2) ;; *) fail "IPv6 through the imported service: $first" ;; esac
for k in 1 2 3; do
  assert_eq "$first" "$(in_ns "$LAB_CLIENT" curl -6 -g -s -m 3 "http://[$V6]/")" "IPv6 request $k: the /64's real"
done
echo "ok: the imported IPv6 service carries IPv6 traffic, persistent by its /64"
exit 0
