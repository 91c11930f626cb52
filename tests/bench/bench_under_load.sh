#!/usr/bin/env bash
# bench_under_load: a training step on a quiet machine vs with one core taken by another process
# (a busy loop pinned to the last CPU with taskset, nice 0), for train.num_threads 1, 2 without
# train.threads_follow_load, and 2 with it. Model: the "small" preset of
# ../shared/bench/bench_python_step.py (tests/bench/specs/small_152k.yaml: ~101M parameters, the real
# 152,670-row vocabulary), Stage-1, one 256x256 synthetic image per step, AdamW, CPU float32.
# Step time = median over steps 2..STEPS of 1 / samples_per_s (log_every 1, batch 1).
# Usage: [SPEC=model.yaml] tests/bench/bench_under_load.sh [BUILD_DIR] [STEPS]   (SPEC: another
# make-tiny spec, e.g. tests/data/make_tiny/tiny.yaml for the bench-smoke label)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$here/build}"
steps="${2:-8}"
bin="$build/coordexp-train"
tok="${COORDEXP_TOKENIZER_DIR:-$here/.cache/tokenizer-qwen3}"
work="$(mktemp -d /tmp/bench_under_load.XXXXXX)"
load_pid=""
trap '[[ -n $load_pid ]] && kill $load_pid 2>/dev/null; rm -rf "$work"' EXIT
last_cpu=$(( $(nproc) - 1 ))

"$bin" --log-level warn make-tiny --spec "${SPEC:-$here/tests/bench/specs/small_152k.yaml}" --tokenizer "$tok" --out "$work/raw" >/dev/null
"$bin" --log-level warn expand-vocab --src "$work/raw" --dst "$work/model" >/dev/null
rm -rf "$work/raw"
"$bin" --log-level warn make-synthetic-data --out "$work/data" --num-train 16 --num-val 2 --width 256 --height 256 >/dev/null

run() {  # name threads follow
  cat > "$work/$1.yaml" <<YAML
model: {path: $work/model}
data: {train_jsonl: [$work/data/train.jsonl], num_workers: 1}
preprocess: {min_pixels: 65536, max_pixels: 65536}
train: {output_dir: $work/$1, stage: stage1, device: cpu, precision: fp32, seed: 1, num_threads: $2,
        threads_follow_load: $3, log_every: 1, micro_batch_size: 1, max_steps: $steps}
optim: {lr: 1.0e-4, warmup_steps: 1}
checkpoint: {every: 0, keep_last: 1}
log: {progress: off}
YAML
  "$bin" --log-level warn train --config "$work/$1.yaml" >/dev/null 2>&1
}
for phase in quiet loaded; do
  if [[ $phase == loaded ]]; then
    taskset -c "$last_cpu" sh -c 'while :; do :; done' &
    load_pid=$!
  fi
  run "$phase-t1" 1 false
  run "$phase-t2" 2 false
  run "$phase-t2-follow" 2 true
done

python3 - "$work" <<'PY'
import json, sys, statistics as st
work = sys.argv[1]
def step(name):
    recs = [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl")]
    recs = [r for r in recs if "loss" in r and "val_loss" not in r][1:]
    threads = sorted({r.get("compute_threads", 0) for r in recs} - {0})  # logged by the follower only
    return st.median(1 / r["samples_per_s"] for r in recs), threads
print("| setting | quiet | one core busy | loaded / quiet | threads used (loaded) |")
print("|---|---|---|---|---|")
for name, label, fixed in (("t1", "num_threads 1", "1 (fixed)"), ("t2", "num_threads 2, threads_follow_load false", "2 (fixed)"),
                           ("t2-follow", "num_threads 2, threads_follow_load true", None)):
    q, _ = step(f"quiet-{name}")
    l, th = step(f"loaded-{name}")
    print(f"| {label} | {q:.2f} s | {l:.2f} s | {l / q:.2f}x | {fixed or ','.join(map(str, th))} |")
PY
