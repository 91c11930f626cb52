#!/usr/bin/env bash
# Writes the inputs of configs/stage1/tiny_debug.yaml: a tiny random Qwen3-VL with the coord vocabulary
# (make-tiny with the real Qwen3 tokenizer, then expand-vocab) in runs/demo/model, and a synthetic
# shapes dataset (colored rectangles/circles with exact boxes) in runs/demo/data. Idempotent: skips
# what exists. Needs a built coordexp-train (BUILD_DIR, default build) and the tokenizer
# (scripts/fetch-tokenizer.sh; COORDEXP_TOKENIZER_DIR, default .cache/tokenizer-qwen3).
# Usage: scripts/make-demo-data.sh [OUT_DIR (default runs/demo)]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
BIN="${BUILD_DIR:-build}/coordexp-train"
TOK="${COORDEXP_TOKENIZER_DIR:-$here/.cache/tokenizer-qwen3}"
OUT="${1:-runs/demo}"
[[ -x "$BIN" ]] || { echo "make-demo-data: $BIN not found (build first: scripts/setup.sh)" >&2; exit 1; }
scripts/fetch-tokenizer.sh "$TOK" >/dev/null

if [[ -s "$OUT/model/model.safetensors" ]]; then
  echo "make-demo-data: $OUT/model exists"
else
  rm -rf "$OUT/model.raw" "$OUT/model"
  "$BIN" make-tiny --spec tests/data/make_tiny/tiny.yaml --tokenizer "$TOK" --out "$OUT/model.raw"
  "$BIN" expand-vocab --src "$OUT/model.raw" --dst "$OUT/model"
  rm -rf "$OUT/model.raw"
fi

if [[ -s "$OUT/data/train.jsonl" ]]; then
  echo "make-demo-data: $OUT/data exists"
else
  "$BIN" --seed 0 make-synthetic-data --out "$OUT/data" --num-train 64 --num-val 8 --width 128 --height 96 --max-objects 3
fi
echo "make-demo-data: model $OUT/model, data $OUT/data/{train,val}.jsonl"
