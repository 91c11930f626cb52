#!/usr/bin/env bash
# The built-in demo: sets everything up (setup.sh), then shows the whole method detecting objects end
# to end on the CPU (4 to 6 minutes measured on a 2-core machine with another job on one core, once
# built; peak RSS 1.3 GB), under runs/demo/ (DEMO_DIR):
#   1. make-demo-data: the demo shapes task at 128x128, 3 shapes x 4 colours (seed 0: the same 200
#      held-out val images the shipped Stage-1 checkpoint never saw; the first DEMO_TRAIN_IMAGES=2000 of
#      its training images);
#   2. infer + eval + visualize with the shipped Stage-1 checkpoint tests/data/demo-stage1/
#      (DEMO_STAGE1_MODEL), a small Qwen3-VL of the real architecture trained from scratch here;
#   3. Stage-2 from that checkpoint (configs/demo/stage2.yaml = configs/stage2/mixture.yaml's seed
#      defaults: Channel-A N=2 st/unroll + Channel-B via the deterministic router, b_ratio 0.25);
#   4. infer + eval + visualize again, report.html (loss curves, A/B diagnostics, before/after
#      tables, contact sheets), and a before/after table (AP, AP50, F1@0.5, parse and duplicate
#      rates) with the wall time and peak memory of every phase.
# Phases whose output exists are skipped, so a re-run is cheap; --fresh deletes DEMO_DIR first.
# Extra flags go to Stage-2's `train` (e.g. --set train.max_steps=40 for a quicker look).
#
# scripts/demo.sh --compare [--budget-s S] [--seeds "0 1"]: from the same Stage-1 checkpoint, at an
# equal wall-clock budget per arm (default 600 s), continued Stage-1 (configs/demo/compare_stage1.yaml)
# vs Channel-A N=1 + B vs N=2 + B (configs/demo/stage2.yaml), each with every seed; then infer + eval
# of each on the val set and a side-by-side table in DEMO_DIR/compare/compare.md. The trainer has no
# wall-clock stop, so each arm's max_steps comes from its speed measured by a short probe run.
#
# scripts/demo.sh --from-scratch [train flags...]: the recipe of the demo's Stage-1 checkpoint
# (configs/demo/): derive-tokenizer (Qwen3's first 4,000 merges) -> make-tiny (configs/demo/model.yaml)
# -> make-demo-data (128x128 shapes) -> check-data -> Stage-1 SFT in five phases (configs/demo/stage1.yaml
# to step 900, then configs/demo/stage1_continue.yaml from the last weights four times, the last two on
# the 3-shape x 4-colour task), all under runs/demo-stage1/
# (DEMO_STAGE1_DIR). Resumable: run it again to continue from the newest checkpoint; extra flags go
# to every `train` call.
#
# Env: DEMO_DIR, DEMO_STAGE1_MODEL, DEMO_TRAIN_IMAGES, DEMO_CONFIG_DIR (where stage2.yaml and
# compare_stage1.yaml are read; default configs/demo), BUILD_DIR, OMP_NUM_THREADS (default 1).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  echo "Usage: scripts/demo.sh [--fresh] [train flags...]"
  echo "       scripts/demo.sh --compare [--fresh] [--budget-s S] [--seeds \"0 1\"]"
  echo "       scripts/demo.sh --from-scratch [train flags...]"
}
MODE=demo FRESH=0 BUDGET_S=600 SEEDS="0 1"
TRAIN_ARGS=()
if [[ "${1:-}" != "--from-scratch" ]]; then
  while (($#)); do
    case "$1" in
      -h|--help) usage; exit 0 ;;
      --fresh) FRESH=1 ;;
      --compare) MODE=compare ;;
      --budget-s|--seeds)
        (($# >= 2)) || { echo "demo: $1 needs a value" >&2; usage >&2; exit 2; }
        if [[ "$1" == --budget-s ]]; then BUDGET_S=$2; else SEEDS=$2; fi
        shift ;;
      *) TRAIN_ARGS+=("$1") ;;
    esac
    shift
  done
  [[ "$BUDGET_S" =~ ^[0-9]+$ && "$BUDGET_S" -ge 1 ]] || { echo "demo: --budget-s wants whole seconds >= 1, got '$BUDGET_S'" >&2; exit 2; }
  read -r -a SEED_LIST <<< "$SEEDS"
  ((${#SEED_LIST[@]})) || { echo "demo: --seeds is empty" >&2; exit 2; }
  for s in "${SEED_LIST[@]}"; do
    [[ "$s" =~ ^[0-9]+$ ]] || { echo "demo: --seeds wants whole numbers, got '$s'" >&2; exit 2; }
  done
  if [[ "$MODE" == compare && ${#TRAIN_ARGS[@]} -gt 0 ]]; then
    echo "demo: unknown argument(s) for --compare: ${TRAIN_ARGS[*]}" >&2; usage >&2; exit 2
  fi
fi

scripts/setup.sh
BIN="${BUILD_DIR:-build}/coordexp-train"
# The demo's task since session 23: 3 shapes x 4 colours (the shipped Stage-1 checkpoint's last two
# phases trained on it; the first three used all 4 x 5).
DEMO_SHAPES=(--shapes circle,rectangle,triangle --colours red,green,blue,yellow)
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
  # The recipe as it was run (tests/data/demo-stage1/README.md), in planned pieces that resume
  # bit-exactly: phase 1 = stage1.yaml (a 4,000-step cosine) stopped after step 900; phase 2 =
  # stage1_continue.yaml from phase 1's step-900 weights with a fresh AdamW: a 7,000-step cosine up
  # to step 4,256, then the same run shortened to 6,000 steps (the session's time ran short); phase 3
  # below continues from phase 2's last weights.
  # Extra flags go to every train call.
  # model_files CKPT DIR: a checkpoint's model files (no optimizer state), the next phase's start.
  model_files() {
    mkdir -p "$2"
    for f in config.json model.safetensors preprocessor_config.json tokenizer.json tokenizer_config.json; do
      cp "$1/$f" "$2/"
    done
  }
  if [[ ! -f "$WORK/phase1/model.safetensors" ]]; then
    phase "Stage-1 phase 1 from scratch (configs/demo/stage1.yaml, stopped after step 900)"
    "$BIN" train "${RUN[@]}" --set train.stop_at_step=900 "$@"
    model_files "$WORK/run/checkpoint-900" "$WORK/phase1"
  fi
  RUN2=(--config configs/demo/stage1_continue.yaml
        --set model.path="$WORK/phase1"
        --set data.train_jsonl="[$WORK/data/train.jsonl]"
        --set data.val_jsonl="[$WORK/data/val.jsonl]"
        --set train.output_dir="$WORK/run2")
  phase "Stage-1 phase 2a (configs/demo/stage1_continue.yaml as a 7,000-step run, stopped after step 4,256)"
  "$BIN" train "${RUN2[@]}" --set train.max_steps=7000 --set train.stop_at_step=4256 "$@"
  phase "Stage-1 phase 2b (the same run shortened to 6,000 steps; resumes from the newest checkpoint)"
  "$BIN" train "${RUN2[@]}" "$@"
  # Phase 3 (session 19): phase 2's step-6,000 weights again with a fresh AdamW at lr 6e-4, a 12,000-step
  # cosine stopped (by a signal) after step 1,980, then the same run shortened to 3,600 steps.
  if [[ ! -f "$WORK/phase2/model.safetensors" ]]; then
    model_files "$WORK/run2/checkpoint-6000" "$WORK/phase2"
  fi
  RUN3=(--config configs/demo/stage1_continue.yaml
        --set model.path="$WORK/phase2"
        --set data.train_jsonl="[$WORK/data/train.jsonl]"
        --set data.val_jsonl="[$WORK/data/val.jsonl]"
        --set train.output_dir="$WORK/run3"
        --set optim.lr=6e-4 --set optim.warmup_steps=100 --set train.eval_every=500)
  phase "Stage-1 phase 3a (from phase 2's step 6,000: a 12,000-step cosine at lr 6e-4, stopped after step 1,980)"
  "$BIN" train "${RUN3[@]}" --set train.max_steps=12000 --set train.stop_at_step=1980 "$@"
  phase "Stage-1 phase 3b (the same run shortened to 3,600 steps)"
  "$BIN" train "${RUN3[@]}" --set train.max_steps=3600 "$@"
  # Phases 4 and 5 (session 23) narrow the task to the demo's 3 shapes x 4 colours (the data the
  # default demo evaluates on): phase 3's step-3,600 weights with a fresh AdamW, a 7,000-step cosine at
  # lr 4e-4 (100 warmup steps), then its last weights again, a 4,000-step cosine at lr 2e-4. Detection
  # eval on 40 val images every 500 / 1,000 steps (eval does not change the training trajectory).
  if [[ ! -f "$WORK/data_demo/val.jsonl" ]]; then
    phase "writing the demo's 3-shape x 4-colour dataset (128x128)"
    "$BIN" make-demo-data --out "$WORK/data_demo" --train "${DEMO_TRAIN_IMAGES:-10000}" --val "${DEMO_VAL_IMAGES:-200}" \
      --size 128 --seed 0 "${DEMO_SHAPES[@]}"
  fi
  if [[ ! -f "$WORK/phase3/model.safetensors" ]]; then
    model_files "$WORK/run3/checkpoint-3600" "$WORK/phase3"
  fi
  NARROW=(--set data.train_jsonl="[$WORK/data_demo/train.jsonl]"
          --set data.val_jsonl="[$WORK/data_demo/val.jsonl]"
          --set checkpoint.every=250 --set checkpoint.keep_last=3
          --set eval.detection=true --set eval.max_images=40 --set rollout.max_new_tokens=256)
  phase "Stage-1 phase 4 (from phase 3's step 3,600 on 3 shapes x 4 colours: a 7,000-step cosine at lr 4e-4)"
  "$BIN" train --config configs/demo/stage1_continue.yaml --set model.path="$WORK/phase3" "${NARROW[@]}" \
    --set train.output_dir="$WORK/run4" --set optim.lr=4e-4 --set optim.warmup_steps=100 \
    --set train.max_steps=7000 --set train.eval_every=500 "$@"
  if [[ ! -f "$WORK/phase4/model.safetensors" ]]; then
    model_files "$WORK/run4/checkpoint-7000" "$WORK/phase4"
  fi
  phase "Stage-1 phase 5 (from phase 4's step 7,000: a 4,000-step cosine at lr 2e-4)"
  "$BIN" train --config configs/demo/stage1_continue.yaml --set model.path="$WORK/phase4" "${NARROW[@]}" \
    --set train.output_dir="$WORK/run5" --set optim.lr=2e-4 --set optim.warmup_steps=50 \
    --set train.max_steps=4000 --set train.eval_every=1000 "$@"
  phase "done: checkpoints in $WORK/run5 (metrics.jsonl, train.log); the shipped copy is tests/data/demo-stage1/ (run5/checkpoint-4000's model files)"
  exit 0
fi

# ---- the built-in demo (default) and --compare --------------------------------------------------
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"   # infer/generate use 1 thread anyway; train: num_threads 1
WORK="$(realpath -m "${DEMO_DIR:-$here/runs/demo}")"
STAGE1="$(realpath -m "${DEMO_STAGE1_MODEL:-$here/tests/data/demo-stage1}")"
CFG_DIR="${DEMO_CONFIG_DIR:-configs/demo}"
CFG2="$CFG_DIR/stage2.yaml"
CFG1C="$CFG_DIR/compare_stage1.yaml"
STAMP="$WORK/.coordexp-demo"
[[ -x "$BIN" ]] || { echo "demo: $BIN not found (scripts/setup.sh builds it)" >&2; exit 1; }
[[ -f "$STAGE1/config.json" ]] || { echo "demo: no Stage-1 checkpoint at $STAGE1 (DEMO_STAGE1_MODEL)" >&2; exit 1; }

if ((FRESH)) && [[ -e "$WORK" ]]; then
  case "$WORK" in
    /|"$here"|"$HOME"|"$here"/tests*|"$here"/configs*|"$here"/src*) echo "demo: refusing to delete $WORK" >&2; exit 2 ;;
  esac
  # Without our stamp only the default folder is deleted (it may hold the earlier demo's files).
  [[ -z "$(ls -A "$WORK")" || -f "$STAMP" || "$WORK" == "$here/runs/demo" ]] ||
    { echo "demo: $WORK was not written by this demo; delete it yourself or set DEMO_DIR" >&2; exit 2; }
  echo "demo: --fresh: deleting $WORK"
  rm -rf "$WORK"
fi
mkdir -p "$WORK"
if [[ ! -f "$STAMP" ]]; then
  if [[ -n "$(ls -A "$WORK")" ]]; then
    echo "demo: $WORK holds files this demo did not write (earlier versions of scripts/demo.sh and" >&2
    echo "      scripts/make-demo-data.sh wrote runs/demo/{model,data,run}): add --fresh to delete it, or set DEMO_DIR" >&2
    exit 2
  fi
  echo "written by scripts/demo.sh; --fresh deletes this folder" > "$STAMP"
fi

T0=$SECONDS
PHASES=()          # "name|wall|peak RSS|note", printed at the end
WARNINGS=()
# phase NAME CMD...: runs CMD (never aborts by itself), times it and, when GNU time is installed
# (/usr/bin/time, Debian package `time`), records its peak RSS; both are also kept in WORK/.phases so
# that a later run that skips the phase still shows them. Returns CMD's exit status.
phase() {
  local name=$1; shift
  echo "demo: $name ($((SECONDS - T0)) s so far)" >&2   # stderr: a phase's stdout may be redirected
  local t0=$SECONDS rc=0 rss="-"
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "%M" -o "$WORK/.rss" "$@" || rc=$?
    rss="$(tail -n 1 "$WORK/.rss" 2>/dev/null || true)"
    [[ "$rss" =~ ^[0-9]+$ ]] && rss="$((rss / 1024)) MiB" || rss="-"
  else
    "$@" || rc=$?
  fi
  local status=ok row
  ((rc == 0)) || status="exit $rc"
  row="$name|$((SECONDS - t0)) s|$rss|$status"
  PHASES+=("$row")
  { [[ ! -f "$WORK/.phases" ]] || awk -F'|' -v n="$name" '$1 != n' "$WORK/.phases"; echo "$row"; } > "$WORK/.phases.new"
  mv "$WORK/.phases.new" "$WORK/.phases"
  return $rc
}
skipped() {   # skipped NAME WHY: a phase whose output exists (its earlier time and RSS when known)
  local why="${2//$WORK\//}" earlier
  echo "demo: $1: skipped ($why)"
  earlier="$([[ ! -f "$WORK/.phases" ]] || awk -F'|' -v n="$1" '$1 == n' "$WORK/.phases" | tail -n 1)"
  if [[ -n "$earlier" ]]; then
    IFS='|' read -r _ w r _ <<< "$earlier"
    PHASES+=("$1|($w)|($r)|skipped, earlier run's numbers: $why")
  else
    PHASES+=("$1|-|-|skipped: $why")
  fi
}
lines() { [[ -f "$1" ]] && awk 'NF {n++} END {print n + 0}' "$1" || echo 0; }   # non-blank lines
newest_checkpoint() {   # the checkpoint-<step> of RUN_DIR with the highest step (empty if none)
  local best="" bs=-1 d s
  for d in "$1"/checkpoint-*; do
    [[ -f "$d/trainer_state/state.json" ]] || continue
    s="${d##*checkpoint-}"
    [[ "$s" =~ ^[0-9]+$ ]] && ((s > bs)) && { bs=$s; best=$d; }
  done
  echo "$best"
}
checkpoint_step() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$1/trainer_state/state.json"; }
config_max_steps() {   # train.max_steps of a run's resolved config.yaml
  awk '/^train:/{t=1; next} /^[^ #]/{t=0} t && $1 == "max_steps:" {print $2; exit}' "$1/config.yaml"
}
# train_to_end NAME RUN_DIR DONE_FILE train-args...: runs `train` unless DONE_FILE exists; afterwards
# checks that the newest checkpoint reached train.max_steps (a SIGINT also exits 0, after saving a
# checkpoint) and writes its name (checkpoint-<step>, inside RUN_DIR) to DONE_FILE.
train_to_end() {
  local name=$1 run=$2 done=$3; shift 3
  if [[ -f "$done" ]]; then skipped "$name" "$run/$(cat "$done") exists"; return 0; fi
  phase "$name" "$BIN" train "$@" --set train.output_dir="$run"
  local ck; ck="$(newest_checkpoint "$run")"
  [[ -n "$ck" ]] || { echo "demo: $name wrote no checkpoint in $run" >&2; exit 1; }
  local want; want="$(config_max_steps "$run")"
  if [[ "$want" =~ ^[1-9][0-9]*$ && "$(checkpoint_step "$ck")" != "$want" ]]; then
    echo "demo: $name stopped at $(basename "$ck") before step $want (interrupted?); run the demo again to resume" >&2
    exit 1
  fi
  basename "$ck" > "$done"
}
# predict_and_score LABEL MODEL_DIR EVAL_DIR [VIS_DIR]: infer on the val set (resumes a partial
# prediction file), eval (exit 3 = some input skipped: reported, not fatal) and, with VIS_DIR, the
# pictures. Each step is skipped when its output exists.
predict_and_score() {
  local label=$1 model=$2 dir=$3 vis=${4:-} rc
  mkdir -p "$dir"
  if (($(lines "$dir/pred.jsonl") >= $(lines "$VAL"))); then
    skipped "infer ($label)" "$dir/pred.jsonl is complete"
  else
    rc=0; phase "infer ($label)" "$BIN" infer --model "$model" --data "$VAL" \
      --out "$dir/pred.jsonl" --config "$CFG2" || rc=$?
    if ((rc == 3)); then WARNINGS+=("infer ($label): some records got an error line (exit 3); see $dir/pred.jsonl")
    elif ((rc != 0)); then echo "demo: infer ($label) failed (exit $rc)" >&2; exit "$rc"; fi
  fi
  if [[ -f "$dir/metrics.json" ]]; then
    skipped "eval ($label)" "$dir/metrics.json exists"
  else
    rc=0; phase "eval ($label)" "$BIN" eval --gt "$VAL" --pred "$dir/pred.jsonl" --out "$dir/metrics.json" \
      --config "$CFG2" > "$dir/eval.txt" || rc=$?
    cat "$dir/eval.txt"
    if ((rc == 3)); then WARNINGS+=("eval ($label): some input was skipped (exit 3); see 'problems' in $dir/metrics.json")
    elif ((rc != 0)); then echo "demo: eval ($label) failed (exit $rc)" >&2; exit "$rc"; fi
  fi
  [[ -n "$vis" ]] || return 0
  if [[ -f "$vis/contact_sheet.png" ]]; then
    skipped "visualize ($label)" "$vis/contact_sheet.png exists"
  else
    phase "visualize ($label)" "$BIN" visualize --gt "$VAL" --pred "$dir/pred.jsonl" --out "$vis" --num 16 \
      --config "$CFG2"
  fi
}
print_phases() {
  echo
  echo "| phase | wall | peak RSS | |"
  echo "|---|---|---|---|"
  local p; for p in "${PHASES[@]}"; do echo "| ${p//|/ | } |"; done
  echo "total: $((SECONDS - T0)) s"
  ((${#WARNINGS[@]} == 0)) || printf 'warning: %s\n' "${WARNINGS[@]}"
}

# 1. The data: val (200 images) is independent of --train, so it is exactly the checkpoint's held-out set.
DATA="$WORK/data"
VAL="$DATA/val.jsonl"
TRAIN="$DATA/train.jsonl"
TASK="${DEMO_SHAPES[*]}"   # recorded in DATA/.task: a DEMO_DIR made for another task is not reused
if [[ -f "$VAL" && -f "$TRAIN" ]]; then
  if [[ "$(cat "$DATA/.task" 2>/dev/null)" != "$TASK" ]]; then
    echo "demo: $DATA holds another demo task than '$TASK' (made before the demo moved to 3 shapes x 4" >&2
    echo "      colours); its results would not compare with the shipped checkpoint: run scripts/demo.sh --fresh" >&2
    exit 2
  fi
  skipped "data" "$DATA exists"
else
  rm -rf "$DATA.tmp"
  phase "data" "$BIN" make-demo-data --out "$DATA.tmp" \
    --train "${DEMO_TRAIN_IMAGES:-2000}" --val 200 --size 128 --seed 0 "${DEMO_SHAPES[@]}"
  echo "$TASK" > "$DATA.tmp/.task"
  mv "$DATA.tmp" "$DATA"
fi
DATA_SETS=(--set data.train_jsonl="[$TRAIN]" --set data.val_jsonl="[$VAL]")

if [[ "$MODE" == demo ]]; then
  RUN_DIR="$WORK/run"          # Stage-2's output_dir; report --run reads metrics.jsonl, eval/*/metrics.json, */contact_sheet.png
  predict_and_score "Stage-1 checkpoint" "$STAGE1" "$RUN_DIR/eval/stage1" "$RUN_DIR/vis/stage1"
  train_to_end "Stage-2 ($CFG2)" "$RUN_DIR" "$WORK/.stage2-done" \
    --config "$CFG2" --set model.path="$STAGE1" "${DATA_SETS[@]}" "${TRAIN_ARGS[@]}"
  predict_and_score "after Stage-2" "$RUN_DIR/$(cat "$WORK/.stage2-done")" "$RUN_DIR/eval/stage2" "$RUN_DIR/vis/stage2"
  phase "report" "$BIN" report --run "$RUN_DIR"
  echo
  echo "Before / after Stage-2 ($(lines "$VAL") held-out val images; $RUN_DIR/eval/stage{1,2}/metrics.json):"
  echo
  python3 scripts/demo-table.py before-after "$RUN_DIR/eval/stage1/metrics.json" "$RUN_DIR/eval/stage2/metrics.json"
  print_phases
  echo
  echo "report: $RUN_DIR/report.html"
  echo "pictures: $RUN_DIR/vis/stage1/contact_sheet.png, $RUN_DIR/vis/stage2/contact_sheet.png (GT green, predictions red)"
  exit 0
fi

# --compare: equal wall-clock budget per arm. No wall-clock stop key exists (docs/config.md), so a
# probe run of PROBE_STEPS steps per arm (seed 0) measures its step time, and the arm gets
# max_steps = (budget - start-up overhead) / step time for every seed (scripts/demo-probe.py).
CMP="$WORK/compare"
PROBE_STEPS=8     # two Channel-B steps at b_ratio 0.25: the probe's mix of A and B is the run's
ARMS=("stage1|continued Stage-1 (configs/demo/compare_stage1.yaml)|$CFG1C"
      "a1_b|Channel-A N=1 + B (configs/demo/stage2.yaml, channel_a.n_softctx_iter=1)|$CFG2|--set|channel_a.n_softctx_iter=1"
      "a2_b|Channel-A N=2 + B (configs/demo/stage2.yaml)|$CFG2")
COMMON=(--set model.path="$STAGE1" "${DATA_SETS[@]}" --set train.eval_every=0 --set checkpoint.every=0)
mkdir -p "$CMP/checkpoint/eval"
for f in pred.jsonl metrics.json eval.txt; do   # the default demo's Stage-1 scores are the same (greedy, same config)
  [[ -f "$CMP/checkpoint/eval/$f" || ! -f "$WORK/run/eval/stage1/$f" ]] || cp "$WORK/run/eval/stage1/$f" "$CMP/checkpoint/eval/"
done
predict_and_score "Stage-1 checkpoint" "$STAGE1" "$CMP/checkpoint/eval"
ENTRIES=("stage1 checkpoint (no training)=$CMP/checkpoint/eval/metrics.json")
NOTES=()
for arm in "${ARMS[@]}"; do
  IFS='|' read -r -a f <<< "$arm"
  key=${f[0]} what=${f[1]} cfg=${f[2]}
  extra=("${f[@]:3}")
  budget_file="$CMP/$key.budget-$BUDGET_S"
  if [[ -f "$budget_file" ]]; then
    skipped "probe $key ($PROBE_STEPS steps)" "$budget_file exists"
  else
    rm -rf "$CMP/$key-probe"
    t=$(date +%s.%N)
    phase "probe $key ($PROBE_STEPS steps)" "$BIN" train --config "$cfg" "${COMMON[@]}" "${extra[@]}" --seed 0 \
      --set train.max_steps=$PROBE_STEPS --set train.log_every=1 --set train.output_dir="$CMP/$key-probe" \
      --set log.progress=off
    wall=$(python3 -c "import sys,time; print(time.time() - float(sys.argv[1]))" "$t")
    scripts/demo-probe.py "$CMP/$key-probe" "$wall" "$BUDGET_S" > "$budget_file"
    rm -rf "$CMP/$key-probe"
  fi
  read -r steps step_s overhead_s _ < "$budget_file"
  NOTES+=("| $what | $step_s s | $overhead_s s | $steps |")
  for seed in "${SEED_LIST[@]}"; do
    run="$CMP/$key-seed$seed-budget$BUDGET_S"
    train_to_end "train $key seed $seed ($steps steps)" "$run" "$run.done" --config "$cfg" "${COMMON[@]}" \
      "${extra[@]}" --seed "$seed" --set train.max_steps="$steps"
    predict_and_score "$key seed $seed" "$run/$(cat "$run.done")" "$run/eval"
    ENTRIES+=("$key/seed$seed=$run/eval/metrics.json")
  done
done
{
  echo "# scripts/demo.sh --compare: budget $BUDGET_S s of training per arm, seeds ${SEED_LIST[*]}"
  echo
  echo "From the Stage-1 checkpoint $STAGE1; every arm trains on $TRAIN and is evaluated on the"
  echo "$(lines "$VAL") held-out images of $VAL (greedy infer with $CFG2, then eval). The trainer has no"
  echo "wall-clock stop, so each arm's max_steps is what fits the budget at its speed, measured by a"
  echo "$PROBE_STEPS-step probe run (seed 0) on this machine just before (scripts/demo-probe.py); the"
  echo "same max_steps serves every seed. Speeds on a shared machine vary, so budgets are approximate:"
  echo "the train wall times below show what each run took."
  echo
  echo "| arm | measured step time | start-up overhead | max_steps |"
  echo "|---|---|---|---|"
  printf '%s\n' "${NOTES[@]}"
  echo
  python3 scripts/demo-table.py compare "${ENTRIES[@]}"
  echo
  echo "F1@0.5: score-free, one-to-one Hungarian, IoU >= 0.5 and the same desc; mean matched IoU: over"
  echo "pairs with the same desc and IoU > 0 (docs/evaluation.md). Phases of this invocation:"
  print_phases
} > "$CMP/compare.md"
cat "$CMP/compare.md"
