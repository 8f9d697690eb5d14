#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan + UBSan) from the project's own CMake
# targets (-DLBD_FUZZ=ON, in a build directory of their own) and runs each for a bounded
# number of inputs and at most FUZZ_SECONDS (20). A crash, a sanitizer report or a broken
# invariant fails the test; the corpus grows in the build directory between runs, starting
# from the one kept in tests/fuzz/corpus (which scripts/fuzz-long.sh refreshes).
# Usage: tests/fuzz/run.sh [RUNS per harness]   (CTest runs it as `fuzz`)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_BUILD_DIR:-$top/build/fuzz}
runs=${1:-${FUZZ_RUNS:-1000000}}
harnesses=(frame cli dump health control rules sync keepalived)
# Warnings are not errors here: this build is clang's, the project's gate is GCC's.
# (-fno-sanitize=function: clang 14 cannot emit that check in a coroutine under
# -fsanitize=fuzzer-no-link, "Cannot represent a difference across sections".)
cmake -S "$top" -B "$out" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=Debug -DLBD_FUZZ=ON -DLBD_WERROR=OFF \
  -DCMAKE_CXX_FLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-sanitize=function" >/dev/null
cmake --build "$out" --target "${harnesses[@]/#/fuzz_}" > "$out/build.log" 2>&1 ||
  { echo "FAIL: the build failed; its end:" >&2; tail -n 40 "$out/build.log" >&2; exit 1; }
for h in "${harnesses[@]}"; do
  mkdir -p "$out/corpus_$h" "$top/tests/fuzz/corpus/$h"
  echo "fuzz_$h: $runs inputs"
  (cd "$out" && ./"fuzz_$h" -runs="$runs" -max_total_time="${FUZZ_SECONDS:-20}" -max_len=2048 \
     -seed=1 "corpus_$h" "$top/tests/fuzz/corpus/$h" 2>&1 | tail -n 3)
done
echo "fuzz: no finding in any harness"
