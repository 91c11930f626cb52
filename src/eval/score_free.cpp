// Score-free metrics (see score_free.h): per image one Hungarian assignment per (IoU threshold,
// desc rule) with cost 1 - IoU on the allowed pairs, so the matching first maximizes the number of
// matched pairs and then their total IoU; counts are summed over images (micro average).
#include "coordexp/eval/score_free.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "coordexp/matching/assignment.h"
#include "coordexp/util/error.h"

namespace coordexp::eval {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct ImageMatch {
  std::vector<int> gt_of_pred;  // -1 when unmatched
  std::vector<double> iou_of_pred;
};

// Matches the predictions of one image to its non-crowd GT. `min_iou` is inclusive unless
// `strict` (then IoU must exceed it). `with_desc`: categories must agree.
ImageMatch match_image(const ScoreFreeImage& img, const std::vector<int>& regular_gt, double min_iou,
                       bool strict, bool with_desc) {
  const int P = static_cast<int>(img.pred.size()), G = static_cast<int>(regular_gt.size());
  matching::CostMatrix cost(P, G, kInf);
  std::vector<double> ious(static_cast<size_t>(P) * G, 0.0);
  for (int p = 0; p < P; ++p)
    for (int g = 0; g < G; ++g) {
      const int gi = regular_gt[static_cast<size_t>(g)];
      if (with_desc && img.pred_category[static_cast<size_t>(p)] != img.gt_category[static_cast<size_t>(gi)]) continue;
      const double iou = coco_iou(img.pred[static_cast<size_t>(p)], img.gt[static_cast<size_t>(gi)], false);
      ious[static_cast<size_t>(p) * G + g] = iou;
      if (strict ? iou > min_iou : iou >= min_iou) cost.at(p, g) = 1.0 - iou;
    }
  const matching::Assignment a = matching::solve_assignment(cost);
  ImageMatch m;
  m.gt_of_pred.assign(static_cast<size_t>(P), -1);
  m.iou_of_pred.assign(static_cast<size_t>(P), 0.0);
  for (int p = 0; p < P; ++p) {
    const int g = a.col_of_row[static_cast<size_t>(p)];
    if (g < 0) continue;
    m.gt_of_pred[static_cast<size_t>(p)] = regular_gt[static_cast<size_t>(g)];
    m.iou_of_pred[static_cast<size_t>(p)] = ious[static_cast<size_t>(p) * G + g];
  }
  return m;
}

void finish(PrfCounts* c) {
  const int64_t n_pred = c->tp + c->fp, n_gt = c->tp + c->fn;
  c->precision = n_pred > 0 ? static_cast<double>(c->tp) / static_cast<double>(n_pred) : -1.0;
  c->recall = n_gt > 0 ? static_cast<double>(c->tp) / static_cast<double>(n_gt) : -1.0;
  if (c->precision < 0 || c->recall < 0) c->f1 = -1.0;
  else if (c->precision + c->recall == 0) c->f1 = 0.0;
  else c->f1 = 2.0 * c->precision * c->recall / (c->precision + c->recall);
}

}  // namespace

ScoreFreeResult score_free_metrics(const std::vector<ScoreFreeImage>& images) {
  ScoreFreeResult r;
  std::vector<double> pair_ious;
  for (const ScoreFreeImage& img : images) {
    COORDEXP_CHECK(img.gt.size() == img.gt_category.size() && img.gt.size() == img.gt_crowd.size() &&
                       img.pred.size() == img.pred_category.size() && img.pred.size() == img.pred_desc_key.size(),
                   "ScoreFreeImage vectors differ in length");
    std::vector<int> regular_gt, crowd_gt;
    for (size_t g = 0; g < img.gt.size(); ++g) (img.gt_crowd[g] ? crowd_gt : regular_gt).push_back(static_cast<int>(g));
    const int64_t P = static_cast<int64_t>(img.pred.size()), G = static_cast<int64_t>(regular_gt.size());
    r.num_predictions += P;
    r.num_gt += G;

    for (size_t ti = 0; ti < ScoreFreeResult::kIouThresholds.size(); ++ti) {
      const double thr = ScoreFreeResult::kIouThresholds[ti];
      for (bool with_desc : {false, true}) {
        PrfCounts& c = with_desc ? r.location_desc[ti] : r.location[ti];
        const ImageMatch m = match_image(img, regular_gt, thr, /*strict=*/false, with_desc);
        int64_t tp = 0;
        for (size_t p = 0; p < img.pred.size(); ++p) {
          if (m.gt_of_pred[p] >= 0) {
            ++tp;
            continue;
          }
          bool in_crowd = false;  // as in COCO: a prediction on a crowd region is not an error
          for (int g : crowd_gt) {
            if (with_desc && img.pred_category[p] != img.gt_category[static_cast<size_t>(g)]) continue;
            if (coco_iou(img.pred[p], img.gt[static_cast<size_t>(g)], true) >= thr) in_crowd = true;
          }
          (in_crowd ? c.ignored : c.fp) += 1;
        }
        c.tp += tp;
        c.fn += G - tp;
      }
    }

    // Matched-pair IoUs: location+desc, any overlap.
    const ImageMatch any = match_image(img, regular_gt, 0.0, /*strict=*/true, /*with_desc=*/true);
    for (size_t p = 0; p < img.pred.size(); ++p)
      if (any.gt_of_pred[p] >= 0) pair_ious.push_back(any.iou_of_pred[p]);

    // Duplicates: a prediction with an earlier one of the same desc at IoU >= 0.9.
    for (size_t p = 0; p < img.pred.size(); ++p)
      for (size_t q = 0; q < p; ++q)
        if (img.pred_desc_key[q] == img.pred_desc_key[p] &&
            coco_iou(img.pred[p], img.pred[q], false) >= ScoreFreeResult::kDuplicateIou) {
          ++r.num_duplicates;
          break;
        }
  }
  for (auto& c : r.location) finish(&c);
  for (auto& c : r.location_desc) finish(&c);
  r.count_ratio = r.num_gt > 0 ? static_cast<double>(r.num_predictions) / static_cast<double>(r.num_gt) : -1.0;
  r.duplicate_rate = r.num_predictions > 0 ? static_cast<double>(r.num_duplicates) / static_cast<double>(r.num_predictions) : -1.0;

  IouDistribution& d = r.matched_iou;
  d.num_pairs = static_cast<int64_t>(pair_ious.size());
  if (!pair_ious.empty()) {
    double sum = 0.0;
    for (double v : pair_ious) {
      sum += v;
      ++d.histogram[static_cast<size_t>(std::min(9.0, std::floor(v * 10.0)))];
    }
    d.mean = sum / static_cast<double>(pair_ious.size());
    std::sort(pair_ious.begin(), pair_ious.end());
    const size_t n = pair_ious.size();
    d.median = n % 2 ? pair_ious[n / 2] : 0.5 * (pair_ious[n / 2 - 1] + pair_ious[n / 2]);
  }
  return r;
}

}  // namespace coordexp::eval
