#!/usr/bin/env bash
# GUE and GRE tunnels (-i --tun-type gue|gre) end to end: three reals run lbd-decap with
# --gue-port 6080 (this host has no fou or ip_gre module) and answer the client directly.
#
#   client ── bridge ── director (lbd) ─┬─ real1: GUE, UDP checksum (--tun-csum)
#                                      ├─ real2: GRE with its checksum (--tun-csum)
#                                      └─ real3: GUE without checksum, GRE without
#
# What reaches each real is captured on its eth0: UDP to 6080 with a checksum, or IP
# protocol 47 with the C bit, and the SYN inside is the client's byte for byte. Downloads
# (50 MB, and one per real), 3 MB uploads and UDP datagrams cross each tunnel intact; a DF
# ping bigger than a GRE tunnel allows gets frag-needed with 1500 - 28; -L --tun-info and
# -S print ipvsadm's formats, and -S's output restores to the same rules.
. "$(dirname "$0")/common.sh"
: "${LBD_DECAP_BIN:?set LBD_DECAP_BIN to the lbd-decap binary (ctest does)}"
lab_init
lab_create 3
head -c 52428800 /dev/urandom > "$LAB_DIR/big"
LAB_DECAP_OPTS="--gue-port 6080"
for i in 1 2 3; do
  ns=$(lab_real_ns "$i")
  lab_tun_real "$i"
  lab_nginx "$i"
  lab_bg "$ns" socat TCP-LISTEN:7,fork,reuseaddr EXEC:cat
  lab_bg "$ns" socat "UDP-RECVFROM:53,bind=$LAB_VIP,fork" EXEC:cat
done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; lab_wait_port "$(lab_real_ns "$i")" 7; done
# Full checksums from the client, so the SYNs can be compared byte for byte.
in_ns "$LAB_CLIENT" ethtool -K eth0 tx off >/dev/null

lab_lbd
R1=$(lab_real_ip 1) R2=$(lab_real_ip 2) R3=$(lab_real_ip 3)
lbadm_ -A -t "$LAB_VIP:80" -s rr
lbadm_ -a -t "$LAB_VIP:80" -r "$R1" -i --tun-type gue --tun-port 6080 --tun-csum
lbadm_ -a -t "$LAB_VIP:80" -r "$R2" -i --tun-type gre --tun-csum
lbadm_ -a -t "$LAB_VIP:80" -r "$R3" -i --tun-type gue --tun-port 6080
lbadm_ -A -t "$LAB_VIP:7" -s rr
lbadm_ -a -t "$LAB_VIP:7" -r "$R1" -i --tun-type gre
lbadm_ -a -t "$LAB_VIP:7" -r "$R2" -i --tun-type gue --tun-port 6080 --tun-remcsum
lbadm_ -a -t "$LAB_VIP:7" -r "$R3" -i --tun-type gre --tun-csum
lbadm_ -A -u "$LAB_VIP:53" -s rr
lbadm_ -a -u "$LAB_VIP:53" -r "$R1" -i --tun-type gue --tun-port 6080 --tun-nocsum
lbadm_ -a -u "$LAB_VIP:53" -r "$R2" -i --tun-type gre --tun-nocsum
lbadm_ -a -u "$LAB_VIP:53" -r "$R3" -i --tun-type gue --tun-port 6080 --tun-csum

# Path MTU on 1500-byte links: GRE with checksum costs 28 bytes (IPVS: 20 + gre_calc_hlen),
# GUE 32. A ping goes to one of the VIP's reals (by a hash of its echo id): six pings, the
# MTUs told collected. First, before uploads teach the client's kernel a path MTU.
mtus=$(for k in 1 2 3 4 5 6; do
  in_ns "$LAB_CLIENT" ping -M do -s 1472 -c 1 -W 2 "$LAB_VIP" 2>&1 | grep -o "mtu = [0-9]*" || true
done | sort -u | tr '\n' ' ')
case "$mtus" in
  *"mtu = 1468"* | *"mtu = 1472"* | *"mtu = 1476"*) echo "ok: DF pings too big for the tunnels: told $mtus" ;;
  *) fail "ping -M do -s 1472: expected frag-needed with 1500 minus a tunnel's headers, got '$mtus'" ;;
