#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer on real traffic: lbd, lbadm, lbd-decap and
# the unit tests built with both (and leak checking at exit) by clang, warnings as errors,
# in their own build directory; the unit tests run, then the integration scenarios listed
# below against those binaries. A warning, a crash, a failed test or scenario or any
# sanitizer report fails the test. This is also CI's clang build: the project builds
# without a warning under clang as under GCC (the main build).
# Usage: tests/asan/run.sh [TEST_NAME...]   (CTest runs it as `asan`; root)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${ASAN_BUILD_DIR:-$top/build/asan}
reports=$(mktemp -d /tmp/lbd-asan.XXXXXX)
trap 'rm -rf "$reports"' EXIT
# (-fno-sanitize=function: clang 14 cannot emit that check in a coroutine, "Cannot represent
# a difference across sections"; GCC has no such check.)
flags="-fsanitize=address,undefined -fno-sanitize=function -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S "$top" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLBD_LTO=OFF -DLBD_WERROR=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$out" --target lbd lbadm lbd-decap lbd_xdp_pass unit_tests > "$out/build.log" 2>&1 ||
  { echo "FAIL: the build failed; its end:" >&2; grep -E "error|warning" "$out/build.log" | head -n 40 >&2; tail -n 20 "$out/build.log" >&2; exit 1; }
# clang links its sanitizer runtimes statically: the binary holds them.
[[ $(nm "$out/lbd") == *__asan_init* ]] || { echo "FAIL: $out/lbd is not built with ASan" >&2; exit 1; }
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$top/tests/asan/lsan.supp"
"$out/tests/unit_tests" > "$reports/unit.log" 2>&1 || {
  tail -n 40 "$reports/unit.log" >&2
  cat "$reports"/asan* "$reports"/ubsan* 2>/dev/null | head -n 80 >&2 || true
  echo "FAIL: unit tests with ASan+UBSan" >&2
  exit 1
}
echo "asan: unit tests: $(grep -E "^(All tests passed|test cases)" "$reports/unit.log" | tail -n 1)"
export LBD_BIN=$out/lbd LBADM_BIN=$out/lbadm LBD_DECAP_BIN=$out/lbd-decap
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  # The scenarios that reach different code: each forwarding method and tunnel, the fwmark
  # queue, ICMP and fragments, faults, hostile input, the handover and sync, the fast path
  # and workers, health, metrics, the control socket. The rest drive the same code with
  # other rules (schedulers' distributions, coexistence variants, the importer's rules,
  # which the unit tests and the fuzzer cover): CI's time limit leaves them to the regular runs.
  tests=(test_dr_payload test_nat test_ipv6 test_tun6 test_tun_gue_gre test_fwmark test_faults test_security_director
         test_security_decap test_takeover test_workers test_health_sorry_exec test_metrics_status
         test_lbadm_daemon)
fi
# A scenario's own checks under ASan's slowdown (2-3x) may miss a deadline once: it runs
# a second time, and its first failure is printed. Twice is a failure; a sanitizer report,
# from either run, always is.
for t in "${tests[@]}"; do
  echo "asan: $t"
  bash "$top/tests/integration/$t.sh" > "$reports/$t.log" 2>&1 && continue
  echo "asan: $t failed once: $(grep -E '^FAIL' "$reports/$t.log" | head -n 1); running it again"
  bash "$top/tests/integration/$t.sh" > "$reports/$t.again.log" 2>&1 || {
    grep -E '^(ok|FAIL)' "$reports/$t.again.log" | tail -n 5 >&2
    tail -n 30 "$reports/$t.again.log" >&2
    cat "$reports"/asan* "$reports"/ubsan* 2>/dev/null | head -n 80 >&2 || true
    echo "FAIL: $t with ASan+UBSan" >&2
    exit 1
  }
done
if compgen -G "$reports/asan*" > /dev/null || compgen -G "$reports/ubsan*" > /dev/null; then
  cat "$reports"/asan* "$reports"/ubsan* 2>/dev/null | head -n 200 >&2
  echo "FAIL: sanitizer reports" >&2
  exit 1
fi
echo "ok: ${#tests[@]} scenarios with ASan+UBSan, no report"
