#!/usr/bin/env python3
"""Generates the randomized golden case of tests/unit/eval/golden_test.cpp: a GT JSONL (data
contract, with crowd objects and desc spelling variants), a prediction JSONL (infer's format, with
score ties, duplicates, false positives, unmapped descs, one image with 120 detections) and the
expected COCO numbers computed by the REAL pycocotools COCOeval (not by coordexp).

pycocotools is not vendored. Get its Python sources (no build needed; the C mask extension is
replaced by tests/eval_golden/mask_shim.py, bbox IoU only):
    git clone https://github.com/cocodataset/cocoapi /tmp/cocoapi
Then run (NumPy required, e.g. Debian's python3-numpy):
    /usr/bin/python3 tests/eval_golden/make_golden.py --pycocotools /tmp/cocoapi/PythonAPI/pycocotools \
        --out tests/data/eval_golden
"""
import argparse
import importlib.util
import json
import os
import random
import sys
import types

import numpy as np

CATEGORIES = ["person", "black cat", "dog", "traffic light", "car", "umbrella"]
SPELLINGS = {"black cat": ["Black Cat", "black  cat", " black cat "], "traffic light": ["Traffic light"],
             "dog": ["DOG", "dog "]}
IOU_THRESHOLDS = np.linspace(.5, 0.95, 10)


def load_pycocotools(folder):
    """Imports coco.py and cocoeval.py from `folder` as package pycocotools, with the mask shim and
    stub matplotlib modules (coco.py imports matplotlib for showAnns only)."""
    if not hasattr(np, "float"):
        np.float = float  # cocoeval.py uses the alias removed in NumPy 1.24
    here = os.path.dirname(os.path.abspath(__file__))
    pkg = types.ModuleType("pycocotools")
    pkg.__path__ = [folder]
    sys.modules["pycocotools"] = pkg
    spec = importlib.util.spec_from_file_location("pycocotools.mask", os.path.join(here, "mask_shim.py"))
    mask = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mask)
    sys.modules["pycocotools.mask"] = mask
    for name in ["matplotlib", "matplotlib.pyplot", "matplotlib.collections", "matplotlib.patches"]:
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["matplotlib.collections"].PatchCollection = object
    sys.modules["matplotlib.patches"].Polygon = object
    from pycocotools.coco import COCO  # noqa: E402
    from pycocotools.cocoeval import COCOeval  # noqa: E402
    return COCO, COCOeval