esac

# What each real receives: its outer packets, and the SYNs out of the tunnel.
syns_through_tunnels "through GUE and GRE" "udp dst port 6080 or ip proto 47"

# The carriers, from the captures' headers (-v prints the checksums tcpdump verified).
outer() { tcpdump -r "$LAB_DIR/outer$1.pcap" -n -vv 2>/dev/null; }
n=$(outer 1 | grep -c "\.6080: \[udp sum ok\]") || true
[ "$n" -ge 2 ] || fail "real1 (GUE --tun-csum): expected UDP to 6080 with a checksum that verifies: $(outer 1 | head -n 4)"
echo "ok: real1 receives GUE in UDP to port 6080 with a verified checksum ($n packets)"
n=$(outer 2 | grep -c "GREv0, Flags \[checksum present\]") || true
[ "$n" -ge 2 ] || fail "real2 (GRE --tun-csum): expected GRE with its checksum: $(outer 2 | head -n 4)"
echo "ok: real2 receives GRE with the checksum flag ($n packets)"
n=$(outer 3 | grep -c "\.6080: \[no cksum\]") || true
[ "$n" -ge 2 ] || fail "real3 (GUE --tun-nocsum): expected UDP to 6080 without a checksum: $(outer 3 | head -n 4)"
echo "ok: real3 receives GUE in UDP to port 6080 without a checksum ($n packets)"

download_matches "$LAB_DIR/big" "http://$LAB_VIP/big" "50 MB download (request through the tunnel)"
for i in 1 2 3; do  # rr: one blob from each real, each through its own tunnel
  out=$(in_ns "$LAB_CLIENT" curl -s -m 10 "http://$LAB_VIP/blob" | sha256sum | cut -d' ' -f1)
  grep -q "$out" <(for j in 1 2 3; do sha256sum < "$LAB_DIR/nginx$j/html/blob"; done) ||
    fail "blob download $i matches no real's"
done
echo "ok: a 1 MB download from each real intact"
# real3's GUE without a checksum is the XDP program's too (GUE and GRE with checksums, lbd's).
if [ "${LBD_OFFLOAD:-xdp}" != off ]; then
  n=$(lbadm_ --lbd-counters | awk '$1 == "xdp_forwarded" {print $2}')
  [ "${n:-0}" -gt 0 ] || fail "no packet went through the XDP flow cache (xdp_forwarded ${n:-none})"
  echo "ok: the fast path forwarded $n packets into the tunnels"
fi
tcp_round_trips 7 "through GRE, GUE (remcsum) and GRE with checksum (uploads)"
udp_round_trips 53 "through GUE and GRE"
udp_round_trips 53 "through GUE and GRE in IP fragments (4 KB)" 3000

# ipvsadm's formats, and -S restores to the same rules.
listing=$(lbadm_ -L -n --tun-info -t "$LAB_VIP:80")
grep -qx "  -> $R1:80 *Tunnel  gue:6080:+c   1 .*" <<< "$listing" || fail "--tun-info (real1): $listing"
grep -qx "  -> $R2:80 *Tunnel  gre:+c        1 .*" <<< "$listing" || fail "--tun-info (real2): $listing"
grep -qx "  -> $R3:80 *Tunnel  gue:6080:-c   1 .*" <<< "$listing" || fail "--tun-info (real3): $listing"
echo "ok: -L -n --tun-info: gue:6080:+c, gre:+c, gue:6080:-c"
saved=$(lbadm_ -S -n)
grep -qx -- "-a -t $LAB_VIP:7 -r $R2:7 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum" <<< "$saved" ||
  fail "-S (GUE remcsum): $saved"
grep -qx -- "-a -u $LAB_VIP:53 -r $R2:53 -i -w 1 --tun-type gre --tun-nocsum" <<< "$saved" ||
  fail "-S (GRE nocsum): $saved"
lbadm_ -C
echo "$saved" | lbadm_ -R
assert_eq "$saved" "$(lbadm_ -S -n)" "-S output restores with -R to the same rules"
got=$(count_answers 3 | tr '\n' ' ')
assert_eq "real1 1 real2 1 real3 1 " "$got" "the restored tunnels carry traffic"
