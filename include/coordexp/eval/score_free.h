// Score-free detection metrics (greedy V-LLM output has no calibrated scores): precision, recall and
// F1 at IoU 0.5 and 0.3 with one-to-one Hungarian matching (matching/assignment.h), location-only
// and location+desc; predicted/GT count ratio; duplicate rate; the IoU distribution of matched
// pairs. Crowd GT are never matched: an unmatched prediction covered by a crowd region is ignored.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "coordexp/eval/coco.h"

namespace coordexp::eval {

struct ScoreFreeImage {
  std::vector<CocoBox> gt;
  std::vector<int> gt_category;   // -1 never happens for GT
  std::vector<uint8_t> gt_crowd;
  std::vector<CocoBox> pred;
  std::vector<int> pred_category;  // -1: desc matches no GT category (never matches with desc)
  std::vector<int> pred_desc_key;  // the normalized desc, interned: duplicates need the same one
};

struct PrfCounts {
  int64_t tp = 0;
  int64_t fp = 0;
  int64_t fn = 0;
  int64_t ignored = 0;     // unmatched predictions inside a crowd region (neither TP nor FP)
  double precision = -1;   // tp / (tp + fp); -1 when there is no prediction
  double recall = -1;      // tp / (tp + fn); -1 when there is no (non-crowd) GT
  double f1 = -1;          // harmonic mean; -1 when either is undefined, 0 when both are 0
};

struct IouDistribution {
  int64_t num_pairs = 0;
  double mean = -1, median = -1;      // -1 when there is no pair
  std::array<int64_t, 10> histogram{};  // [0, .1), [.1, .2), ..., [.9, 1.0]
};

struct ScoreFreeResult {
  // [0]: IoU 0.5, [1]: IoU 0.3
  static constexpr std::array<double, 2> kIouThresholds = {0.5, 0.3};
  std::array<PrfCounts, 2> location;       // any desc
  std::array<PrfCounts, 2> location_desc;  // desc must map to the GT's category
  int64_t num_predictions = 0;
  int64_t num_gt = 0;                 // non-crowd GT
  double count_ratio = -1;            // num_predictions / num_gt; -1 when num_gt == 0
  static constexpr double kDuplicateIou = 0.9;
  int64_t num_duplicates = 0;         // predictions with an earlier same-desc one at IoU >= 0.9
  double duplicate_rate = -1;         // num_duplicates / num_predictions; -1 when none
  // Matched pairs of the location+desc matching that allows any overlap (IoU > 0), so the
  // distribution shows how well the model localizes what it names correctly.
  IouDistribution matched_iou;
};

ScoreFreeResult score_free_metrics(const std::vector<ScoreFreeImage>& images);

}  // namespace coordexp::eval
