#!/usr/bin/env bash
# The layers' direction (CMakeLists.txt draws them): each folder includes only its own
# headers and those of the layers below it. Any other include is printed with its file and
# line, and fails the test.
# Usage: tests/layers.sh [TREE]   (CTest runs it as `layers`; no root)
set -euo pipefail
top=${1:-$(cd "$(dirname "$0")/.." && pwd)}
pure_health='health/(spec|state|protocols|check)\.hpp'
declare -A allowed=(
  [forwarding]='forwarding/'
  [scheduler]='scheduler/'
  [lb/base]='lb/base/|forwarding/'
  [health]='health/|lb/base/|forwarding/'
  [health/checks]='health/|lb/base/|forwarding/'
  [lb/core]="lb/core/|lb/base/|forwarding/|scheduler/|$pure_health"
  [lb/ctl]="lb/ctl/|lb/core/|lb/base/|forwarding/|scheduler/|$pure_health"
  [lb/io]="lb/io/|lb/core/|lb/base/|forwarding/|scheduler/|$pure_health"
  [lb/daemon]='lb/daemon/|lb/io/|lb/ctl/|lb/core/|lb/base/|forwarding/|scheduler/|health/'
  [lb/main]='lb/main/|lb/daemon/|lb/io/|lb/ctl/|lb/core/|lb/base/|forwarding/|scheduler/|health/'
)
bad=0 files=0
for dir in "${!allowed[@]}"; do
  while IFS= read -r -d '' f; do
    files=$((files + 1))
    while IFS=: read -r line inc; do
      [[ $inc =~ ^(${allowed[$dir]}) ]] && continue
      echo "FAIL: ${f#"$top"/}:$line includes \"$inc\": $dir may include only ${allowed[$dir]//|/ }" >&2
      bad=1
    done < <(grep -noE '^#include "[^"]+"' "$f" | sed -E 's/^([0-9]+):#include "([^"]+)"/\1:\2/')
  done < <(find "$top/$dir" -maxdepth 1 -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.c' \) -print0)
done
[ "$files" -gt 0 ] || { echo "FAIL: no sources under $top" >&2; exit 1; }
[ "$bad" = 0 ] || exit 1
echo "ok: $files files, every include points down the layers"
