#!/usr/bin/env bash
# Builds fuzz_safetensors_header with clang in build-fuzz/ and runs it for SECONDS (default 300)
# on one job. New inputs go to build-fuzz/corpus (the committed seeds in tests/fuzz/corpus are only
# read); crashes land in build-fuzz/ as crash-* files. Usage: tests/fuzz/run_fuzz_safetensors.sh [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-300}"
build="$root/build-fuzz"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCOORDEXP_FUZZ=ON \
  -DCOORDEXP_TESTS=OFF -DCOORDEXP_PCH=OFF >/dev/null
cmake --build "$build" -j2 --target fuzz_safetensors_header
mkdir -p "$build/corpus"
cd "$build"
./tests/fuzz/fuzz_safetensors_header -jobs=1 -workers=1 -max_total_time="$seconds" \
  -dict="$root/tests/fuzz/safetensors.dict" -max_len=16384 \
  "$build/corpus" "$root/tests/fuzz/corpus"
tail -n 5 fuzz-0.log
