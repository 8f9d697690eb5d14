#!/usr/bin/env bash
# ThreadSanitizer on the multi-worker daemon: builds lbd with -fsanitize=thread in its own
# build directory, then runs integration scenarios that exercise every path between the
# control thread and two workers — commands, listings, gathers, reloads, health changes,
# next hops, the fast path's folds, an interface lost and taken again, the checks' thread
# stalled — on real traffic. Any report fails the test.
# Usage: tests/tsan/run.sh [TEST_NAME...]   (CTest runs it as `tsan`; root, as the integration tests)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${TSAN_BUILD_DIR:-$top/build/tsan}
reports=$(mktemp -d /tmp/lbd-tsan.XXXXXX)
trap 'rm -rf "$reports"' EXIT
# Boost.Asio's fences are unknown to TSan (GCC warns; the health engine is one thread).
cmake -S "$top" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLBD_LTO=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -Wno-tsan" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
cmake --build "$out" --target lbd lbd_xdp_pass > "$out/build.log" 2>&1 ||
  { echo "FAIL: the build failed; its end:" >&2; tail -n 40 "$out/build.log" >&2; exit 1; }
[[ $(ldd "$out/lbd") == *libtsan* ]] || { echo "FAIL: $out/lbd is not built with TSan" >&2; exit 1; }
tests=("$@")
[ ${#tests[@]} -gt 0 ] ||
  tests=(test_workers test_offload test_health_sorry_exec test_lbadm_daemon test_interfaces test_health_watchdog)
for t in "${tests[@]}"; do
  echo "tsan: $t with 2 workers"
  TSAN_OPTIONS="halt_on_error=0 log_path=$reports/report" LBD_WORKERS=2 LBD_BIN="$out/lbd" \
    bash "$top/tests/integration/$t.sh" > "$reports/$t.log" 2>&1 || {
      # What failed (the scenario's FAIL line and what led to it), its end, and anything
      # TSan wrote: a report, or a runtime that could not start.
      grep -B 15 -A 3 -m 1 "^FAIL" "$reports/$t.log" >&2 || true
      echo "... its end:" >&2
      tail -n 20 "$reports/$t.log" >&2
      cat "$reports"/report* >&2 2>/dev/null || true
      echo "FAIL: $t under TSan" >&2
      exit 1
    }
done
if compgen -G "$reports/report*" > /dev/null; then
  cat "$reports"/report* >&2
  echo "FAIL: ThreadSanitizer reported" >&2
  exit 1
fi
echo "ok: no ThreadSanitizer report in ${#tests[@]} scenarios with 2 workers"
