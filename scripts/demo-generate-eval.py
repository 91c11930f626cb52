#!/usr/bin/env python3
# Quick generation check of a demo checkpoint: runs `coordexp-train generate` on the first N
# records of a val JSONL and counts how many answers parse, how many predicted boxes lie within
# IoU 0.5 of a GT box (desc-aware and desc-agnostic one-to-one greedy matching), recall, F1 and the
# mean best IoU per GT box. Not the project's evaluator (`coordexp-train eval`); a smoke measure.
#   scripts/demo-generate-eval.py --model DIR --val val.jsonl [--n 10] [--config configs/demo/stage1.yaml]
import argparse
import json
import os
import re
import subprocess
import sys

OBJ = re.compile(r'^\s+(dropped \((?P<reason>[^)]*)\) )?(?P<kind>bbox_2d|poly) \[(?P<bins>[^\]]*)\] "(?P<desc>.*)"$')
PARSE = re.compile(r"^parse: (?P<status>\w+), (?P<valid>\d+) valid object\(s\) of (?P<total>\d+)")


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_matches(preds, gts, desc_aware):
    pairs = []
    for i, (pd, pb) in enumerate(preds):
        for j, (gd, gb) in enumerate(gts):
            if desc_aware and pd.strip().lower() != gd.strip().lower():
                continue
            v = iou(pb, gb)
            if v >= 0.5:
                pairs.append((v, i, j))
    used_p, used_g, n = set(), set(), 0
    for v, i, j in sorted(pairs, reverse=True):
        if i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("BUILD_DIR", "build") + "/coordexp-train")
    ap.add_argument("--model", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--config", default="configs/demo/stage1.yaml")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--out", help="write the per-image results and totals as JSON here")
    args = ap.parse_args()

    records = [json.loads(l) for l in open(args.val) if l.strip()][: args.n]
    root = os.path.dirname(os.path.abspath(args.val))
    totals = {"images": 0, "status": {}, "pred": 0, "gt": 0, "tp_desc": 0, "tp_any": 0, "best_iou_sum": 0.0}
    per_image = []
    for r in records:
        image = os.path.join(root, r["images"][0])
        cmd = [args.bin, "generate", "--config", args.config, "--model", args.model, "--image", image, "--log-level", "warn"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit("generate failed on %s:\n%s%s" % (image, out.stdout, out.stderr))
        status, preds = "no_prefix", []
        for line in out.stdout.splitlines():
            m = PARSE.match(line)
            if m:
                status = m.group("status")
            m = OBJ.match(line)
            if m and not m.group("reason") and m.group("kind") == "bbox_2d":
                b = [int(x) for x in m.group("bins").split(",")]
                w, h = r["width"], r["height"]
                preds.append((m.group("desc"), [b[0] / 999 * w, b[1] / 999 * h, b[2] / 999 * w, b[3] / 999 * h]))
        gts = [(o["desc"], o["bbox_2d"]) for o in r["objects"]]
        tp_desc, tp_any = greedy_matches(preds, gts, True), greedy_matches(preds, gts, False)
        best = [max([iou(pb, gb) for _, pb in preds] or [0.0]) for _, gb in gts]
        totals["images"] += 1
        totals["status"][status] = totals["status"].get(status, 0) + 1
        totals["pred"] += len(preds)
        totals["gt"] += len(gts)
        totals["tp_desc"] += tp_desc
        totals["tp_any"] += tp_any
        totals["best_iou_sum"] += sum(best)
        per_image.append({"image": r["images"][0], "status": status, "pred": [[d, [round(v, 1) for v in b]] for d, b in preds],
                          "gt": gts, "tp_desc": tp_desc, "tp_any": tp_any})
        print("%-22s %-10s pred %d gt %d  hits@0.5 desc-aware %d, any desc %d" % (r["images"][0], status, len(preds), len(gts), tp_desc, tp_any))
    t = totals
    f1 = lambda tp: 2 * tp / (t["pred"] + t["gt"]) if t["pred"] + t["gt"] else 0.0
    t["f1_desc"], t["f1_any"] = f1(t["tp_desc"]), f1(t["tp_any"])
    t["recall_desc"] = t["tp_desc"] / t["gt"] if t["gt"] else 0.0
    t["mean_best_iou"] = t["best_iou_sum"] / t["gt"] if t["gt"] else 0.0
    print("images %d, parse status %s; predicted %d boxes for %d GT; within IoU 0.5 of a GT (one-to-one): %d desc-aware, "
          "%d any desc; F1@0.5 %.3f (desc-aware), %.3f (any desc); recall %.3f; mean best IoU per GT %.3f"
          % (t["images"], t["status"], t["pred"], t["gt"], t["tp_desc"], t["tp_any"], t["f1_desc"], t["f1_any"],
             t["recall_desc"], t["mean_best_iou"]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"totals": t, "images": per_image}, f, indent=1)


if __name__ == "__main__":
    main()
