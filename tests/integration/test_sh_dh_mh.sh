#!/usr/bin/env bash
# sh, dh and mh on real HTTP through DR, 40 client addresses. Expected reals written from
# the kernel's source: sh puts a client in bucket hash_32(address, 8) (ip_vs_sh.c, reals of
# weight 1 one bucket each in list order real3 real2 real1); dh buckets the destination,
# so every client of the VIP reaches the same real (ip_vs_dh.c). mh: each client sticks to
# its real, and when real2 is deleted its clients move while the others keep theirs
# (Maglev moves few: at least 90% here); -b mh-fallback is shown by -L and saved by -S.
. "$(dirname "$0")/common.sh"
dr_lab_http 3
CLIENTS=()
for k in $(seq 150 189); do
  in_ns "$LAB_CLIENT" ip addr add "198.18.0.$k/24" dev eth0
  CLIENTS+=("198.18.0.$k")
done

ip2int() { local IFS=.; read -r a b c d <<< "$1"; echo $(((a << 24) | (b << 16) | (c << 8) | d)); }
hash_32_8() { echo $((((($1) * 0x61C88647) & 0xFFFFFFFF) >> 24)); }  # include/linux/hash.h
LIST=(real3 real2 real1)  # IPVS list order: newest first
# answer FROM: the real that answers a request from client address FROM.
answer() { in_ns "$LAB_CLIENT" curl -s -m 3 --interface "$1" "http://$LAB_VIP/" || echo FAILED; }
setup() {
  lbadm_ -A -t "$LAB_VIP:80" -s "$@"
  for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")" -g -w 1; done
}

# --- sh
setup sh
wrong=0
for c in "${CLIENTS[@]}"; do
  want=${LIST[$(($(hash_32_8 "$(ip2int "$c")") % 3))]}
  for r in 1 2; do
    got=$(answer "$c")
    [ "$got" = "$want" ] || { echo "sh: $c got $got, the kernel's bucket says $want" >&2; wrong=$((wrong + 1)); }
  done
done
assert_eq 0 "$wrong" "sh: each of 40 clients twice to the real of its bucket"
lbadm_ -D -t "$LAB_VIP:80"

# --- dh
setup dh
want=${LIST[$(($(hash_32_8 "$(ip2int "$LAB_VIP")") % 3))]}
got=$(for c in "${CLIENTS[@]:0:12}"; do answer "$c"; done | sort | uniq -c | awk '{print $2, $1}')
assert_eq "$want 12" "$got" "dh: every client of the VIP to the real of the VIP's bucket"
lbadm_ -D -t "$LAB_VIP:80"

# --- mh
setup mh -b mh-fallback
assert_eq "TCP  198.18.0.100:80 mh (mh-fallback)" "$(lbadm_ -L -n | grep '^TCP')" "-L shows mh and its flag"
assert_eq "-A -t 198.18.0.100:80 -s mh -b mh-fallback" "$(lbadm_ -S -n | grep '^-A')" "-S saves mh and its flag"
declare -A first
unstuck=0
for c in "${CLIENTS[@]}"; do
  first[$c]=$(answer "$c")
  [ "$(answer "$c")" = "${first[$c]}" ] || unstuck=$((unstuck + 1))
done
assert_eq 0 "$unstuck" "mh: every client sticks to its real"
spread=$(for c in "${CLIENTS[@]}"; do echo "${first[$c]}"; done | sort -u | wc -l)
assert_eq 3 "$spread" "mh: the 40 clients spread over the 3 reals"
lbadm_ -d -t "$LAB_VIP:80" -r "$(lab_real_ip 2)"
others=0 kept=0 moved_off=0 real2=0
for c in "${CLIENTS[@]}"; do
  now=$(answer "$c")
  [ "$now" != real2 ] || fail "mh: $c still reaches the deleted real2"
  if [ "${first[$c]}" = real2 ]; then
    real2=$((real2 + 1))
    [ "$now" != FAILED ] && moved_off=$((moved_off + 1))
  else
    others=$((others + 1))
    [ "$now" = "${first[$c]}" ] && kept=$((kept + 1))
  fi
done
assert_eq "$real2" "$moved_off" "mh: real2's $real2 clients are served by the others"
[ $((kept * 10)) -ge $((others * 9)) ] || fail "mh: only $kept of $others clients of real1/real3 kept their real"
echo "ok: mh: $kept of $others clients of real1 and real3 kept their real"
