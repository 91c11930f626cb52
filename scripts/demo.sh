#!/usr/bin/env bash
# The demo: sets everything up (setup.sh), then runs the main job on a built-in default. Until the
# built-in demo of roadmap step [11] lands, that is the smallest honest end-to-end path: a tiny
# random Qwen3-VL in the Hugging Face format (real Qwen3 tokenizer + coord vocabulary), a synthetic
# shapes dataset with exact boxes, and a short Stage-1 SFT run on the CPU (configs/stage1/tiny_debug.yaml)
# that writes checkpoints, metrics.jsonl and train.log into runs/demo/. It does not detect real
# objects: the model is random and tiny.
#
# scripts/demo.sh --from-scratch [train flags...]: the recipe of the demo's Stage-1 checkpoint
# (configs/demo/): derive-tokenizer (Qwen3's first 4,000 merges) -> make-tiny (configs/demo/model.yaml)
# -> make-demo-data (128x128 shapes) -> check-data -> Stage-1 SFT (configs/demo/stage1.yaml), all
# under runs/demo-stage1/ (DEMO_STAGE1_DIR). Resumable: run it again to continue training from the
# newest checkpoint; extra flags go to `train` (e.g. --set train.max_steps=200 for a short try).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/setup.sh
BIN="${BUILD_DIR:-build}/coordexp-train"
TOK="${COORDEXP_TOKENIZER_DIR:-$here/.cache/tokenizer-qwen3}"

if [[ "${1:-}" == "--from-scratch" ]]; then
  shift
  WORK="${DEMO_STAGE1_DIR:-$here/runs/demo-stage1}"
  MERGES="${DEMO_MERGES:-4000}"
  mkdir -p "$WORK"
  phase_start=$SECONDS
  phase() { echo "demo --from-scratch: $1 ($((SECONDS - phase_start)) s so far)"; }
  if [[ ! -f "$WORK/model/config.json" ]]; then
    phase "deriving a $MERGES-merge tokenizer from Qwen3's (bytes + merges + specials + coord tokens)"
    "$BIN" derive-tokenizer --src "$TOK" --merges "$MERGES" --out "$WORK/tokenizer"
    phase "making the random demo Qwen3-VL (configs/demo/model.yaml)"
    "$BIN" make-tiny --spec configs/demo/model.yaml --tokenizer "$WORK/tokenizer" --out "$WORK/model"
  fi
  if [[ ! -f "$WORK/data/val.jsonl" ]]; then
    phase "writing the demo shapes dataset (128x128)"
    "$BIN" make-demo-data --out "$WORK/data" --train "${DEMO_TRAIN_IMAGES:-10000}" --val "${DEMO_VAL_IMAGES:-200}" \
      --size 128 --seed 0
  fi
  RUN=(--config configs/demo/stage1.yaml
       --set model.path="$WORK/model"
       --set data.train_jsonl="[$WORK/data/train.jsonl]"
       --set data.val_jsonl="[$WORK/data/val.jsonl]"
       --set train.output_dir="$WORK/run")
  phase "checking the data"
  "$BIN" check-data "${RUN[@]}"
  phase "Stage-1 SFT from scratch (configs/demo/stage1.yaml; resumes from the newest checkpoint)"
  "$BIN" train "${RUN[@]}" "$@"
  phase "done: checkpoints in $WORK/run (metrics.jsonl, train.log); the shipped copy is tests/data/demo-stage1/"
  exit 0
fi
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
