#!/usr/bin/env python3
"""Runs the hand-built cases of tests/unit/eval/coco_test.cpp through the real pycocotools and prints
the numbers next to the hand-derived ones (a cross-check of the derivations, not a test).
Usage: /usr/bin/python3 tests/eval_golden/check_hand_cases.py PATH/TO/cocoapi/PythonAPI/pycocotools
(get pycocotools as described in make_golden.py)."""
import contextlib
import importlib.util
import io
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("make_golden", os.path.join(here, "make_golden.py"))
mg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mg)
COCO, COCOeval = mg.load_pycocotools(os.path.abspath(sys.argv[1]))

def run(images, ncat=1):
    imgs, anns, res = [], [], []
    for i, (gts, dets) in enumerate(images):
        imgs.append({"id": i+1})
        for (x1,y1,x2,y2,cat,crowd) in gts:
            anns.append({"id": len(anns)+1, "image_id": i+1, "category_id": cat+1, "bbox": [x1,y1,x2-x1,y2-y1], "area": (x2-x1)*(y2-y1), "iscrowd": int(crowd)})
        for (x1,y1,x2,y2,s,cat) in dets:
            res.append({"image_id": i+1, "category_id": cat+1, "bbox": [x1,y1,x2-x1,y2-y1], "score": s})
    gt = COCO(); gt.dataset = {"images": imgs, "annotations": anns, "categories": [{"id": c+1} for c in range(ncat)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex(); dt = gt.loadRes(res); E = COCOeval(gt, dt, "bbox"); E.evaluate(); E.accumulate(); E.summarize()
    return E.stats


def g(x1, y1, x2, y2, cat=0, crowd=False):
    return (x1, y1, x2, y2, cat, crowd)


def d(x1, y1, x2, y2, s, cat=0):
    return (x1, y1, x2, y2, s, cat)


print("perfect", run([([g(10,10,30,30,0),g(100,100,150,150,0),g(200,200,400,400,1)],[d(10,10,30,30,.9,0),d(100,100,150,150,.8,0),d(200,200,400,400,.7,1)])],2))
print("iou06", run([([g(0,0,100,100),g(300,300,400,400)],[d(25,0,125,100,.8),d(300,300,400,400,.9)])]), 660/1010)
print("iou06 swapped", run([([g(0,0,100,100),g(300,300,400,400)],[d(25,0,125,100,.9),d(300,300,400,400,.8)])])[0], 481.5/1010)
print("dup", run([([g(0,0,50,50)],[d(0,0,50,50,.9),d(0,0,50,50,.8)])])[0])
print("ties FP first", run([([g(0,0,50,50)],[d(200,200,250,250,.5),d(0,0,50,50,.5)])])[0])
print("ties across images", run([([g(0,0,50,50)],[d(0,0,50,50,.5)]),([],[d(0,0,50,50,.5)])])[0], run([([],[d(0,0,50,50,.5)]),([g(0,0,50,50)],[d(0,0,50,50,.5)])])[0])
crowd=[d(10,10,40,40,.9),d(50,50,90,90,.8),d(100,100,180,190,.7),d(300,300,350,350,.6)]
print("crowd", run([([g(0,0,200,200,0,True),g(300,300,350,350)],crowd)])[0], run([([g(0,0,200,200,0,False),g(300,300,350,350)],crowd)])[0], 51*.25/101)
print("both", run([([g(0,0,100,100,0,True),g(0,0,100,100)],[d(0,0,90,90,.9)])])[1])
print("area", run([([g(0,0,40,25)],[d(0,0,40,25.75,.9)])])[3:5], run([([g(0,0,40,25)],[d(100,100,140,140,.95),d(0,0,40,25.75,.9)])])[[0,3]])
print("12 small", run([([g(i*40,0,i*40+20,20) for i in range(12)],[d(i*40,0,i*40+20,20,1-i*.01) for i in range(12)])])[[6,7,8,3,4,5]])
print("missed", run([([g(0,0,50,50),g(100,100,150,150)],[d(0,0,50,50,.9)])])[[0,8]], 51/101)
