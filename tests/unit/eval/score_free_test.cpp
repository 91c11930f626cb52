// Score-free metrics (eval/score_free.h) on hand-built images: one-to-one Hungarian matching that
// beats greedy, location-only vs location+desc, IoU 0.5 vs 0.3, duplicates, crowd regions, the
// matched-IoU distribution, and undefined values.
#include <gtest/gtest.h>

#include "coordexp/eval/score_free.h"

namespace ce = coordexp::eval;

namespace {

ce::CocoBox box(double x1, double y1, double x2, double y2) { return ce::coco_box_from_xyxy(x1, y1, x2, y2); }

void add_gt(ce::ScoreFreeImage& img, ce::CocoBox b, int cat, bool crowd = false) {
  img.gt.push_back(b), img.gt_category.push_back(cat), img.gt_crowd.push_back(crowd ? 1 : 0);
}
void add_pred(ce::ScoreFreeImage& img, ce::CocoBox b, int cat, int desc_key) {
  img.pred.push_back(b), img.pred_category.push_back(cat), img.pred_desc_key.push_back(desc_key);
}

}  // namespace

TEST(ScoreFree, LocationVersusLocationDesc) {
  // GT: dog A (0,0)-(100,100), cat B (200,0)-(300,100). Predictions: "dog" on A shifted by 25 px
  // (IoU 0.6), "dog" exactly on B (wrong desc), and a far-away "cat" (FP).
  ce::ScoreFreeImage img;
  add_gt(img, box(0, 0, 100, 100), 0);
  add_gt(img, box(200, 0, 300, 100), 1);
  add_pred(img, box(25, 0, 125, 100), 0, 0);
  add_pred(img, box(200, 0, 300, 100), 0, 0);
  add_pred(img, box(500, 500, 550, 550), 1, 1);
  const ce::ScoreFreeResult r = ce::score_free_metrics({img});
  // Location only @0.5: 2 TP, 1 FP, 0 FN -> P 2/3, R 1, F1 = 2*(2/3)/(5/3) = 0.8.
  EXPECT_EQ(r.location[0].tp, 2);
  EXPECT_EQ(r.location[0].fp, 1);
  EXPECT_EQ(r.location[0].fn, 0);
  EXPECT_NEAR(r.location[0].f1, 0.8, 1e-12);
  // Location+desc @0.5: only A -> TP 1, FP 2, FN 1: P 1/3, R 1/2, F1 = 2*(1/6)/(5/6) = 0.4.
  EXPECT_EQ(r.location_desc[0].tp, 1);
  EXPECT_EQ(r.location_desc[0].fp, 2);
  EXPECT_EQ(r.location_desc[0].fn, 1);
  EXPECT_NEAR(r.location_desc[0].precision, 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(r.location_desc[0].f1, 0.4, 1e-12);
  EXPECT_NEAR(r.count_ratio, 1.5, 1e-12);
  // The IoU distribution uses location+desc pairs with any overlap: just A at 0.6.
  EXPECT_EQ(r.matched_iou.num_pairs, 1);
  EXPECT_DOUBLE_EQ(r.matched_iou.mean, 0.6);
  EXPECT_DOUBLE_EQ(r.matched_iou.median, 0.6);
  EXPECT_EQ(r.matched_iou.histogram[6], 1);
}

TEST(ScoreFree, HungarianFindsTheMaximumMatching) {
  // g1 = (50,0)-(150,100), g2 = (90,0)-(190,100). p1 = (60,0)-(160,100): IoU 90/110 with g1,
  // 70/130 = 0.54 with g2. p2 = (25,0)-(125,100): IoU 75/125 = 0.6 with g1, 35/165 with g2.
  // Greedy by IoU would take p1-g1 and leave p2 unmatched; the one-to-one optimum is p1-g2, p2-g1.
  ce::ScoreFreeImage img;
  add_gt(img, box(50, 0, 150, 100), 0);
  add_gt(img, box(90, 0, 190, 100), 0);
  add_pred(img, box(60, 0, 160, 100), 0, 0);
  add_pred(img, box(25, 0, 125, 100), 0, 0);
  const ce::ScoreFreeResult r = ce::score_free_metrics({img});
  EXPECT_EQ(r.location_desc[0].tp, 2);
  EXPECT_DOUBLE_EQ(r.location_desc[0].f1, 1.0);
}

TEST(ScoreFree, LowerThresholdAcceptsLooserBoxes) {
  // IoU 0.4: a miss at 0.5, a hit at 0.3. (0,0)-(100,100) vs (0,0)-(40,100): 4000/10000.
  ce::ScoreFreeImage img;
  add_gt(img, box(0, 0, 100, 100), 0);
  add_pred(img, box(0, 0, 40, 100), 0, 0);
  const ce::ScoreFreeResult r = ce::score_free_metrics({img});
  EXPECT_EQ(r.location_desc[0].tp, 0);
  EXPECT_EQ(r.location_desc[0].f1, 0.0);  // P = R = 0: defined, 0
  EXPECT_EQ(r.location_desc[1].tp, 1);
  EXPECT_DOUBLE_EQ(r.location_desc[1].f1, 1.0);
}

TEST(ScoreFree, DuplicatesAndCrowd) {
  // Three "dog" boxes on one object: the 2nd is IoU 1 with the 1st, the 3rd IoU 0.95 (a duplicate);
  // a "cat" with the same box is no duplicate (other desc). Plus a crowd region with one prediction
  // inside: ignored, not an FP.
  ce::ScoreFreeImage img;
  add_gt(img, box(0, 0, 100, 100), 0);
  add_gt(img, box(200, 200, 400, 400), 0, /*crowd=*/true);
  add_pred(img, box(0, 0, 100, 100), 0, 0);
  add_pred(img, box(0, 0, 100, 100), 0, 0);
  add_pred(img, box(0, 0, 95, 100), 0, 0);
  add_pred(img, box(0, 0, 100, 100), -1, 1);
  add_pred(img, box(250, 250, 300, 300), 0, 0);
  const ce::ScoreFreeResult r = ce::score_free_metrics({img});
  EXPECT_EQ(r.num_duplicates, 2);
  EXPECT_NEAR(r.duplicate_rate, 2.0 / 5.0, 1e-12);
  EXPECT_EQ(r.num_gt, 1);  // crowd excluded
  EXPECT_EQ(r.location_desc[0].tp, 1);
  EXPECT_EQ(r.location_desc[0].ignored, 1);
  EXPECT_EQ(r.location_desc[0].fp, 3);  // two duplicates and the unmapped "cat"
}

TEST(ScoreFree, UndefinedWithoutPredictionsOrGt) {
  const ce::ScoreFreeResult empty = ce::score_free_metrics({});
  EXPECT_EQ(empty.location[0].precision, -1.0);
  EXPECT_EQ(empty.location[0].recall, -1.0);
  EXPECT_EQ(empty.location[0].f1, -1.0);
  EXPECT_EQ(empty.count_ratio, -1.0);
  EXPECT_EQ(empty.duplicate_rate, -1.0);
  EXPECT_EQ(empty.matched_iou.mean, -1.0);
  ce::ScoreFreeImage gt_only;
  add_gt(gt_only, box(0, 0, 10, 10), 0);
  const ce::ScoreFreeResult r = ce::score_free_metrics({gt_only});
  EXPECT_EQ(r.location[0].precision, -1.0);  // no prediction
  EXPECT_EQ(r.location[0].recall, 0.0);
  EXPECT_EQ(r.location[0].fn, 1);
  EXPECT_EQ(r.count_ratio, 0.0);
}
