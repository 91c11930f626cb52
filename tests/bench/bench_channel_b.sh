#!/usr/bin/env bash
# bench_channel_b: wall time of a Channel-B step split into rollout / parse+match+build /
# forward+backward, next to a Stage-1 step and a Channel-A step on the same data, from the trainer's
# own metrics (metrics.jsonl; step time = samples per step / samples_per_s with log_every 1).
# A tiny random Qwen3-VL of the real architecture (tests/data/make_tiny/tiny.yaml, real Qwen3 tokenizer
# + coord rows) on synthetic shapes, CPU, float32, 1 thread, batch 4, rollouts of up to MAX_NEW tokens.
# Usage: tests/bench/bench_channel_b.sh [BUILD_DIR] [STEPS] [MAX_NEW]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$here/build}"
steps="${2:-8}"
max_new="${3:-64}"
bin="$build/coordexp-train"
tok="${COORDEXP_TOKENIZER_DIR:-$here/.cache/tokenizer-qwen3}"
work="$(mktemp -d /tmp/bench_channel_b.XXXXXX)"
trap 'rm -rf "$work"' EXIT

"$bin" make-tiny --spec "$here/tests/data/make_tiny/tiny.yaml" --tokenizer "$tok" --out "$work/raw" >/dev/null
"$bin" expand-vocab --src "$work/raw" --dst "$work/model" >/dev/null
"$bin" make-synthetic-data --out "$work/data" --num-train 32 --num-val 4 --width 128 --height 128 >/dev/null

run() {  # name stage b_ratio
  cat > "$work/$1.yaml" <<EOF
model: {path: $work/model}
data: {train_jsonl: [$work/data/train.jsonl], num_workers: 1}
preprocess: {min_pixels: 16384, max_pixels: 16384}
train: {output_dir: $work/$1, stage: $2, device: cpu, precision: fp32, seed: 1, num_threads: 1,
        log_every: 1, micro_batch_size: 4, max_steps: $steps}
optim: {lr: 1.0e-4, warmup_steps: 1}
checkpoint: {every: 0, keep_last: 1}
log: {progress: off}
stage2: {b_ratio: $3}
rollout: {max_new_tokens: $max_new}
loss: {geo: {weight: 1.0}}
EOF
  "$bin" --log-level warn train --config "$work/$1.yaml" >/dev/null
}
run stage1 stage1 0
run channel_a stage2 0
run channel_b stage2 1

python3 - "$work" "$steps" <<'EOF'
import json, sys, statistics as st
work, steps = sys.argv[1], int(sys.argv[2])
def recs(name):
    return [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl") if '"loss"' in l and '"val_loss"' not in l]
def step_s(r):  # the first step includes warm-up: skipped
    return [4 / x["samples_per_s"] for x in r[1:]]
s1, a, b = recs("stage1"), recs("channel_a"), recs("channel_b")
t1, ta, tb = st.median(step_s(s1)), st.median(step_s(a)), st.median(step_s(b))
ro = st.median(x["b_time_rollout_s"] for x in b[1:])
bu = st.median(x["b_time_build_s"] for x in b[1:])
fb = st.median(x["b_time_forward_backward_s"] for x in b[1:])
ln = st.median(x["b_rollout_len_mean"] for x in b[1:])
tps = st.median(x["b_rollout_tokens_per_s"] for x in b[1:])
print(f"median over steps 2..{steps}, batch 4, 1 thread:")
print(f"  stage-1 step           {t1*1000:8.1f} ms  (1.00x)")
print(f"  channel-A step (N=2)   {ta*1000:8.1f} ms  ({ta/t1:.2f}x)")
print(f"  channel-B step         {tb*1000:8.1f} ms  ({tb/t1:.2f}x)")
print(f"    rollout              {ro*1000:8.1f} ms  (mean rollout {ln:.1f} tokens, {tps:.0f} tokens/s)")
print(f"    parse+match+build    {bu*1000:8.1f} ms")
print(f"    forward+backward     {fb*1000:8.1f} ms  ({fb/t1:.2f}x the stage-1 step)")
EOF
