#!/usr/bin/env bash
# Builds everything (via setup.sh) and runs the whole test suite with ctest.
# Extra arguments go to ctest (e.g. scripts/test.sh -L unit, or -R Tokenizer).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/setup.sh
BUILD_DIR="${BUILD_DIR:-build}"
export COORDEXP_TOKENIZER_DIR="${COORDEXP_TOKENIZER_DIR:-$here/.cache/tokenizer-qwen3}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 900 "$@"
