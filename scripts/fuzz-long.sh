#!/usr/bin/env bash
# Long fuzzing (not CI: CI runs tests/fuzz/run.sh's short run): every harness for RUNS
# executions (default 10^7, at most FUZZ_SECONDS each, default 3600), FUZZ_JOBS harnesses
# at a time (default 1), then each corpus minimized into tests/fuzz/corpus/<harness> —
# kept in the repository, where the short run starts from — and the coverage printed
# (libFuzzer's edges and features). A finding stops it, with the input's file named.
# Usage: scripts/fuzz-long.sh [RUNS]   (clang and libFuzzer: scripts/deps.sh installs them)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10000000}
out=${FUZZ_BUILD_DIR:-$top/build/fuzz-long}
harnesses=(frame cli dump health control rules)
# The harnesses built from the tree as it is now (one input each: a build, not a run).
FUZZ_BUILD_DIR=$out bash "$top/tests/fuzz/run.sh" 1 >/dev/null
export out runs top
export FUZZ_SECONDS=${FUZZ_SECONDS:-3600}
# shellcheck disable=SC2016
printf '%s\n' "${harnesses[@]}" | xargs -P "${FUZZ_JOBS:-1}" -I{} bash -c '
  cd "$out" && mkdir -p corpus_{} &&
  ./fuzz_{} -runs="$runs" -max_total_time="$FUZZ_SECONDS" -max_len=2048 -seed=1 corpus_{} "$top/tests/fuzz/corpus/{}" \
    > "fuzz_{}.log" 2>&1 || { echo "fuzz_{}: FINDING (see $out/fuzz_{}.log)" >&2; tail -n 30 "fuzz_{}.log" >&2; exit 255; }
  echo "fuzz_{}: $(grep -E "^Done [0-9]+ runs" "fuzz_{}.log")"'
echo "coverage after $runs executions per harness:"
for h in "${harnesses[@]}"; do
  mkdir -p "$top/tests/fuzz/corpus/$h"
  (cd "$out" && ./"fuzz_$h" -merge=1 "$top/tests/fuzz/corpus/$h" "corpus_$h" >/dev/null 2>&1)
  stats=$(cd "$out" && ./"fuzz_$h" -runs=0 "$top/tests/fuzz/corpus/$h" 2>&1 | grep -o "cov: [0-9]* ft: [0-9]*" | tail -n 1)
  echo "  fuzz_$h: ${stats:-?}, corpus $(ls "$top/tests/fuzz/corpus/$h" | wc -l) inputs"
done
