#!/usr/bin/env python3
# Learning curve of a training run as a Markdown table: the training loss terms averaged over
# windows of --every steps from metrics.jsonl, and the validation lines (val_*) as they come.
#   scripts/demo-learning-curve.py runs/demo-stage1/run/metrics.jsonl [--every 100] > curve.md
import argparse
import json

TRAIN = ["loss", "loss_coord_token_ce", "loss_coord_dist_dfl", "loss_geo_huber", "loss_geo_ciou", "loss_struct_ce",
         "loss_desc_ce", "lr", "samples_per_s"]
VAL = ["val_loss", "val_loss_coord_token_ce", "val_loss_coord_dist_dfl", "val_loss_geo_ciou", "val_loss_struct_ce",
       "val_loss_desc_ce"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("metrics")
    ap.add_argument("--every", type=int, default=100)
    args = ap.parse_args()
    rows = [json.loads(l) for l in open(args.metrics) if l.strip()]
    train = [r for r in rows if "loss" in r and not any(k.startswith("val_") for k in r)]
    val = [r for r in rows if "val_loss" in r]
    cols = [c for c in TRAIN if any(c in r for r in train)]
    print("Training (mean over each window of %d steps):\n" % args.every)
    print("| steps | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    window, start = [], None
    for r in train:
        if start is None:
            start = r["step"]
        window.append(r)
        if r["step"] - start + 1 >= args.every or r is train[-1]:
            vals = []
            for c in cols:
                xs = [w[c] for w in window if c in w]
                vals.append("%.4g" % (sum(xs) / len(xs)) if xs else "")
            print("| %d-%d | %s |" % (start, r["step"], " | ".join(vals)))
            window, start = [], None
    if val:
        vcols = [c for c in VAL if any(c in r for r in val)]
        print("\nValidation:\n")
        print("| step | " + " | ".join(vcols) + " |")
        print("|---" * (len(vcols) + 1) + "|")
        for r in val:
            print("| %d | %s |" % (r["step"], " | ".join("%.4g" % r[c] if c in r else "" for c in vcols)))


if __name__ == "__main__":
    main()
