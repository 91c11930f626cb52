// COCO bbox evaluation (see coco.h): per image and category, greedy score-ordered matching at each
// IoU threshold and area range (pycocotools' evaluateImg), then per category, area range and
// maxDets the precision/recall curves over all images (accumulate) and the 12 summary numbers
// (summarize). Sums are kept per (threshold, area, maxDets) instead of the full T x R x K x A x M
// array, so open-vocabulary runs with thousands of categories stay small.
#include "coordexp/eval/coco.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "coordexp/util/error.h"

namespace coordexp::eval {

CocoBox coco_box_from_xyxy(double x1, double y1, double x2, double y2) {
  return CocoBox{x1, y1, x2 - x1, y2 - y1};
}

double coco_iou(const CocoBox& det, const CocoBox& gt, bool gt_crowd) {
  // Same operations in the same order as maskApi.c bbIou, so thresholds compare identically.
  const double w = std::fmin(det.w + det.x, gt.w + gt.x) - std::fmax(det.x, gt.x);
  if (!(w > 0)) return 0.0;
  const double h = std::fmin(det.h + det.y, gt.h + gt.y) - std::fmax(det.y, gt.y);
  if (!(h > 0)) return 0.0;
  const double inter = w * h;
  const double uni = gt_crowd ? det.area() : det.area() + gt.area() - inter;
  return uni > 0 ? inter / uni : 0.0;
}

std::vector<double> numpy_linspace(double start, double stop, int num) {
  // np.linspace: y = arange(num) * ((stop - start) / (num - 1)) + start; y[-1] = stop.
  std::vector<double> y(static_cast<size_t>(num));
  const double step = (stop - start) / (num - 1);
  for (int i = 0; i < num; ++i) y[static_cast<size_t>(i)] = static_cast<double>(i) * step + start;
  if (num > 1) y.back() = stop;
  return y;
}

CocoParams::CocoParams()
    : iou_thresholds(numpy_linspace(0.5, 0.95, 10)),
      recall_thresholds(numpy_linspace(0.0, 1.0, 101)),
      area_ranges({{0.0, 1e10}, {0.0, 32.0 * 32.0}, {32.0 * 32.0, 96.0 * 96.0}, {96.0 * 96.0, 1e10}}) {}

std::array<double, 12> CocoStats::values() const {
  return {ap, ap50, ap75, ap_small, ap_medium, ap_large, ar1, ar10, ar100, ar_small, ar_medium, ar_large};
}

const std::array<const char*, 12>& CocoStats::names() {
  static const std::array<const char*, 12> kNames = {"AP",  "AP50", "AP75",  "APs", "APm", "APl",
                                                     "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
  return kNames;
}

namespace {

// evaluateImg's output for one (image, category, area range): detections in score order (at most
// maxDets.back()), whether each is matched / ignored at each threshold, and the non-ignored GT count.
struct ImageEval {
  std::vector<double> scores;
  std::vector<uint8_t> matched;  // [t * D + d]
  std::vector<uint8_t> ignored;  // [t * D + d]
  int64_t num_gt = 0;            // non-ignored GT
};

// One (image, category) cell: the GT and detection indices of that category in the image.
struct Cell {
  int image = 0;
  std::vector<int> gts;
  std::vector<int> dets;
};

// Running sums for the summary means (pycocotools averages every entry > -1).
struct MeanAcc {
  double sum = 0.0;
  int64_t count = 0;
  void add(double v) { sum += v, ++count; }
  double mean() const { return count > 0 ? sum / static_cast<double>(count) : -1.0; }
};

bool outside(double area, const std::array<double, 2>& range) { return area < range[0] || area > range[1]; }

ImageEval evaluate_cell(const std::vector<CocoGt>& gts, const std::vector<const CocoDet*>& dets,
                        const std::vector<double>& ious,  // [d * G + g], g in input order
                        const std::array<double, 2>& range, const CocoParams& p) {
  const size_t G = gts.size(), D = dets.size(), T = p.iou_thresholds.size();
  std::vector<uint8_t> gt_ignore(G);
  for (size_t g = 0; g < G; ++g) gt_ignore[g] = gts[g].crowd || outside(gts[g].box.area(), range);
  // GT order: not-ignored first, ignored last, stable (np.argsort(..., kind='mergesort')).
  std::vector<size_t> order(G);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return gt_ignore[a] < gt_ignore[b]; });

  ImageEval e;
  e.scores.resize(D);
  for (size_t d = 0; d < D; ++d) e.scores[d] = dets[d]->score;
  e.matched.assign(T * D, 0);
  e.ignored.assign(T * D, 0);
  for (size_t g = 0; g < G; ++g) e.num_gt += gt_ignore[g] ? 0 : 1;

  std::vector<uint8_t> gt_taken(G);
  if (G > 0 && D > 0) {
    for (size_t t = 0; t < T; ++t) {
      std::fill(gt_taken.begin(), gt_taken.end(), 0);
      for (size_t d = 0; d < D; ++d) {
        double best = std::min(p.iou_thresholds[t], 1 - 1e-10);
        long m = -1;  // position in `order`
        for (size_t gi = 0; gi < G; ++gi) {
          const size_t g = order[gi];
          if (gt_taken[gi] && !gts[g].crowd) continue;  // a crowd region can be matched again
          // Matched to a regular GT already: the ignored ones (sorted last) cannot replace it.
          if (m > -1 && !gt_ignore[order[static_cast<size_t>(m)]] && gt_ignore[g]) break;
          const double iou = ious[d * G + g];
          if (iou < best) continue;
          best = iou;  // ">=": among equal IoUs the later GT wins, as in pycocotools
          m = static_cast<long>(gi);
        }
        if (m == -1) continue;
        e.ignored[t * D + d] = gt_ignore[order[static_cast<size_t>(m)]];
        e.matched[t * D + d] = 1;
        gt_taken[static_cast<size_t>(m)] = 1;
      }
    }
  }
  // Unmatched detections outside the area range are ignored.
  for (size_t d = 0; d < D; ++d)
    if (outside(dets[d]->box.area(), range))
      for (size_t t = 0; t < T; ++t)
        if (!e.matched[t * D + d]) e.ignored[t * D + d] = 1;
  return e;
}

}  // namespace

