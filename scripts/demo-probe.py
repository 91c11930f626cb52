#!/usr/bin/env python3
# Step budget of one arm of `scripts/demo.sh --compare` (no wall-clock stop key exists in the
# trainer, so each arm gets max_steps = what fits its wall-clock budget at its own measured speed).
#   scripts/demo-probe.py PROBE_RUN_DIR PROBE_WALL_S BUDGET_S
# Reads the probe run's metrics.jsonl (train.log_every 1): the time of step k is
# (num_samples_k - num_samples_{k-1}) / samples_per_s_k. Mean step time = the mean time of each
# step kind (step_kind A / B; Stage-1 has one kind) weighted by that kind's share of the probe's
# steps, with the first step (allocations, first data batch) left out of the per-kind means.
# Everything of the probe's wall time that is not a step (start-up, model load, final checkpoint)
# counts as overhead and is taken out of the budget once.
# Prints: max_steps mean_step_s overhead_s probe_steps
import json
import math
import sys


def main(run_dir, wall_s, budget_s):
    steps, kinds = [], []
    prev = 0
    with open(f"{run_dir}/metrics.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if "samples_per_s" not in r or "num_samples" not in r:
                continue
            n = r["num_samples"] - prev
            prev = r["num_samples"]
            if r["samples_per_s"] > 0 and n > 0:
                steps.append(n / r["samples_per_s"])
                kinds.append(r.get("step_kind", "-"))
    if len(steps) < 2:
        sys.exit(f"demo-probe: too few logged steps in {run_dir}/metrics.jsonl (need train.log_every 1)")
    mean = 0.0
    for k in set(kinds):
        times = [t for t, kk in zip(steps[1:], kinds[1:]) if kk == k] or [steps[0]]
        mean += kinds.count(k) / len(kinds) * sum(times) / len(times)
    overhead = max(0.0, wall_s - sum(steps))
    max_steps = max(1, math.floor((budget_s - overhead) / mean))
    print(max_steps, f"{mean:.3f}", f"{overhead:.1f}", len(steps))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: demo-probe.py PROBE_RUN_DIR PROBE_WALL_S BUDGET_S")
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
