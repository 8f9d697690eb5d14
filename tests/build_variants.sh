#!/usr/bin/env bash
# The build as a user may make it: Release (-O3, LTO) with GCC, and RelWithDebInfo and
# Release with clang, each with warnings as errors (the code is clean under all of them,
# no pragma hides a warning), each running the unit tests. CTest's `build_variants`; the
# builds are kept in VARIANTS_DIR (incremental on a second run).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${VARIANTS_DIR:?set VARIANTS_DIR (ctest does)}
for v in gcc:Release clang:RelWithDebInfo clang:Release; do
  cc=${v%%:*} type=${v#*:}
  b="$dir/$cc-$type"
  if [ "$cc" = clang ]; then comp=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++); else comp=(-DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++); fi
  echo "== $cc $type"
  cmake -S "$top" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DLBD_WERROR=ON "${comp[@]}" >/dev/null
  # The programs and the unit tests (the benches are the main build's).
  if ! cmake --build "$b" -j "$(nproc)" --target lbd lbadm lbd-decap unit_tests >"$b.log" 2>&1; then
    grep -E "error|warning" "$b.log" | head -40
    echo "FAIL: the $cc $type build (log: $b.log)"
    exit 1
  fi
  "$b/tests/unit_tests" >"$b.unit.log" 2>&1 || { tail -30 "$b.unit.log"; echo "FAIL: unit tests of the $cc $type build"; exit 1; }
  echo "ok: $cc $type: built without warnings; unit tests: $(grep -E "^(All tests passed|test cases)" "$b.unit.log" | tail -1)"
done
