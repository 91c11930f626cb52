// COCO bbox evaluation (eval/coco.h) on hand-built cases whose answers are derived by hand in the
// comments: perfect detections, a box at IoU exactly 0.6, duplicates, a missed object, score ties
// (within and across images), no detections, an image without GT, crowd regions, maxDets, and the
// pycocotools threshold grid itself. tests/eval_golden/check_hand_cases.py runs the same cases through
// the real pycocotools (all agree).
#include <gtest/gtest.h>

#include "coordexp/eval/coco.h"

namespace ce = coordexp::eval;

namespace {

ce::CocoBox xyxy(double x1, double y1, double x2, double y2) { return ce::coco_box_from_xyxy(x1, y1, x2, y2); }
ce::CocoGt gt(double x1, double y1, double x2, double y2, int cat = 0, bool crowd = false) {
  return {xyxy(x1, y1, x2, y2), cat, crowd};
}
ce::CocoDet det(double x1, double y1, double x2, double y2, double score, int cat = 0) {
  return {xyxy(x1, y1, x2, y2), cat, score};
}

}  // namespace

TEST(CocoGrid, ThresholdsMatchNumpyLinspace) {
  const ce::CocoParams p;
  // np.linspace(.5, 0.95, 10).tolist() and np.linspace(0, 1, 101) as printed by NumPy 1.24.
  const std::vector<double> expected = {0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95};
  ASSERT_EQ(p.iou_thresholds.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(p.iou_thresholds[i], expected[i]) << i;
  ASSERT_EQ(p.recall_thresholds.size(), 101u);
  EXPECT_EQ(p.recall_thresholds[50], 0.5);
  EXPECT_EQ(p.recall_thresholds[51], 0.51);
  EXPECT_EQ(p.recall_thresholds[100], 1.0);
}

TEST(CocoIou, UnionOrDetectionAreaForCrowd) {
  const ce::CocoBox inside = xyxy(10, 10, 20, 20), region = xyxy(0, 0, 100, 100);
  EXPECT_DOUBLE_EQ(ce::coco_iou(inside, region, false), 100.0 / 10000.0);
  EXPECT_DOUBLE_EQ(ce::coco_iou(inside, region, true), 1.0);  // intersection / detection area
  EXPECT_EQ(ce::coco_iou(xyxy(0, 0, 10, 10), xyxy(10, 0, 20, 10), false), 0.0);  // touching: no overlap
  EXPECT_EQ(ce::coco_iou(xyxy(5, 5, 5, 5), xyxy(5, 5, 5, 5), false), 0.0);      // empty boxes
  // Shift a 100x100 box by 25 px: intersection 75*100, union 2*10000 - 7500 -> exactly 0.6.
  EXPECT_EQ(ce::coco_iou(xyxy(25, 0, 125, 100), xyxy(0, 0, 100, 100), false), 0.6);
}

TEST(CocoEval, PerfectDetectionsScoreOne) {
  // Category 0: a small (20x20 = 400 px^2) and a medium (50x50) object; category 1: a large one.
  ce::CocoImage img;
  img.gts = {gt(10, 10, 30, 30, 0), gt(100, 100, 150, 150, 0), gt(200, 200, 400, 400, 1)};
  img.dets = {det(10, 10, 30, 30, 0.9, 0), det(100, 100, 150, 150, 0.8, 0), det(200, 200, 400, 400, 0.7, 1)};
  const ce::CocoResult r = ce::coco_evaluate({img}, 2);
  const ce::CocoStats& s = r.stats;
  for (double v : {s.ap, s.ap50, s.ap75, s.ap_small, s.ap_medium, s.ap_large, s.ar10, s.ar100, s.ar_small,
                   s.ar_medium, s.ar_large})
    EXPECT_DOUBLE_EQ(v, 1.0);
  // maxDets 1 is per image *and category*: category 0 finds one of its two objects (recall 0.5),
  // category 1 its only one (1.0): AR1 = mean(0.5, 1.0) = 0.75.
  EXPECT_DOUBLE_EQ(s.ar1, 0.75);
  EXPECT_DOUBLE_EQ(r.per_category_ap[0], 1.0);
  EXPECT_DOUBLE_EQ(r.per_category_ap[1], 1.0);
  EXPECT_EQ(r.per_category_num_gt[0], 2);
}

TEST(CocoEval, OneBoxAtIou06) {
  // Two large GT (100x100 = 10000 px^2 > 96^2). Detection of B is exact (score 0.9), detection of A is
  // shifted by 25 px: IoU exactly 0.6 (score 0.8).
  //  * thresholds 0.50, 0.55, 0.60 (IoU >= t matches): both TP -> precision 1 at every recall -> AP_t = 1.
  //  * thresholds 0.65 .. 0.95 (7 of them): TP (recall 0.5, precision 1) then FP. Interpolated precision is
  //    1 for recall points 0.00..0.50 (51 of 101) and 0 above -> AP_t = 51/101.
  // AP = (3 * 1 + 7 * 51/101) / 10 = 660/1010; AP50 = 1; AP75 = 51/101.
  // Recall per threshold: 1 (x3), 0.5 (x7) -> AR100 = (3 + 3.5) / 10 = 0.65.
  ce::CocoImage img;
  img.gts = {gt(0, 0, 100, 100), gt(300, 300, 400, 400)};
  img.dets = {det(25, 0, 125, 100, 0.8), det(300, 300, 400, 400, 0.9)};
  const ce::CocoStats s = ce::coco_evaluate({img}, 1).stats;
  EXPECT_NEAR(s.ap, 660.0 / 1010.0, 1e-12);
  EXPECT_DOUBLE_EQ(s.ap50, 1.0);
  EXPECT_NEAR(s.ap75, 51.0 / 101.0, 1e-12);
  EXPECT_NEAR(s.ap_large, 660.0 / 1010.0, 1e-12);
  EXPECT_EQ(s.ap_small, -1.0);  // no GT in the range: undefined
  EXPECT_EQ(s.ap_medium, -1.0);
  EXPECT_NEAR(s.ar100, 0.65, 1e-12);
  EXPECT_EQ(s.ar_small, -1.0);

  // Scores swapped: the shifted box comes first. Above 0.6 it is an FP before the TP: precision 0 then
  // 0.5 at recall 0.5, interpolated to 0.5 for recall points 0..0.50 -> AP_t = 51 * 0.5 / 101.
  // AP = (3 + 7 * 25.5/101) / 10 = 481.5/1010.
  img.dets = {det(25, 0, 125, 100, 0.9), det(300, 300, 400, 400, 0.8)};
  EXPECT_NEAR(ce::coco_evaluate({img}, 1).stats.ap, 481.5 / 1010.0, 1e-12);
}

TEST(CocoEval, DuplicateDetectionsAfterTheMatchCostNothing) {
  // One GT, the same box predicted twice: TP (0.9) then FP (0.8). The FP comes after recall 1 was
  // reached, so interpolated precision stays 1 everywhere: AP = 1 (score-free metrics see it).
  ce::CocoImage img;
  img.gts = {gt(0, 0, 50, 50)};
  img.dets = {det(0, 0, 50, 50, 0.9), det(0, 0, 50, 50, 0.8)};
  EXPECT_DOUBLE_EQ(ce::coco_evaluate({img}, 1).stats.ap, 1.0);
  // A duplicate *above* the real one in score cannot exist (identical boxes: the first one is the TP),
  // but an FP elsewhere above it halves the precision: FP, TP -> AP = 0.5.
  img.dets = {det(200, 200, 250, 250, 0.95), det(0, 0, 50, 50, 0.9)};
  EXPECT_DOUBLE_EQ(ce::coco_evaluate({img}, 1).stats.ap, 0.5);
}

TEST(CocoEval, MissedObject) {
  // Two GT, one exact detection: precision 1 up to recall 0.5 (51 recall points) -> AP = 51/101; AR = 0.5.
  ce::CocoImage img;
  img.gts = {gt(0, 0, 50, 50), gt(100, 100, 150, 150)};
  img.dets = {det(0, 0, 50, 50, 0.9)};
  const ce::CocoStats s = ce::coco_evaluate({img}, 1).stats;
  EXPECT_NEAR(s.ap, 51.0 / 101.0, 1e-12);
  EXPECT_DOUBLE_EQ(s.ar100, 0.5);
}

TEST(CocoEval, ScoreTiesKeepInputOrder) {
  // One GT; an FP and a TP with the same score. Stable order: whichever is listed first ranks first.
  ce::CocoImage img;
  img.gts = {gt(0, 0, 50, 50)};
  img.dets = {det(200, 200, 250, 250, 0.5), det(0, 0, 50, 50, 0.5)};  // FP first: precision 0, then 0.5
  EXPECT_DOUBLE_EQ(ce::coco_evaluate({img}, 1).stats.ap, 0.5);
  img.dets = {det(0, 0, 50, 50, 0.5), det(200, 200, 250, 250, 0.5)};  // TP first
  EXPECT_DOUBLE_EQ(ce::coco_evaluate({img}, 1).stats.ap, 1.0);

  // Across images the image order decides (pycocotools concatenates images in id order).
  ce::CocoImage with_gt, without_gt;
  with_gt.gts = {gt(0, 0, 50, 50)};
  with_gt.dets = {det(0, 0, 50, 50, 0.5)};
  without_gt.dets = {det(0, 0, 50, 50, 0.5)};
  EXPECT_DOUBLE_EQ(ce::coco_evaluate({with_gt, without_gt}, 1).stats.ap, 1.0);
  EXPECT_DOUBLE_EQ(ce::coco_evaluate({without_gt, with_gt}, 1).stats.ap, 0.5);
}

TEST(CocoEval, NoDetectionsAndImagesWithoutGt) {
  ce::CocoImage img;
  img.gts = {gt(0, 0, 50, 50)};
  // No detections at all: defined (there is GT) and zero.
  const ce::CocoStats none = ce::coco_evaluate({img}, 1).stats;
  EXPECT_EQ(none.ap, 0.0);
  EXPECT_EQ(none.ar100, 0.0);
  // No GT anywhere: every number is undefined (-1).
  ce::CocoImage empty;
  empty.dets = {det(0, 0, 10, 10, 0.3)};
  for (double v : ce::coco_evaluate({empty}, 1).stats.values()) EXPECT_EQ(v, -1.0);
  // An image without GT contributes false positives: its 0.9 detection ranks above the TP (0.5).
  img.dets = {det(0, 0, 50, 50, 0.5)};
  ce::CocoImage no_gt;
  no_gt.dets = {det(0, 0, 50, 50, 0.9)};
  EXPECT_DOUBLE_EQ(ce::coco_evaluate({img, no_gt}, 1).stats.ap, 0.5);
  no_gt.dets[0].score = 0.1;  // below the TP: after recall 1, costs nothing
  EXPECT_DOUBLE_EQ(ce::coco_evaluate({img, no_gt}, 1).stats.ap, 1.0);
}

TEST(CocoEval, CrowdRegions) {
  // A crowd region (0,0)-(200,200) and a regular medium object. Three detections inside the region
  // (crowd IoU = intersection / detection area = 1) rank above the real one: they match the region,
  // which never gets used up, and are ignored -> AP = 1.
  ce::CocoImage img;
  img.gts = {gt(0, 0, 200, 200, 0, /*crowd=*/true), gt(300, 300, 350, 350)};
  img.dets = {det(10, 10, 40, 40, 0.9), det(50, 50, 90, 90, 0.8), det(100, 100, 180, 190, 0.7),
              det(300, 300, 350, 350, 0.6)};
  ce::CocoResult r = ce::coco_evaluate({img}, 1);
  EXPECT_DOUBLE_EQ(r.stats.ap, 1.0);
  EXPECT_EQ(r.per_category_num_gt[0], 1);  // crowd GT are not counted
  // The same region as a regular object: now there are 2 GT, the three boxes inside it (IoU <= 0.18)
  // are false positives before the TP, and the region is never found: precision 1/4 at recall 0.5,
  // nothing above -> 51 recall points of 0.25 -> AP = 51 * 0.25 / 101.
  img.gts[0].crowd = false;
  EXPECT_NEAR(ce::coco_evaluate({img}, 1).stats.ap, 51 * 0.25 / 101, 1e-12);

  // A detection that matches a regular GT (IoU 0.81) and also lies in a crowd region prefers the
  // regular GT (ignored GT are sorted last and cannot replace a regular match): it is a TP.
  ce::CocoImage both;
  both.gts = {gt(0, 0, 100, 100, 0, true), gt(0, 0, 100, 100)};
  both.dets = {det(0, 0, 90, 90, 0.9)};
  EXPECT_DOUBLE_EQ(ce::coco_evaluate({both}, 1).stats.ap50, 1.0);
}

TEST(CocoEval, AreaRangesAndMaxDetsPerCategory) {
  // 12 exact detections of 12 small objects in one image, plus nothing else. AR1 = 1/12,
  // AR10 = 10/12, AR100 = 1. APm/APl undefined (no GT there).
  ce::CocoImage img;
  for (int i = 0; i < 12; ++i) {
    img.gts.push_back(gt(i * 40, 0, i * 40 + 20, 20));
    img.dets.push_back(det(i * 40, 0, i * 40 + 20, 20, 1.0 - i * 0.01));
  }
  const ce::CocoStats s = ce::coco_evaluate({img}, 1).stats;
  EXPECT_NEAR(s.ar1, 1.0 / 12.0, 1e-12);
  EXPECT_NEAR(s.ar10, 10.0 / 12.0, 1e-12);
  EXPECT_DOUBLE_EQ(s.ar100, 1.0);
  EXPECT_DOUBLE_EQ(s.ap_small, 1.0);
  EXPECT_EQ(s.ap_medium, -1.0);
  EXPECT_EQ(s.ap_large, -1.0);
}

TEST(CocoEval, AreaOfTheGtDecidesForMatchedDetections) {
  // A small GT (40x25 = 1000 px^2 < 32^2) found by a medium-sized box (40x25.75 = 1030 px^2,
  // IoU 1000/1030 = 0.971, a match at every threshold): in the small range it is a TP (matched
  // detections are never area-filtered); in the medium range the GT is ignored, so is the detection
  // matched to it, and no GT is left -> APm undefined.
  ce::CocoImage img;
  img.gts = {gt(0, 0, 40, 25)};
  img.dets = {det(0, 0, 40, 25.75, 0.9)};
  const ce::CocoStats s = ce::coco_evaluate({img}, 1).stats;
  EXPECT_DOUBLE_EQ(s.ap_small, 1.0);
  EXPECT_EQ(s.ap_medium, -1.0);
  // An unmatched medium detection (40x40) is ignored in the small range: it costs nothing there, but
  // is an FP in "all" (ranked first -> AP 0.5).
  img.dets = {det(100, 100, 140, 140, 0.95), det(0, 0, 40, 25.75, 0.9)};
  const ce::CocoStats t = ce::coco_evaluate({img}, 1).stats;
  EXPECT_DOUBLE_EQ(t.ap_small, 1.0);
  EXPECT_DOUBLE_EQ(t.ap, 0.5);
}