def box_iou(d, g, crowd):
    w = min(d[2] + d[0], g[2] + g[0]) - max(d[0], g[0])
    h = min(d[3] + d[1], g[3] + g[1]) - max(d[1], g[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (d[2] * d[3] if crowd else d[2] * d[3] + g[2] * g[3] - inter)


def near_threshold(d, gts):
    """True when an IoU of d with any GT lies within 1e-6 of a COCO threshold: then float noise
    between two implementations (x vs (x/W)*W) could flip a match, so the box is redrawn."""
    return any(abs(box_iou(d, g["bbox"], g["iscrowd"]) - t) < 1e-6 for g in gts for t in IOU_THRESHOLDS)


def r2(v):
    return round(v, 2)


def make_box(x1, y1, x2, y2, W, H):
    """A box kept as [x1, y1, x2, y2] (2 decimals, inside the image, so coordexp never clamps it)
    with its pycocotools form [x1, y1, x2 - x1, y2 - y1] computed the way coordexp computes it."""
    x1, x2 = r2(min(max(x1, 0.0), W)), r2(min(max(x2, 0.0), W))
    y1, y2 = r2(min(max(y1, 0.0), H)), r2(min(max(y2, 0.0), H))
    x2, y2 = max(x2, r2(x1 + 1.0)), max(y2, r2(y1 + 1.0))
    if x2 > W:
        x1, x2 = r2(W - 1.0), float(W)
    if y2 > H:
        y1, y2 = r2(H - 1.0), float(H)
    return {"xyxy": [x1, y1, x2, y2], "xywh": [x1, y1, x2 - x1, y2 - y1]}


def random_box(rng, W, H):
    side_w = min(W * 0.9, np.exp(rng.uniform(np.log(6), np.log(420))))
    side_h = min(H * 0.9, side_w * rng.uniform(0.5, 1.8))
    x = rng.uniform(0, W - side_w)
    y = rng.uniform(0, H - side_h)
    return make_box(x, y, x + side_w, y + side_h, W, H)


def jitter(rng, b, W, H, amount):
    x, y, w, h = b["xywh"]
    nx = x + rng.gauss(0, amount * w)
    ny = y + rng.gauss(0, amount * h)
    nw = max(1.0, w * np.exp(rng.gauss(0, amount)))
    nh = max(1.0, h * np.exp(rng.gauss(0, amount)))
    return make_box(nx, ny, nx + nw, ny + nh, W, H)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pycocotools", required=True, help="folder with pycocotools' coco.py and cocoeval.py")
    ap.add_argument("--out", required=True, help="output folder (gt.jsonl, pred.jsonl, expected.json)")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--images", type=int, default=48)
    args = ap.parse_args()
    COCO, COCOeval = load_pycocotools(os.path.abspath(args.pycocotools))
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)

    cat_id = {c: i + 1 for i, c in enumerate(sorted(CATEGORIES))}
    images, gt_anns, results = [], [], []
    gt_lines, pred_lines = [], []
    sizes = [(640, 480), (320, 240), (1000, 750), (500, 500)]
    for i in range(args.images):
        W, H = sizes[rng.randrange(len(sizes))]
        path = "images/img_%03d.jpg" % i
        images.append({"id": i + 1, "width": W, "height": H, "file_name": path})
        n_gt = 0 if i % 11 == 3 else rng.randint(1, 10)
        objs, gts = [], []
        for _ in range(n_gt):
            cat = rng.choice(CATEGORIES)
            b = random_box(rng, W, H)
            crowd = rng.random() < 0.1
            desc = rng.choice(SPELLINGS.get(cat, [cat]) + [cat])
            o = {"desc": desc, "bbox_2d": b["xyxy"]}
            if crowd:
                o["crowd"] = True
            objs.append(o)
            bb = b["xywh"]
            g = {"id": len(gt_anns) + 1, "image_id": i + 1, "category_id": cat_id[cat], "bbox": bb,
                 "area": bb[2] * bb[3], "iscrowd": int(crowd), "box": b}
            gt_anns.append(g)
            gts.append(g)
        gt_lines.append({"images": [path], "width": W, "height": H, "objects": objs})

        preds = []  # (desc, xywh, score)
        def add(desc, cat, make):
            for _ in range(50):
                b = make()
                if not near_threshold(b["xywh"], [g for g in gts if cat is None or g["category_id"] == cat_id[cat]]):
                    break
            score = round(rng.random(), 1 if rng.random() < 0.5 else 2)
            preds.append((desc, b, score, cat))
        for g, o in zip(gts, objs):
            if rng.random() < 0.8:
                cat = next(c for c in CATEGORIES if cat_id[c] == g["category_id"])
                if rng.random() < 0.1:
                    cat = rng.choice(CATEGORIES)
                add(cat, cat, lambda: jitter(rng, g["box"], W, H, rng.choice([0.03, 0.1, 0.25])))
                if rng.random() < 0.15:  # a near-duplicate
                    add(cat.upper(), cat, lambda: jitter(rng, g["box"], W, H, 0.02))
        for _ in range(rng.randint(0, 4)):  # false positives
            cat = rng.choice(CATEGORIES)
            add(cat, cat, lambda: random_box(rng, W, H))
        if rng.random() < 0.3:  # a desc that is no GT category: not in COCO AP
            preds.append(("unicorn", random_box(rng, W, H), round(rng.random(), 2), None))
        if i == 7:  # many detections of one category: exercises maxDets 1/10/100
            for _ in range(120):
                add("car", "car", lambda: random_box(rng, W, H))
        rng.shuffle(preds)
        pobjs = []
        for desc, b, score, cat in preds:
            pobjs.append({"desc": desc, "bbox_2d": b["xyxy"], "score": score})
            if cat is not None:
                results.append({"image_id": i + 1, "category_id": cat_id[cat], "bbox": b["xywh"], "score": score})
        pred_lines.append({"images": [path], "width": W, "height": H, "text": "", "parse_status": "complete",
                           "finish_reason": "eos", "objects": pobjs})

    with open(os.path.join(args.out, "gt.jsonl"), "w") as f:
        for l in gt_lines:
            f.write(json.dumps(l) + "\n")
    with open(os.path.join(args.out, "pred.jsonl"), "w") as f:
        for l in pred_lines:
            f.write(json.dumps(l) + "\n")

    for g in gt_anns:
        del g["box"]
    gt = COCO()
    gt.dataset = {"images": images, "annotations": gt_anns,
                  "categories": [{"id": cat_id[c], "name": c} for c in sorted(CATEGORIES)]}
    gt.createIndex()
    dt = gt.loadRes(results)
    E = COCOeval(gt, dt, "bbox")
    E.evaluate()
    E.accumulate()
    E.summarize()
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
    per_cat = {}
    for k, c in enumerate(sorted(CATEGORIES)):
        p = E.eval["precision"][:, :, k, 0, 2]
        per_cat[c] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
    expected = {"generator": "tests/eval_golden/make_golden.py --seed %d --images %d" % (args.seed, args.images),
                "computed_by": "pycocotools COCOeval (cocodataset/cocoapi), bbox, default Params",
                "num_gt": len(gt_anns), "num_results": len(results),
                "coco": dict(zip(names, [float(v) for v in E.stats])), "per_category": per_cat}
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    print("wrote", args.out, "gt objects", len(gt_anns), "results", len(results))


if __name__ == "__main__":
    main()
