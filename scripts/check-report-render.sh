#!/usr/bin/env bash
# Renders a report.html of a small synthetic run in headless Chromium and writes a screenshot, so a
# person can check that eval + visualize + report produce a readable page (charts, tables, contact
# sheet) without any network. Not part of ctest (CI machines may lack Chromium).
# Usage: scripts/check-report-render.sh [BUILD_DIR] [OUT_PNG]   (defaults: build, /tmp/coordexp-report.png)
# Needs: coordexp-train built in BUILD_DIR, python3, chromium (Debian: apt-get install chromium).
set -euo pipefail
BUILD=${1:-build}
SHOT=${2:-/tmp/coordexp-report.png}
BIN="$BUILD/coordexp-train"
[[ -x "$BIN" ]] || { echo "error: $BIN not found (build the coordexp-train target)" >&2; exit 1; }
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[[ -n "$CHROMIUM" ]] || { echo "error: chromium not installed (apt-get install chromium)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/coordexp-report-check.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
"$BIN" make-synthetic-data --out "$WORK/data" --num-train 1 --num-val 12 --width 160 --height 120 --max-objects 4 >/dev/null
RUN="$WORK/run"
mkdir -p "$RUN/eval"

# Two prediction files ("before": boxes shifted and some missed; "after": close to the GT) and a
# metrics.jsonl with Channel-A and Channel-B steps.
python3 - "$WORK/data/val.jsonl" "$WORK" "$RUN/metrics.jsonl" <<'PY'
import json, math, random, sys
gt_path, work, metrics = sys.argv[1:]
rng = random.Random(3)
lines = [json.loads(l) for l in open(gt_path) if l.strip()]
for name, shift, keep in [("before", 0.35, 0.6), ("after", 0.05, 0.95)]:
    with open(f"{work}/pred_{name}.jsonl", "w") as f:
        for g in lines:
            objs = []
            for o in g["objects"]:
                if rng.random() > keep:
                    continue
                x1, y1, x2, y2 = o["bbox_2d"]
                dx = (x2 - x1) * rng.uniform(-shift, shift)
                dy = (y2 - y1) * rng.uniform(-shift, shift)
                objs.append({"desc": o["desc"], "bbox_2d": [max(0, x1 + dx), max(0, y1 + dy),
                             min(g["width"], x2 + dx), min(g["height"], y2 + dy)], "score": round(rng.random(), 2)})
            if rng.random() < 0.3:
                objs.append({"desc": "blue triangle", "bbox_2d": [5, 5, 30, 30], "score": 0.3})
            f.write(json.dumps({"images": g["images"], "width": g["width"], "height": g["height"], "text": "",
                                "parse_status": "complete" if rng.random() < 0.9 else "truncated",
                                "finish_reason": "eos", "objects": objs}) + "\n")
with open(metrics, "w") as f:
    for step in range(1, 201):
        kind = "B" if step > 60 and step % 4 == 0 else "A"
        r = {"step": step, "epoch": step // 50, "loss": 3.0 * math.exp(-step / 60) + 0.4 + rng.uniform(0, 0.1),
             "loss_struct_ce": 0.8 * math.exp(-step / 40) + 0.05, "loss_desc_ce": 0.6 * math.exp(-step / 80) + 0.1,
             "loss_coord_token_ce": 1.5 * math.exp(-step / 70) + 0.2, "loss_geo_ciou": 0.5 * math.exp(-step / 90) + 0.1,
             "lr": 1e-4 * min(1.0, step / 20), "grad_norm": 2.0 * math.exp(-step / 100) + rng.uniform(0, 0.3),
             "tokens_per_s": 900 + rng.uniform(-50, 50), "step_kind": kind}
        if kind == "A":
            r["a_ctx_shift_bins"] = 3.0 * math.exp(-step / 100) + 0.5
        else:
            r["b_num_matched"] = 2 + rng.random()
            r["b_fn_injected"] = 1 + rng.random()
        if step % 50 == 0:
            r["val_loss"] = r["loss"] + 0.2
        f.write(json.dumps(r) + "\n")
PY

"$BIN" eval --gt "$WORK/data/val.jsonl" --pred "$WORK/pred_before.jsonl" --out "$RUN/eval/step_000100.json" >/dev/null
"$BIN" eval --gt "$WORK/data/val.jsonl" --pred "$WORK/pred_after.jsonl" --out "$RUN/eval/step_000200.json" >/dev/null
"$BIN" visualize --gt "$WORK/data/val.jsonl" --pred "$WORK/pred_after.jsonl" --out "$RUN/vis" --num 9 >/dev/null
"$BIN" report --run "$RUN"

"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --screenshot="$SHOT" --window-size=1200,2000 "file://$RUN/report.html" 2>/dev/null
[[ -s "$SHOT" ]] || { echo "error: no screenshot written" >&2; exit 1; }
cp "$RUN/report.html" "${SHOT%.png}.html"
echo "screenshot: $SHOT (report copied to ${SHOT%.png}.html)"
