#!/usr/bin/env bash
# bench_channel_a: trainer step time of Stage-1 next to Channel-A N = 1..4 with and without
# channel_a.prefix_reuse, on the same batch (4 demo-shapes images of 256x256 with 1-4 objects; the
# dataset is exactly one micro-batch, shuffle off, so every step sees it), CPU float32, 1 thread,
# from the trainer's own metrics (step time = 4 / samples_per_s with log_every 1; median over steps
# 2..STEPS). ROUNDS repeats the whole set of variants back to back (read ratios within a round).
# MODEL: demo = the shipped demo Stage-1 checkpoint (tests/data/demo-stage1, 192 wide, 4 layers);
#        medium = bench_model's ~119M text shape (768 wide, 12 layers, vision 384 x 4) made with
#        make-tiny on the demo tokenizer (vocab 5,283 instead of 32,000), random weights.
# VARIANTS (environment) picks a subset, e.g. VARIANTS="stage1 a2_full a2_reuse" (stage1 is required:
# the ratios are to it). The reused column: the share of the self-context forwards' positions taken
# from forward 0 (a_reused_positions / (a_reused_positions + a_computed_positions)).
# Usage: [VARIANTS=...] tests/bench/bench_channel_a.sh [BUILD_DIR] [STEPS] [MODEL] [ROUNDS]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$here/build}"
steps="${2:-8}"
model_kind="${3:-demo}"
rounds="${4:-1}"
bin="$build/coordexp-train"
work="$(mktemp -d /tmp/bench_channel_a.XXXXXX)"
trap 'rm -rf "$work"' EXIT

"$bin" make-demo-data --out "$work/data" --train 4 --val 1 --size 256 --seed 5 >/dev/null
case "$model_kind" in
  demo) model="$here/tests/data/demo-stage1" ;;
  medium)
    cat > "$work/medium.yaml" <<EOF
seed: 0
dtype: float32
tie_word_embeddings: true
text: {hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 12,
       num_key_value_heads: 4, head_dim: 64, mrope_section: [12, 10, 10]}
vision: {depth: 4, hidden_size: 384, num_heads: 6, intermediate_size: 1536, num_position_embeddings: 256,
         deepstack_visual_indexes: [1, 2], patch_size: 16, temporal_patch_size: 2, spatial_merge_size: 2}
EOF
    "$bin" --log-level warn make-tiny --spec "$work/medium.yaml" --tokenizer "$here/tests/data/demo-stage1" \
      --out "$work/medium" >/dev/null
    model="$work/medium" ;;
  *) echo "MODEL must be demo or medium" >&2; exit 2 ;;
esac

run() {  # name stage n_softctx_iter prefix_reuse
  cat > "$work/$1.yaml" <<EOF
model: {path: $model}
data: {train_jsonl: [$work/data/train.jsonl], num_workers: 1, shuffle: false}
preprocess: {min_pixels: 65536, max_pixels: 65536}
train: {output_dir: $work/$1, stage: $2, device: cpu, precision: fp32, seed: 1, num_threads: 1,
        log_every: 1, micro_batch_size: 4, max_steps: $steps}
optim: {lr: 1.0e-5, warmup_steps: 1}
checkpoint: {every: 0, keep_last: 1}
log: {progress: off}
stage2: {b_ratio: 0.0}
channel_a: {n_softctx_iter: $3, prefix_reuse: $4}
loss: {geo: {weight: 1.0}}
EOF
  rm -rf "$work/$1"
  "$bin" --log-level warn train --config "$work/$1.yaml" >/dev/null
}

variants="stage1"
for n in 1 2 3 4; do variants="$variants a${n}_full a${n}_reuse"; done
variants="${VARIANTS:-$variants}"
case " $variants " in *" stage1 "*) ;; *) echo "VARIANTS must include stage1" >&2; exit 2 ;; esac
for r in $(seq 1 "$rounds"); do
  for v in $variants; do
    case "$v" in
      stage1) run "r${r}_$v" stage1 1 true ;;
      *_full) n="${v:1:1}"; run "r${r}_$v" stage2 "$n" false ;;
      *_reuse) n="${v:1:1}"; run "r${r}_$v" stage2 "$n" true ;;
    esac
  done
done

python3 - "$work" "$steps" "$rounds" "$variants" <<'EOF'
import json, sys, statistics as st
work, steps, rounds, variants = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split()
def recs(name):
    return [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl") if '"loss"' in l and '"val_loss"' not in l]
print(f"median step over steps 2..{steps}, batch 4 (256x256, 1-4 objects), 1 thread")
for r in range(1, rounds + 1):
    t = {v: st.median(4 / x["samples_per_s"] for x in recs(f"r{r}_{v}")[1:]) for v in variants}
    print(f"round {r}:")
    for v in variants:
        last = recs(f"r{r}_{v}")[-1]
        used, done = last.get("a_reused_positions", 0), last.get("a_computed_positions", 0)
        share = f"  reused {used / (used + done):.0%} of {used + done} positions" if used + done > 0 else ""
        print(f"  {v:10s} {t[v]*1000:8.1f} ms  ({t[v]/t['stage1']:.2f}x stage-1){share}")
EOF
