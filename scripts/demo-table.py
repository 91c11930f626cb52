#!/usr/bin/env python3
# Markdown tables of `coordexp-train eval` metrics.json files for scripts/demo.sh (standard library
# only: python3 comes with libtorch-dev's dependencies on Debian 12).
#   scripts/demo-table.py before-after STAGE1.json STAGE2.json
#       rows = metrics, columns = before (Stage-1) / after (Stage-2) / change
#   scripts/demo-table.py compare LABEL=metrics.json ...
#       one row per file; labels "arm/seed" also get a mean row per arm (over its seeds)
# A metric the evaluator reports as undefined (-1, e.g. F1 with no predictions) prints as "n/a".
import json
import sys

# (column name, path in metrics.json); docs/evaluation.md describes every key.
METRICS = {
    "AP": ("coco", "AP"),
    "AP50": ("coco", "AP50"),
    "F1@0.5": ("score_free", "iou50", "location_desc", "f1"),
    "F1@0.5 any desc": ("score_free", "iou50", "location", "f1"),
    "mean matched IoU": ("score_free", "matched_iou", "mean"),
    "parse rate": ("parse", "success_rate"),
    "duplicate rate": ("score_free", "duplicates", "rate"),
}
BEFORE_AFTER = ["AP", "AP50", "F1@0.5", "parse rate", "duplicate rate"]
COMPARE = ["AP", "AP50", "F1@0.5", "mean matched IoU", "parse rate", "duplicate rate"]


def load(path):
    with open(path) as f:
        m = json.load(f)
    out = {}
    for name, keys in METRICS.items():
        v = m
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        out[name] = v if isinstance(v, (int, float)) and v >= 0 else None
    out["_skipped"] = bool(m.get("problems", {}).get("anything_skipped", False))
    return out


def fmt(v):
    return "n/a" if v is None else f"{v:.4f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def before_after(p1, p2):
    a, b = load(p1), load(p2)
    rows = []
    for name in BEFORE_AFTER:
        d = None if a[name] is None or b[name] is None else b[name] - a[name]
        rows.append([name, fmt(a[name]), fmt(b[name]), "n/a" if d is None else f"{d:+.4f}"])
    print(table(["metric (val set)", "Stage-1 checkpoint", "after Stage-2", "change"], rows))
    for label, m in (("Stage-1", a), ("Stage-2", b)):
        if m["_skipped"]:
            print(f"note: the {label} evaluation skipped some input (eval exit 3; see its metrics.json 'problems')")


def compare(args):
    entries = []
    for a in args:
        label, _, path = a.partition("=")
        entries.append((label, load(path)))
    rows, arms = [], {}
    for label, m in entries:
        rows.append([label] + [fmt(m[c]) for c in COMPARE])
        if "/" in label:
            arms.setdefault(label.split("/")[0], []).append(m)
    for arm, ms in arms.items():
        if len(ms) < 2:
            continue
        mean = []
        for c in COMPARE:
            vals = [m[c] for m in ms]
            mean.append("n/a" if any(v is None for v in vals) else fmt(sum(vals) / len(vals)))
        rows.append([f"**{arm} (mean of {len(ms)})**"] + mean)
    print(table(["run"] + COMPARE, rows))
    skipped = [label for label, m in entries if m["_skipped"]]
    if skipped:
        print("\nnote: eval skipped some input (exit 3) for: " + ", ".join(skipped))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "before-after":
        before_after(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "compare":
        compare(sys.argv[2:])
    else:
        sys.exit(__doc__ or "usage: demo-table.py before-after A.json B.json | compare LABEL=FILE ...")
