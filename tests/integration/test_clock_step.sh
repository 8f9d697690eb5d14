#!/usr/bin/env bash
# The wall clock stepped (NTP's step, an operator's date -s), forward a day and back two:
# lbd keeps time by the monotonic clock only, so nothing moves. Here only lbd's own wall
# clock steps (libfaketime, monotonic left alone), not the machine's: an idle connection
# neither expires early (forward) nor lives on (back), a persistent client stays on its
# real, no check fails or flaps, and --lbd-health's "Since" and "Checked" stay seconds.
. "$(dirname "$0")/common.sh"
lab_init
lab_create 3
for i in 1 2 3; do lab_dr_real "$i"; lab_nginx "$i"; done
for i in 1 2 3; do lab_wait_port "$(lab_real_ns "$i")" 80; done
FAKE=$(dpkg -L libfaketime 2>/dev/null | grep 'libfaketimeMT.so.1$') || fail "libfaketime is not installed"
CLOCK=$LAB_DIR/clock
echo "+0" > "$CLOCK"
REAL_LBD=${LBD_BIN:-$(command -v lbd)}
# An ASan build wants its runtime first; libfaketime comes first here.
cat > "$LAB_DIR/lbd-faketime" <<WRAP
#!/bin/bash
export LD_PRELOAD=$FAKE FAKETIME_TIMESTAMP_FILE=$CLOCK FAKETIME_CACHE_DURATION=1 DONT_FAKE_MONOTONIC=1
export ASAN_OPTIONS=\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}verify_asan_link_order=0
exec "$REAL_LBD" "\$@"
WRAP
chmod +x "$LAB_DIR/lbd-faketime"
LBD_BIN=$LAB_DIR/lbd-faketime lab_lbd
grep -q libfaketime "/proc/$LAB_LBD_PID/maps" || fail "lbd should run with libfaketime"
step() {  # step OFFSET: lbd's wall clock is now OFFSET from the real one
  echo "$1" > "$CLOCK"
  local real fake
  real=$(date +%s)
  fake=$(LD_PRELOAD=$FAKE FAKETIME_TIMESTAMP_FILE=$CLOCK DONT_FAKE_MONOTONIC=1 date +%s)
  [ $((fake - real)) -ge $(($2 - 5)) ] && [ $((fake - real)) -le $(($2 + 5)) ] ||
    fail "the fake clock should be $2 s off: $((fake - real))"
  sleep 1.5  # lbd reads the file again within FAKETIME_CACHE_DURATION (1 s)
  echo "ok: lbd's wall clock stepped by $1"
}
counter() { lbadm_ --lbd-counters | awk -v k="$1" '$1 == k {print $2}'; }
lbadm_ --set 7 0 0  # an idle TCP connection expires after 7 s
lbadm_ -A -t "$LAB_VIP:80" -s rr -p 60 --health "check=tcp,interval=0.5,timeout=0.3,rise=1,fall=1"
for i in 1 2 3; do lbadm_ -a -t "$LAB_VIP:80" -r "$(lab_real_ip "$i")"; done
sleep 1
first=$(count_answers 3 | tr '\n' ' ')
[[ $first =~ ^real[123]\ 3\ $ ]] || fail "a persistent client should stay on one real: $first"
echo "ok: the persistent client is on ${first% 3 }"
lab_bg "$LAB_CLIENT" socat "TCP:$LAB_VIP:80" EXEC:"sleep 60"
t0=$(date +%s%N)
held() { lbadm_ -L -n -c | grep -c "^TCP .* ESTABLISHED .*$LAB_VIP:80" || true; }
sleep 0.3
assert_eq 1 "$(held)" "an idle connection held"
failures0=$(counter health_check_failures)
health_sane() {  # every real UP, "Since" and "Checked" a few seconds at most
  local h bad
  h=$(lbadm_ --lbd-health)
  [ "$(echo "$h" | grep -cE -- '-> .* UP ')" = 3 ] || fail "$1: every real should be UP: $h"
  bad=$(echo "$h" | awk '$1 == "->" && ($4 + 0 > 30 || $5 + 0 > 2) {print}')
  [ -z "$bad" ] || fail "$1: Since/Checked should be seconds: $bad"
  echo "ok: $1: every real UP, checked within 2 s"
}
health_sane "before"

step "+1d" 86400
assert_eq 1 "$(held)" "a day forward: the idle connection has not expired"
assert_eq "$first" "$(count_answers 3 | tr '\n' ' ')" "a day forward: the persistent client stays on its real"
health_sane "a day forward"

step "-1d" -86400
assert_eq 1 "$(held)" "a day back: the idle connection is still there"
assert_eq "$first" "$(count_answers 3 | tr '\n' ' ')" "a day back: the persistent client stays on its real"
health_sane "a day back"
assert_eq "$failures0" "$(counter health_check_failures)" "no check failed through the steps"

# The held connection's last packet was at t0: it expires 7 s after, not a day later.
gone=0
for k in $(seq 1 60); do [ "$(held)" = 0 ] && { gone=1; break; }; sleep 0.2; done
t1=$(date +%s%N)
assert_eq 1 "$gone" "a day back: the idle connection still expires"
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -ge 6000 ] || fail "it expired after $ms ms, before its 7 s"
echo "ok: the idle connection expired after $ms ms (timeout 7 s)"
