#!/usr/bin/env bash
# bench_train_decode_threads: Channel-B rollouts inside `train` at train.num_threads 1 vs 2. The
# demo's Stage-2 (configs/demo/stage2.yaml: A N=2 + sync B, b_ratio 0.25, batch 4) from the shipped
# Stage-1 checkpoint on 64 make-demo-data images, 16 steps per run, ROUNDS alternating rounds;
# medians over steps 2.. of each run from metrics.jsonl (A step, B step, B rollout, rollout tokens/s).
# Usage: [STEPS=16] tests/bench/bench_train_decode_threads.sh [BIN] [ROUNDS]   (BIN default build/coordexp-train;
# pass an older binary to compare builds). BUSY=1: one core taken by a busy loop pinned to the last
# CPU (taskset, nice 0) for the whole measurement.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${1:-$here/build/coordexp-train}"
rounds="${2:-2}"
work="$(mktemp -d /tmp/bench_train_decode_threads.XXXXXX)"
load_pid=""
trap '[[ -n $load_pid ]] && kill $load_pid 2>/dev/null; rm -rf "$work"' EXIT
if [[ "${BUSY:-0}" == 1 ]]; then
  taskset -c $(( $(nproc) - 1 )) sh -c 'while :; do :; done' &
  load_pid=$!
fi
"$bin" --log-level warn make-demo-data --out "$work/data" --train 64 --val 8 --size 128 --seed 0 >/dev/null

run() {  # threads out
  (cd "$here" && "$bin" --log-level warn train --config configs/demo/stage2.yaml --set model.path=tests/data/demo-stage1 \
    --set "data.train_jsonl=[$work/data/train.jsonl]" --set "data.val_jsonl=[$work/data/val.jsonl]" \
    --set train.output_dir="$2" --set train.max_steps="${STEPS:-16}" --set train.num_threads="$1" --set train.eval_every=0 \
    --set log.progress=off --set checkpoint.every=0 --set train.log_every=1 >/dev/null 2>&1)
}
for r in $(seq 1 "$rounds"); do
  for t in 1 2; do run "$t" "$work/t$t-r$r"; done
done
python3 - "$work" "$rounds" <<'PY'
import json, sys, statistics as st
work, rounds = sys.argv[1], int(sys.argv[2])
print("| train.num_threads | round | A step | B step | B rollout | rollout tokens/s |")
print("|---|---|---|---|---|---|")
for t in (1, 2):
    for r in range(1, rounds + 1):
        recs = [json.loads(l) for l in open(f"{work}/t{t}-r{r}/metrics.jsonl")]
        recs = [x for x in recs if "loss" in x and "val_loss" not in x][1:]  # step 1 warms up
        a = [4 / x["samples_per_s"] for x in recs if x.get("step_kind") == "A"]
        b = [x for x in recs if x.get("step_kind") == "B"]
        print(f"| {t} | {r} | {st.median(a):.2f} s | {st.median(4 / x['samples_per_s'] for x in b):.2f} s | "
              f"{st.median(x['b_time_rollout_s'] for x in b):.2f} s | {st.median(x['b_rollout_tokens_per_s'] for x in b):.0f} |")
PY
