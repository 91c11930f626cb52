#!/usr/bin/env bash
# Builds fuzz_channel_b (parse_ids -> matching -> build_y_in, all sources instrumented) with clang in
# build-fuzz/ and runs RUNS executions (default 10,000,000) on one job, niced. New inputs go to
# build-fuzz/corpus-channel-b; crashes land in build-fuzz/ as crash-* files (turn each into a test in
# tests/unit/protocol). Needs the Qwen3 tokenizer ($COORDEXP_TOKENIZER_DIR or .cache/tokenizer-qwen3).
# Usage: tests/fuzz/run_fuzz_channel_b.sh [RUNS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
runs="${1:-10000000}"
build="$root/build-fuzz"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCOORDEXP_FUZZ=ON \
  -DCOORDEXP_TESTS=OFF -DCOORDEXP_PCH=OFF >/dev/null
nice -n 5 cmake --build "$build" -j2 --target fuzz_channel_b
export COORDEXP_TOKENIZER_DIR="${COORDEXP_TOKENIZER_DIR:-$root/.cache/tokenizer-qwen3}"
mkdir -p "$build/corpus-channel-b"
cd "$build"
rc=0
# No allocation stack traces and no entropic scheduling: ~25% more executions per second here.
ASAN_OPTIONS="${ASAN_OPTIONS:-malloc_context_size=0}" \
nice -n 5 ./tests/fuzz/fuzz_channel_b -runs="$runs" -max_len=256 -entropic=0 -print_final_stats=1 \
  "$build/corpus-channel-b" >fuzz-channel-b.log 2>&1 || rc=$?
tail -n 3 fuzz-channel-b.log
grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|ERROR|property violated|crash-" fuzz-channel-b.log || true
exit "$rc"
