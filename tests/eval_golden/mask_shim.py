"""Stand-in for pycocotools.mask (whose C extension is not built here) with only what COCOeval
needs for iouType='bbox': iou(dt, gt, iscrowd) on [x, y, w, h] boxes, written from the semantics of
maskApi.c bbIou (intersection over union; over the detection's own area for crowd GT)."""
import numpy as np


def iou(dt, gt, iscrowd):
    if len(dt) == 0 or len(gt) == 0:
        return []
    d = np.asarray(dt, dtype=np.float64).reshape(-1, 4)
    g = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    crowd = np.asarray(iscrowd, dtype=bool).reshape(-1)
    out = np.zeros((len(d), len(g)))
    for j in range(len(g)):
        ga = g[j, 2] * g[j, 3]
        for i in range(len(d)):
            da = d[i, 2] * d[i, 3]
            w = min(d[i, 2] + d[i, 0], g[j, 2] + g[j, 0]) - max(d[i, 0], g[j, 0])
            if w <= 0:
                continue
            h = min(d[i, 3] + d[i, 1], g[j, 3] + g[j, 1]) - max(d[i, 1], g[j, 1])
            if h <= 0:
                continue
            inter = w * h
            union = da if crowd[j] else da + ga - inter
            out[i, j] = inter / union
    return out


def _unsupported(*args, **kwargs):
    raise NotImplementedError("mask_shim only supports bbox IoU")


encode = decode = area = toBbox = frPyObjects = merge = _unsupported
