// COCO bounding-box evaluation with pycocotools' semantics (COCOeval, iouType "bbox"), written for
// coordexp: IoU thresholds .50:.05:.95, 101 recall points, area ranges all/small/medium/large,
// maxDets 1/10/100 per image and category, greedy matching by descending score (stable), crowd GT.
// Works on plain boxes with integer category ids; eval/evaluate.h maps JSONL records onto it.
// The rules, with where each one comes from, are in docs/evaluation.md.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace coordexp::eval {

// A box as pycocotools holds it: top-left corner and size, in pixels. area = w * h.
struct CocoBox {
  double x = 0.0, y = 0.0, w = 0.0, h = 0.0;
  double area() const { return w * h; }
};
CocoBox coco_box_from_xyxy(double x1, double y1, double x2, double y2);

// pycocotools' box IoU (maskApi.c bbIou): intersection over union, or over the detection's own
// area when the GT is a crowd region. 0 when the boxes do not overlap (or the union is empty).
double coco_iou(const CocoBox& det, const CocoBox& gt, bool gt_crowd);

struct CocoGt {
  CocoBox box;
  int category = 0;    // 0 .. num_categories-1
  bool crowd = false;  // iscrowd: ignored, matchable many times, its matches are ignored
};
struct CocoDet {
  CocoBox box;
  int category = 0;
  double score = 0.0;  // finite
};
// One image: its GT and its detections (detections in input order: score ties keep this order).
struct CocoImage {
  std::vector<CocoGt> gts;
  std::vector<CocoDet> dets;
};

// The evaluation grid (pycocotools' Params.setDetParams). Thresholds are computed like
// np.linspace so that comparisons agree bit for bit with pycocotools.
struct CocoParams {
  std::vector<double> iou_thresholds;     // 0.50, 0.55, ..., 0.95
  std::vector<double> recall_thresholds;  // 0.00, 0.01, ..., 1.00
  std::vector<int> max_dets = {1, 10, 100};
  // [lo, hi] inclusive, in pixels^2: all, small (< 32^2), medium (32^2..96^2), large (> 96^2).
  std::vector<std::array<double, 2>> area_ranges;
  std::vector<std::string> area_names = {"all", "small", "medium", "large"};
  CocoParams();
};
std::vector<double> numpy_linspace(double start, double stop, int num);

// The 12 numbers of COCOeval.summarize() (fractions; -1 where undefined, e.g. no GT in an area).
struct CocoStats {
  double ap = -1, ap50 = -1, ap75 = -1, ap_small = -1, ap_medium = -1, ap_large = -1;
  double ar1 = -1, ar10 = -1, ar100 = -1, ar_small = -1, ar_medium = -1, ar_large = -1;
  // In summarize() order, with the metrics.json names ("AP", "AP50", ..., "ARl").
  std::array<double, 12> values() const;
  static const std::array<const char*, 12>& names();
};

struct CocoResult {
  CocoStats stats;
  // Per category: AP over .50:.95, area all, maxDets 100 (-1 when the category has no non-crowd
  // GT), and AP at IoU .50.
  std::vector<double> per_category_ap;
  std::vector<double> per_category_ap50;
  std::vector<int64_t> per_category_num_gt;  // non-crowd GT objects
};

// Evaluates every image against every category 0..num_categories-1 (images in the given order:
// it decides score ties across images, as pycocotools' image-id order does). Detections with a
// category outside that range are a caller bug (COORDEXP_CHECK).
CocoResult coco_evaluate(const std::vector<CocoImage>& images, int num_categories,
                         const CocoParams& params = CocoParams());

}  // namespace coordexp::eval
