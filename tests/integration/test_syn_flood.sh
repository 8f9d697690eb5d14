#!/usr/bin/env bash
# The SYN-flood defence, short (scripts/bench/synflood.sh is the long version): 5 s of
# spoofed SYNs at lbd's saturation rate (measured first) into a DR and a NAT service of an
# lbd with a 20,000-entry table, while a client keeps making new connections. The flood fills the
# table and goes on evicting its own embryos; at least 90% of the client's requests during
# the flood are answered, service is whole within 1 s after it, lbd's memory stays flat
# (the table is fixed) and lbd is still running.
. "$(dirname "$0")/common.sh"
out=$(FLOOD_SECONDS=${FLOOD_SECONDS:-5} bash "$HERE/../../scripts/bench/synflood.sh" 5000000 20000)
echo "$out" | grep "^result:"
get() { echo "$out" | awk -v k="$1" '$1 == "result:" && $2 == k {print $3}'; }
assert_eq yes "$(get lbd_running)" "lbd survived the flood"
[ "$(get syns_sent)" -ge 300000 ] || fail "the flood sent only $(get syns_sent) SYNs"
echo "ok: $(get syns_sent) spoofed SYNs sent at $(get flood_rate_per_s)/s (lbd's saturation: $(get saturation_syns_per_s)/s)"
table=$(get table_during)
[ "$table" -ge 18000 ] && [ "$table" -le 20000 ] || fail "the flood should fill the 20,000-entry table (it held $table)"
echo "ok: the table was full during the flood ($table of 20000) and never more"
[ "$(get embryonic_evicted)" -gt 50000 ] || fail "the flood's embryos should make room for new SYNs (evicted $(get embryonic_evicted))"
echo "ok: $(get embryonic_evicted) embryonic entries gave their place to new connections"
made=$(get legit_made) answered=$(get legit_answered)
[ "$made" -ge 10 ] || fail "the client made only $made requests during the flood"
[ $((answered * 10)) -ge $((made * 9)) ] || fail "only $answered of $made legitimate requests answered during the flood"
echo "ok: $answered of $made legitimate requests answered during the flood (>= 90%)"
rec=$(get recovered_after_s)
[ "$rec" != none ] && awk -v r="$rec" 'BEGIN {exit !(r <= 1.0)}' || fail "service not whole 1 s after the flood (recovered: $rec)"
echo "ok: whole service ${rec} s after the flood"
assert_eq 20 "$(get after_flood_answered)" "20 of 20 requests answered after the flood"
grow=$(( $(get rss_kb_after) - $(get rss_kb_before) ))
[ "$grow" -le 4096 ] || fail "lbd's memory grew by $grow KB during the flood"
echo "ok: lbd's resident memory grew $grow KB (the table is allocated at start)"
