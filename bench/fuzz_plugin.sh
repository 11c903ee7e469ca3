#!/usr/bin/env bash
# Fuzzes the broker plugin's validation entry point (bench/fuzz_payload.cc,
# libFuzzer with AddressSanitizer and UndefinedBehaviorSanitizer, clang from
# Debian) for a fixed number of executions, and reports executions, crashes
# and the run's speed. Builds in its own tree (default build-fuzz); not part
# of ctest or CI: 10 million executions take minutes.
#
#   ./bench/fuzz_plugin.sh [EXECUTIONS]        # default 10000000
#   FUZZ_BUILD_DIR=/tmp/fz FUZZ_OUT=var/fuzz ./bench/fuzz_plugin.sh 100000
#
# Crashing inputs are kept in FUZZ_OUT (default var/fuzz) as crash-*; the
# corpus grown by the run in FUZZ_OUT/corpus. Exit status 1 when anything
# crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${1:-10000000}
[[ "$RUNS" =~ ^[0-9]{1,10}$ ]] && ((RUNS >= 1)) || {
  echo "fuzz_plugin.sh: EXECUTIONS '$RUNS' must be a whole number, 1 or more" >&2
  exit 2
}
BUILD=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
OUT=${FUZZ_OUT:-$ROOT/var/fuzz}
command -v clang++ >/dev/null || { echo "fuzz_plugin.sh: clang++ is missing (apt-get install clang)" >&2; exit 2; }

SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
  -DDERMS_FUZZ=ON -DCMAKE_CXX_FLAGS="$SAN" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target derms-fuzz-payload >/dev/null

mkdir -p "$OUT/corpus"
rm -f "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-*
set +e
"$BUILD/bench/derms-fuzz-payload" -runs="$RUNS" -max_len=4096 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$OUT/" "$OUT/corpus" > "$OUT/fuzz.log" 2>&1
rc=$?
set -e
executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/fuzz.log" | tail -1)
speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$OUT/fuzz.log" | tail -1)
crashes=$(find "$OUT" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' | wc -l)
corpus=$(find "$OUT/corpus" -type f | wc -l)
echo "fuzz: derms-fuzz-payload (broker::Guard::CheckMessage), ${executions:-?} executions" \
  "of $RUNS asked, ${speed:-?}/s, corpus $corpus inputs, crashes $crashes (exit $rc)"
echo "  log: $OUT/fuzz.log"
[ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]
