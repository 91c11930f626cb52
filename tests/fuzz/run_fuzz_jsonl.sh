#!/usr/bin/env bash
# Builds fuzz_jsonl_record (data/jsonl.cpp + protocol, instrumented) with clang in build-fuzz/ and
# runs RUNS executions (default 10,000,000) on one job, niced. New inputs go to build-fuzz/corpus-jsonl
# (the committed seeds in tests/fuzz/corpus-jsonl are only read); crashes land in build-fuzz/ as
# crash-* files (turn each into a test in tests/unit/data). Usage: tests/fuzz/run_fuzz_jsonl.sh [RUNS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
runs="${1:-10000000}"
build="$root/build-fuzz"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCOORDEXP_FUZZ=ON \
  -DCOORDEXP_TESTS=OFF -DCOORDEXP_PCH=OFF >/dev/null
nice -n 5 cmake --build "$build" -j2 --target fuzz_jsonl_record
mkdir -p "$build/corpus-jsonl"
cd "$build"
rc=0
ASAN_OPTIONS="${ASAN_OPTIONS:-malloc_context_size=0}" \
nice -n 10 ./tests/fuzz/fuzz_jsonl_record -runs="$runs" -max_len=4096 -print_final_stats=1 \
  -dict="$root/tests/fuzz/jsonl.dict" "$build/corpus-jsonl" "$root/tests/fuzz/corpus-jsonl" \
  >fuzz-jsonl.log 2>&1 || rc=$?
tail -n 3 fuzz-jsonl.log
grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|property violated|crash-" fuzz-jsonl.log || true
exit "$rc"
