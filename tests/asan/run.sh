#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer on real traffic: lbd, lbadm and lbd-decap
# built with both (and leak checking at exit) in their own build directory, then the
# integration scenarios listed below run against those binaries. A crash, a failed scenario or any sanitizer report fails the test.
# Usage: tests/asan/run.sh [TEST_NAME...]   (CTest runs it as `asan`; root)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${ASAN_BUILD_DIR:-$top/build/asan}
reports=$(mktemp -d /tmp/lbd-asan.XXXXXX)
trap 'rm -rf "$reports"' EXIT
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S "$top" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLBD_LTO=OFF -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$out" --target lbd lbadm lbd-decap lbd_xdp_pass > "$out/build.log" 2>&1 ||
  { echo "FAIL: the build failed; its end:" >&2; tail -n 40 "$out/build.log" >&2; exit 1; }
[[ $(ldd "$out/lbd") == *libasan* ]] || { echo "FAIL: $out/lbd is not built with ASan" >&2; exit 1; }
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$top/tests/asan/lsan.supp"
export LBD_BIN=$out/lbd LBADM_BIN=$out/lbadm LBD_DECAP_BIN=$out/lbd-decap
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  # The scenarios that reach different code: each forwarding method and tunnel, the fwmark
  # queue, ICMP and fragments, faults, hostile input, the handover, sync, the fast path and
  # workers, health, metrics, the importer. The rest drive the same code with other rules
  # (schedulers' distributions, coexistence variants): CI's time limit leaves them to the
  # regular runs.
  tests=(test_dr_payload test_nat test_nat_two_armed test_tun test_tun_gue_gre test_fwmark test_faults
         test_security_director test_security_decap test_takeover test_ha_keepalived test_offload
         test_workers test_sloppy_mh test_quiesce_delete test_health_sorry_exec test_health_tls_dns_udp
         test_metrics_status test_keepalived_import test_lbadm_daemon test_compat)
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