CocoResult coco_evaluate(const std::vector<CocoImage>& images, int num_categories, const CocoParams& p) {
  const size_t K = static_cast<size_t>(std::max(num_categories, 0));
  const size_t T = p.iou_thresholds.size(), R = p.recall_thresholds.size();
  const size_t A = p.area_ranges.size(), M = p.max_dets.size();
  COORDEXP_CHECK(T > 0 && R > 0 && A > 0 && M > 0, "empty evaluation grid");
  const int max_det = *std::max_element(p.max_dets.begin(), p.max_dets.end());

  // Cells per category, in image order.
  std::vector<std::vector<Cell>> cells(K);
  for (size_t i = 0; i < images.size(); ++i) {
    auto cell_of = [&](int cat) -> Cell& {
      COORDEXP_CHECK(cat >= 0 && static_cast<size_t>(cat) < K, "category " << cat << " outside 0.." << K);
      auto& v = cells[static_cast<size_t>(cat)];
      if (v.empty() || v.back().image != static_cast<int>(i)) v.push_back(Cell{static_cast<int>(i), {}, {}});
      return v.back();
    };
    for (size_t g = 0; g < images[i].gts.size(); ++g) cell_of(images[i].gts[g].category).gts.push_back(static_cast<int>(g));
    for (size_t d = 0; d < images[i].dets.size(); ++d) cell_of(images[i].dets[d].category).dets.push_back(static_cast<int>(d));
  }
  // Grid lookups by value (summarize() names thresholds, areas and maxDets by value).
  auto area_index = [&](const std::string& name) {
    for (size_t a = 0; a < A; ++a)
      if (p.area_names[a] == name) return a;
    COORDEXP_CHECK(false, "no area range named " << name);
    return size_t{0};
  };
  auto maxdet_index = [&](int value) {
    for (size_t m = 0; m < M; ++m)
      if (p.max_dets[m] == value) return m;
    COORDEXP_CHECK(false, "no maxDets " << value);
    return size_t{0};
  };
  auto threshold_index = [&](double value) {
    for (size_t t = 0; t < T; ++t)
      if (std::fabs(p.iou_thresholds[t] - value) < 1e-12) return static_cast<long>(t);
    COORDEXP_CHECK(false, "no IoU threshold " << value);
    return long{0};
  };
  // [t][a][m] sums over categories and recall points.
  std::vector<MeanAcc> prec_acc(T * A * M), rec_acc(T * A * M);
  auto at = [&](size_t t, size_t a, size_t m) { return (t * A + a) * M + m; };
  const size_t area_all = area_index("all"), maxdet_last = maxdet_index(max_det);

  CocoResult result;
  result.per_category_ap.assign(K, -1.0);
  result.per_category_ap50.assign(K, -1.0);
  result.per_category_num_gt.assign(K, 0);

  std::vector<CocoGt> cell_gts;
  std::vector<const CocoDet*> cell_dets;
  std::vector<double> ious;
  for (size_t k = 0; k < K; ++k) {
    std::vector<std::vector<ImageEval>> evals(A);  // [a][cell]
    for (const Cell& c : cells[k]) {
      const CocoImage& img = images[static_cast<size_t>(c.image)];
      cell_gts.clear();
      for (int g : c.gts) cell_gts.push_back(img.gts[static_cast<size_t>(g)]);
      for (const CocoGt& g : cell_gts) result.per_category_num_gt[k] += g.crowd ? 0 : 1;
      cell_dets.clear();
      for (int d : c.dets) cell_dets.push_back(&img.dets[static_cast<size_t>(d)]);
      std::stable_sort(cell_dets.begin(), cell_dets.end(),
                       [](const CocoDet* a, const CocoDet* b) { return a->score > b->score; });
      if (cell_dets.size() > static_cast<size_t>(max_det)) cell_dets.resize(static_cast<size_t>(max_det));
      const size_t G = cell_gts.size(), D = cell_dets.size();
      ious.resize(G * D);
      for (size_t d = 0; d < D; ++d)
        for (size_t g = 0; g < G; ++g) ious[d * G + g] = coco_iou(cell_dets[d]->box, cell_gts[g].box, cell_gts[g].crowd);
      for (size_t a = 0; a < A; ++a) evals[a].push_back(evaluate_cell(cell_gts, cell_dets, ious, p.area_ranges[a], p));
    }
    if (cells[k].empty()) continue;

    MeanAcc cat_ap, cat_ap50;
    for (size_t a = 0; a < A; ++a) {
      const std::vector<ImageEval>& E = evals[a];
      int64_t npig = 0;
      for (const ImageEval& e : E) npig += e.num_gt;
      if (npig == 0) continue;  // precision/recall stay -1 for this (category, area)
      for (size_t m = 0; m < M; ++m) {
        const size_t cap = static_cast<size_t>(p.max_dets[m]);
        // Concatenate each image's first `cap` detections in image order, then sort stably by score.
        struct Ref { double score; uint32_t cell; uint32_t det; };
        std::vector<Ref> refs;
        for (size_t ci = 0; ci < E.size(); ++ci)
          for (size_t d = 0; d < std::min(cap, E[ci].scores.size()); ++d)
            refs.push_back(Ref{E[ci].scores[d], static_cast<uint32_t>(ci), static_cast<uint32_t>(d)});
        std::stable_sort(refs.begin(), refs.end(), [](const Ref& x, const Ref& y) { return x.score > y.score; });
        const size_t nd = refs.size();
        std::vector<double> rc(nd), pr(nd);
        for (size_t t = 0; t < T; ++t) {
          double tp = 0.0, fp = 0.0;
          for (size_t i = 0; i < nd; ++i) {
            const ImageEval& e = E[refs[i].cell];
            const size_t idx = t * e.scores.size() + refs[i].det;
            if (!e.ignored[idx]) (e.matched[idx] ? tp : fp) += 1.0;
            rc[i] = tp / static_cast<double>(npig);
            pr[i] = tp / (fp + tp + 2.220446049250313e-16);  // np.spacing(1)
          }
          rec_acc[at(t, a, m)].add(nd ? rc[nd - 1] : 0.0);
          // Interpolated precision: the best precision at any recall >= r.
          for (size_t i = nd; i-- > 1;)
            if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
          size_t i = 0;
          for (size_t r = 0; r < R; ++r) {
            while (i < nd && rc[i] < p.recall_thresholds[r]) ++i;  // np.searchsorted(side='left')
            const double q = i < nd ? pr[i] : 0.0;
            prec_acc[at(t, a, m)].add(q);
            if (a == area_all && m == maxdet_last) {
              cat_ap.add(q);
              if (t == 0) cat_ap50.add(q);
            }
          }
        }
      }
    }
    result.per_category_ap[k] = cat_ap.mean();
    result.per_category_ap50[k] = cat_ap50.mean();
  }

  // summarize(): means over the selected thresholds of every defined entry.
  auto summary = [&](const std::vector<MeanAcc>& acc, long t_only, const std::string& area, int maxdet) {
    MeanAcc total;
    const size_t a = area_index(area), m = maxdet_index(maxdet);
    for (size_t t = 0; t < T; ++t) {
      if (t_only >= 0 && t != static_cast<size_t>(t_only)) continue;
      total.sum += acc[at(t, a, m)].sum;
      total.count += acc[at(t, a, m)].count;
    }
    return total.mean();
  };
  const int d0 = p.max_dets[0], d1 = p.max_dets[std::min<size_t>(1, M - 1)], d2 = p.max_dets[std::min<size_t>(2, M - 1)];
  CocoStats& s = result.stats;
  s.ap = summary(prec_acc, -1, "all", d2);
  s.ap50 = summary(prec_acc, threshold_index(0.5), "all", d2);
  s.ap75 = summary(prec_acc, threshold_index(0.75), "all", d2);
  s.ap_small = summary(prec_acc, -1, "small", d2);
  s.ap_medium = summary(prec_acc, -1, "medium", d2);
  s.ap_large = summary(prec_acc, -1, "large", d2);
  s.ar1 = summary(rec_acc, -1, "all", d0);
  s.ar10 = summary(rec_acc, -1, "all", d1);
  s.ar100 = summary(rec_acc, -1, "all", d2);
  s.ar_small = summary(rec_acc, -1, "small", d2);
  s.ar_medium = summary(rec_acc, -1, "medium", d2);
  s.ar_large = summary(rec_acc, -1, "large", d2);
  return result;
}

}  // namespace coordexp::eval
