#!/usr/bin/env bash
# bench_vs_python: a whole Stage-1 training step (forward, token CE, backward, AdamW) of this trainer
# next to ../shared/bench/bench_python_step.py (eager PyTorch on Debian's torch, the same LibTorch and
# BLAS) in one run, at both of the twin's logits policies: `answer` (logits at supervised positions
# only, what the trainer does) and `all` (Hugging Face's default, logits at every position).
# Model: the twin's "small" preset (tests/bench/specs/small_152k.yaml, ~101M parameters with the real
# 152,670-row vocabulary); SPEC=... picks another make-tiny spec with the twin's PRESET=... .
# One 256x256 synthetic image per step (make-synthetic-data), batch 1, CPU float32, THREADS threads
# (default 1) on both sides. The twin gets the trainer's measured sample shape: its --prompt and
# --answer are set so that its sequence length and supervised-token count equal the trainer's means.
# Step time: the trainer's median over steps 2..STEPS of 1 / samples_per_s (log_every 1); the twin's
# median after one warm-up step. ROUNDS alternate the runs; read the ratios within a round.
# The trainer keeps freed large blocks for reuse (COORDEXP_MALLOC=reuse, util/heap.h); so that the heap
# policy is not what is compared, the twin at logits `answer` also runs with the same glibc settings
# through GLIBC_TUNABLES (mmap_max=0, trim_threshold=INT32_MAX), its own column.
# Usage: [SPEC=..] [PRESET=small] [THREADS=1] tests/bench/bench_vs_python.sh [BUILD_DIR] [STEPS] [ROUNDS]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$here/build}"
steps="${2:-8}"
rounds="${3:-2}"
threads="${THREADS:-1}"
preset="${PRESET:-small}"
bin="$build/coordexp-train"
twin="${TWIN:-$here/../shared/bench/bench_python_step.py}"
tok="${COORDEXP_TOKENIZER_DIR:-$here/.cache/tokenizer-qwen3}"
# Exit 77 (ctest: skipped) when the twin or Debian's torch is not on this machine (a bare CI clone).
[[ -f "$twin" ]] || { echo "bench_vs_python: no Python twin at $twin (set TWIN): skipped" >&2; exit 77; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "bench_vs_python: /usr/bin/python3 has no torch (python3-torch): skipped" >&2; exit 77; }
work="$(mktemp -d /tmp/bench_vs_python.XXXXXX)"
trap 'rm -rf "$work"' EXIT

"$bin" --log-level warn make-tiny --spec "${SPEC:-$here/tests/bench/specs/small_152k.yaml}" --tokenizer "$tok" --out "$work/raw" >/dev/null
"$bin" --log-level warn expand-vocab --src "$work/raw" --dst "$work/model" >/dev/null
rm -rf "$work/raw"
"$bin" --log-level warn make-synthetic-data --out "$work/data" --num-train 16 --num-val 2 --width 256 --height 256 >/dev/null

ours() {  # out
  cat > "$work/$1.yaml" <<YAML
model: {path: $work/model}
data: {train_jsonl: [$work/data/train.jsonl], num_workers: 1}
preprocess: {min_pixels: 65536, max_pixels: 65536}
train: {output_dir: $work/$1, stage: stage1, device: cpu, precision: fp32, seed: 1, num_threads: $threads,
        threads_follow_load: false, log_every: 1, micro_batch_size: 1, max_steps: $steps}
optim: {lr: 1.0e-4, warmup_steps: 1}
checkpoint: {every: 0, keep_last: 1}
log: {progress: off}
YAML
  OMP_NUM_THREADS=$threads "$bin" --log-level warn train --config "$work/$1.yaml" >/dev/null 2>&1
  python3 - "$work/$1/metrics.jsonl" <<'PY'
import json, sys, statistics as st
recs = [json.loads(l) for l in open(sys.argv[1])]
recs = [r for r in recs if "loss" in r and "val_loss" not in r][1:]
sup = st.mean(sum(v for k, v in r.items() if k.startswith("num_loss_") and k.endswith("_ce")) for r in recs)
print(st.median(1 / r["samples_per_s"] for r in recs), st.mean(r["num_tokens"] / r["num_samples"] for r in recs), sup)
PY
}

echo "| round | trainer step | tokens / supervised | Python, logits answer | ratio | same, heap reuse | ratio | Python, logits all | ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  read -r t_ours len sup < <(ours "r$r")
  answer=$(python3 -c "print(round($sup))")
  # twin sequence = 4 + image tokens (64 at 256x256) + 1 + prompt + 5 + answer
  prompt=$(python3 -c "print(max(0, round($len) - 74 - $answer))")
  py() { /usr/bin/python3 "$twin" --preset "$preset" --image 256 --prompt "$prompt" --answer "$answer" \
           --steps "$steps" --threads "$threads" --logits "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['median_step_s'])"; }
  t_ans=$(py answer)
  t_reuse=$(GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647 py answer)
  t_all=$(py all)
  python3 -c "
o, a, h, l = $t_ours, $t_ans, $t_reuse, $t_all
print(f'| $r | {o:.3f} s | {round($len)} / $answer | {a:.3f} s | {o / a:.2f}x | {h:.3f} s | {o / h:.2f}x | {l:.3f} s | {o / l:.2f}x |')"
done
