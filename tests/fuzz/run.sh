#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (ASan + UBSan) and runs each for a bounded
# number of inputs and at most FUZZ_SECONDS (20). A crash, a sanitizer report or a broken
# invariant fails the test; the corpus grows in the build directory between runs, starting
# from the one kept in tests/fuzz/corpus (which scripts/fuzz-long.sh refreshes).
# Usage: tests/fuzz/run.sh [RUNS per harness]   (CTest runs it as `fuzz`)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_BUILD_DIR:-$top/build/fuzz}
runs=${1:-${FUZZ_RUNS:-1000000}}
mkdir -p "$out"
srcs=(forwarding/packet.cpp forwarding/checksum.cpp forwarding/dr.cpp forwarding/arp.cpp
      forwarding/segment.cpp forwarding/icmp.cpp forwarding/nat.cpp forwarding/ipip.cpp
      forwarding/decap.cpp health/spec.cpp health/protocols.cpp scheduler/registry.cpp scheduler/rr.cpp
      scheduler/wrr.cpp scheduler/lc.cpp scheduler/wlc.cpp lb/tcp_state.cpp lb/conn_table.cpp
      lb/service_table.cpp lb/data_path.cpp lb/ipvsadm_cli.cpp lb/control_protocol.cpp
      lb/listing.cpp lb/commands.cpp lb/control_server.cpp lb/log.cpp lb/host.cpp)
flags=(-std=c++20 -O1 -g -fno-sanitize-recover=all -I"$top")
san=address,undefined
# The shared sources once (two at a time), then one link per harness.
mkdir -p "$out/obj"
printf '%s\n' "${srcs[@]}" | xargs -P 2 -I{} sh -c \
  'clang++ "$@" -c "'"$top"'/{}" -o "'"$out"'/obj/$(echo {} | tr / _).o"' _ \
  "${flags[@]}" -fsanitize=fuzzer-no-link,$san
for h in frame cli dump health control rules; do
  clang++ "${flags[@]}" -fsanitize=fuzzer,$san "$top/tests/fuzz/fuzz_$h.cpp" "$out"/obj/*.o \
    -lfmt -lcrypto -o "$out/fuzz_$h"
  mkdir -p "$out/corpus_$h" "$top/tests/fuzz/corpus/$h"
  echo "fuzz_$h: $runs inputs"
  (cd "$out" && ./"fuzz_$h" -runs="$runs" -max_total_time="${FUZZ_SECONDS:-20}" -max_len=2048 \
     -seed=1 "corpus_$h" "$top/tests/fuzz/corpus/$h" 2>&1 | tail -n 3)
done
echo "fuzz: no finding in any harness"
