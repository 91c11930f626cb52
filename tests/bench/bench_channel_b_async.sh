#!/usr/bin/env bash
# bench_channel_b_async: what the asynchronous Channel-B producer buys on this machine. The demo's
# Stage-2 (configs/demo/stage2.yaml: Channel-A N=2 + Channel-B, b_ratio 0.25, batch 4, 1 thread) from
# the shipped demo Stage-1 checkpoint, STEPS optimizer steps, three ways:
#   sync        channel_b.producer sync (the learner rolls out on every B step)
#   async       producer async, deterministic schedule (a B step waits for the actor's rollouts)
#   async-queue producer async, stage2.schedule queue (B only when a whole update is ready)
# Prints the training wall time (first step to last, from train.log timestamps), B steps done, the
# mean learner time of an A and a B step (samples per step / samples_per_s, log_every 1), and the
# learner's mean wait for rollouts on B steps. Run it on a quiet machine; rounds alternate variants.
# Usage: tests/bench/bench_channel_b_async.sh [BUILD_DIR] [STEPS] [ROUNDS]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$here/build}"
steps="${2:-40}"
rounds="${3:-1}"
bin="$build/coordexp-train"
work="$(mktemp -d /tmp/bench_channel_b_async.XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$bin" make-demo-data --out "$work/data" --train 400 --val 8 --size 128 --seed 0 >/dev/null

run() {  # name producer schedule
  local out="$work/$1"
  rm -rf "$out"
  "$bin" --log-level info train --config "$here/configs/demo/stage2.yaml" \
    --set model.path="$here/tests/data/demo-stage1" --set data.train_jsonl="[$work/data/train.jsonl]" \
    --set data.val_jsonl="[]" --set train.eval_every=0 --set train.output_dir="$out" \
    --set train.max_steps="$steps" --set train.log_every=1 --set checkpoint.resume=off \
    --set channel_b.producer="$2" --set stage2.schedule="$3" --set log.progress=off >/dev/null 2>&1
  python3 - "$1" "$out" <<'PY'
import json, sys, datetime
name, out = sys.argv[1], sys.argv[2]
recs = [json.loads(l) for l in open(out + "/metrics.jsonl") if '"step_kind"' in l]
stamps = [l[1:24] for l in open(out + "/train.log") if "] [info] step " in l or "Channel-B:" in l]
t = [datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f") for s in stamps]
wall = (t[-1] - t[0]).total_seconds() if len(t) > 1 else float("nan")
def mean(xs): return sum(xs) / len(xs) if xs else float("nan")
a = [4 / r["samples_per_s"] for r in recs if r["step_kind"] == "A"]
b = [4 / r["samples_per_s"] for r in recs if r["step_kind"] == "B"]
wait = [r.get("b_queue_wait_s", 0.0) for r in recs if r["step_kind"] == "B"]
print(f"{name:12s} wall {wall:7.1f} s  B steps {len(b):3d}/{len(recs)}  A step {mean(a):5.2f} s  "
      f"B step {mean(b):5.2f} s  B wait {mean(wait):5.2f} s")
PY
}
for ((r = 0; r < rounds; ++r)); do
  run sync sync deterministic
  run async async deterministic
  run async-queue async queue
done
