#!/usr/bin/env bash
# Long fuzzing (not CI: CI runs tests/fuzz/run.sh's short run): every harness for RUNS
# executions (default 10^7, at most FUZZ_SECONDS each, default 3600), then each corpus
# minimized into tests/fuzz/corpus/<harness> — kept in the repository, where the short
# run starts from — and the coverage printed (libFuzzer's edges and features).
# Usage: scripts/fuzz-long.sh [RUNS]   (clang and libFuzzer: scripts/deps.sh installs them)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10000000}
out=${FUZZ_BUILD_DIR:-$top/build/fuzz-long}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
FUZZ_SECONDS=${FUZZ_SECONDS:-3600} FUZZ_BUILD_DIR=$out bash "$top/tests/fuzz/run.sh" "$runs" | tee "$log"
echo "coverage after $runs executions per harness:"
for h in frame cli dump health control rules; do
  mkdir -p "$top/tests/fuzz/corpus/$h"
  (cd "$out" && ./"fuzz_$h" -merge=1 "$top/tests/fuzz/corpus/$h" "corpus_$h" >/dev/null 2>&1)
  stats=$(cd "$out" && ./"fuzz_$h" -runs=0 "$top/tests/fuzz/corpus/$h" 2>&1 | grep -o "cov: [0-9]* ft: [0-9]*" | tail -n 1)
  echo "  fuzz_$h: ${stats:-?}, corpus $(ls "$top/tests/fuzz/corpus/$h" | wc -l) inputs"
done
