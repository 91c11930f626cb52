#!/usr/bin/env bash
# The demo: sets everything up (setup.sh), then runs the main job on a built-in default. Until the
# built-in demo of roadmap step [11] lands, that is the smallest honest end-to-end path: a tiny
# random Qwen3-VL in the Hugging Face format (real Qwen3 tokenizer + coord vocabulary), a synthetic
# shapes dataset with exact boxes, and a short Stage-1 SFT run on the CPU (configs/stage1/tiny_debug.yaml)
# that writes checkpoints, metrics.jsonl and train.log into runs/demo/. It does not detect real
# objects: the model is random and tiny.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/setup.sh
BIN="${BUILD_DIR:-build}/coordexp-train"
TOK="${COORDEXP_TOKENIZER_DIR:-$here/.cache/tokenizer-qwen3}"
WORK="${DEMO_DIR:-$here/runs/demo}"
mkdir -p "$WORK"

if [[ ! -f "$WORK/model/config.json" ]]; then
  echo "demo: making a tiny random Qwen3-VL with the real Qwen3 tokenizer"
  "$BIN" make-tiny --spec tests/data/make_tiny/tiny.yaml --tokenizer "$TOK" --out "$WORK/model-base"
  echo "demo: adding the coord vocabulary (<|coord_*|>, <|coord_0..999|>) to tokenizer and embeddings"
  "$BIN" expand-vocab --src "$WORK/model-base" --dst "$WORK/model"
fi
if [[ ! -f "$WORK/data/train.jsonl" ]]; then
  echo "demo: writing a synthetic shapes dataset"
  "$BIN" make-synthetic-data --out "$WORK/data"
fi
RUN=(--config configs/stage1/tiny_debug.yaml
     --set model.path="$WORK/model"
     --set data.train_jsonl="[$WORK/data/train.jsonl]"
     --set data.val_jsonl="[$WORK/data/val.jsonl]")
echo "demo: checking the data against the contract and the training pipeline"
"$BIN" check-data "${RUN[@]}"
echo "demo: Stage-1 SFT (configs/stage1/tiny_debug.yaml)"
"$BIN" train "${RUN[@]}" --set train.output_dir="$WORK/run" "$@"
echo "demo: done. Outputs in $WORK/run (config.yaml, train.log, metrics.jsonl, checkpoints)"
