// Loss registry: coord-distribution losses and token CE against scalar references, L_geo composition
// (decode -> canonicalize -> SmoothL1 + CIoU/GIoU) against the reference, the rollout subset split
// (mean_or_zero(matched) + mean_or_zero(fn), FP/invalid/poly excluded), exact empty-set zeros with a
// usable graph, extreme logits, counting without logits, and the optimizer-step normalization: two
// micro-batches with global counts give exactly the one-big-batch loss and gradients.
#include <gtest/gtest.h>

#include "coordexp/coord/losses.h"
#include "coordexp/util/error.h"
#include "gradcheck.h"
#include "reference.h"

namespace coordexp::coord {
namespace {

constexpr int64_t kFirst = 20;
constexpr int64_t kVocab = kFirst + 1000 + 10;
const CoordIdRange kIds{kFirst};

std::vector<double> row_of(const torch::Tensor& t) {
  const torch::Tensor r = t.to(torch::kDouble).contiguous();
  return std::vector<double>(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
}

ObjectSpan bbox_object(std::vector<int32_t> coord_rows, ObjectSubset subset, std::array<double, 4> gt) {
  ObjectSpan o;
  o.coord_positions = std::move(coord_rows);
  o.subset = subset;
  o.gt_box = gt;
  return o;
}

config::LossOptions geo_options(const std::string& iou_kind = "ciou") {
  config::LossOptions loss;
  loss.geo.weight = 0.5;
  loss.geo.huber_weight = 2.0;
  loss.geo.iou_weight = 3.0;
  loss.geo.delta = 0.05;
  loss.geo.iou_kind = iou_kind;
  return loss;
}

// Reference per-object geometry losses (SmoothL1 sum, 1 - CIoU|GIoU) from aligned logits in double.
std::pair<double, double> reference_geo(const torch::Tensor& logits, const ObjectSpan& o, double tau, bool st,
                                        double eps, double delta, bool giou) {
  reference::Box pred{}, gt{};
  for (int j = 0; j < 4; ++j) {
    const auto s = row_of(logits[o.coord_positions[j]].narrow(0, kFirst, 1000));
    const auto p = reference::softmax(s, tau);
    pred[j] = st ? static_cast<double>(std::max_element(p.begin(), p.end()) - p.begin()) / 999.0 : reference::expectation(p);
    gt[j] = o.gt_box[j];
  }
  pred = reference::canonical(pred, eps);
  gt = reference::canonical(gt, eps);
  return {reference::smooth_l1(pred, gt, delta), 1.0 - (giou ? reference::giou(pred, gt) : reference::ciou(pred, gt))};
}

TEST(CoordLosses, CoordDistributionLossesMatchReferenceAndGradients) {
  torch::manual_seed(21);
  const torch::Tensor s = torch::randn({5, 1000}, torch::kDouble) * 2.0;
  // Continuous GT values plus exact bins (snap to a one-hot target) and both ends.
  const torch::Tensor c = torch::tensor({0.2345678, 0.5, 110.0 / 999.0, 0.0, 1.0}, torch::kDouble);
  const double tau = 0.7;
  const torch::Tensor dfl = dfl_per_slot(s, c, tau), w1 = w1_per_slot(coord_probs(s, tau), c),
                      ent = entropy_per_slot(s, tau);
  const int g0s[] = {234, 499, 110, 0, 999};
  const double as[] = {0.2345678 * 999 - 234, 0.5, 0.0, 0.0, 0.0};
  for (int64_t i = 0; i < 5; ++i) {
    const auto row = row_of(s[i]);
    const int g0 = g0s[i], g1 = std::min(g0 + 1, 999);
    EXPECT_NEAR(dfl[i].item<double>(), reference::dfl(row, tau, g0, g1, as[i]), 1e-11) << i;
    EXPECT_NEAR(w1[i].item<double>(), reference::w1(reference::softmax(row, tau), c[i].item<double>()), 1e-13) << i;
    EXPECT_NEAR(ent[i].item<double>(), reference::entropy(row, tau), 1e-11) << i;
  }
  // Exact bin k: DFL is exactly -log p_k.
  EXPECT_NEAR(dfl[2].item<double>(), -torch::log_softmax(s[2] / tau, 0)[110].item<double>(), 1e-12);

  const torch::Tensor sg = s.narrow(0, 0, 2), cg = c.narrow(0, 0, 2);
  using testing::expect_gradients_match;
  EXPECT_EQ(expect_gradients_match([&](const auto& x) { return dfl_per_slot(x[0], cg, tau); }, {sg}), 0);
  EXPECT_EQ(expect_gradients_match([&](const auto& x) { return w1_per_slot(coord_probs(x[0], tau), cg); }, {sg}), 0);
  EXPECT_EQ(expect_gradients_match([&](const auto& x) { return entropy_per_slot(x[0], tau); }, {sg}), 0);
}

TEST(CoordLosses, TokenCeByTypeMatchesReference) {
  torch::manual_seed(4);
  const int64_t T = 9;
  const torch::Tensor logits = torch::randn({T, kVocab}, torch::kDouble) * 3.0;
  const torch::Tensor targets = torch::randint(0, kVocab, {T}, torch::kLong);
  TokenWeights w{torch::tensor({1.f, 1.f, 0.f, 0.f, 0.f, 0.5f, 0.f, 0.f, 0.f}),
                 torch::tensor({0.f, 0.f, 1.f, 1.f, 0.f, 0.f, 0.f, 0.f, 0.f}),
                 torch::tensor({0.f, 0.f, 0.f, 0.f, 4.f, 0.f, 4.f, 0.f, 0.f}),
                 torch::tensor({0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 2.f})};
  config::LossOptions loss;
  const LossTerms terms = token_ce_terms(logits, targets, w, loss);
  auto ce = [&](int64_t t) {
    const auto row = row_of(logits[t]);
    return -reference::log_softmax(row, 1.0)[targets[t].item<int64_t>()];
  };
  EXPECT_NEAR(terms[Term::kStructCe].sum.item<double>(), ce(0) + ce(1) + 0.5 * ce(5) + 2.0 * ce(8), 1e-11);
  EXPECT_NEAR(terms[Term::kDescCe].sum.item<double>(), ce(2) + ce(3), 1e-11);
  EXPECT_NEAR(terms[Term::kCoordTokenCe].sum.item<double>(), 4.0 * (ce(4) + ce(6)), 1e-11);  // up-weight in the sum
  EXPECT_EQ(terms.counts(), token_ce_counts(w, loss));
  EXPECT_EQ(terms[Term::kStructCe].count, 4);  // eos counted once, inside struct
  EXPECT_EQ(terms[Term::kDescCe].count, 2);
  EXPECT_EQ(terms[Term::kCoordTokenCe].count, 2);  // ... but not in the count
  EXPECT_FALSE(terms[Term::kGeoHuber].active());
  loss.coord_ce.weight = 0.0;
  EXPECT_FALSE(token_ce_terms(logits, targets, w, loss)[Term::kCoordTokenCe].active());
  EXPECT_EQ(token_ce_counts(w, loss)[static_cast<int>(Term::kCoordTokenCe)], 0);

  // Causal alignment: row t of the aligned view is output row response_begin - 1 + t.
  const torch::Tensor full = torch::randn({15, 4});
  EXPECT_TRUE(torch::equal(response_logits(full, 6, 9), full.narrow(0, 5, 9)));
  EXPECT_THROW(response_logits(full, 0, 3), InternalError);
  EXPECT_THROW(response_logits(full, 8, 9), InternalError);
}

TEST(CoordLosses, GeoTermsMatchReferenceForEachDecodeModeAndIouKind) {
  torch::manual_seed(8);
  const int64_t T = 14;
  torch::Tensor logits = torch::randn({T, kVocab}, torch::kDouble) * 2.0;
  const std::vector<ObjectSpan> objects = {
      bbox_object({1, 2, 3, 4}, ObjectSubset::kMatched, {0.11, 0.31, 0.41, 0.705}),
      bbox_object({6, 7, 8, 9}, ObjectSubset::kFp, {0.52, 0.285, 0.89, 0.66}),  // subset ignored outside rollout
      bbox_object({10, 11, 12, 13}, ObjectSubset::kMatched, {0.9, 0.1, 0.2, 0.3}),  // swapped GT
  };
  for (const std::string mode : {"exp", "st"})
    for (const std::string kind : {"ciou", "giou"}) {
      config::CoordOptions coord;
      coord.decode_mode = mode;
      coord.decode_tau = 0.6;
      const config::LossOptions loss = geo_options(kind);
      for (Context ctx : {Context::kGt, Context::kSelfContext}) {
        const LossTerms terms = coord_terms(logits, objects, ctx, kIds, coord, loss);
        double huber = 0, iou = 0;
        for (const auto& o : objects) {
          const auto [h, i] = reference_geo(logits, o, 0.6, mode == "st", coord.box_eps, 0.05, kind == "giou");
          huber += h;
          iou += i;
        }
        EXPECT_NEAR(terms[Term::kGeoHuber].sum.item<double>(), huber, 1e-12) << mode << " " << kind;
        EXPECT_NEAR(terms[Term::kGeoIou].sum.item<double>(), iou, 1e-12) << mode << " " << kind;
        EXPECT_EQ(terms[Term::kGeoHuber].count, 3);
        EXPECT_FALSE(terms[Term::kGeoHuberFn].active());  // the fn bucket exists only in rollout
        EXPECT_FALSE(terms[Term::kCoordDistDfl].active());
        EXPECT_EQ(terms.counts(), coord_term_counts(objects, ctx, loss));
        const TermCounts n = terms.counts();
        EXPECT_NEAR(total_loss(terms, n, loss).item<double>(), 0.5 * (2.0 * huber + 3.0 * iou) / 3.0, 1e-12);
        EXPECT_EQ(term_name(Term::kGeoIou, terms.iou_kind), "loss_geo_" + kind);
      }
    }
  // Geometry off (lambda_geo = 0, the default): nothing is computed.
  const LossTerms off = coord_terms(logits, objects, Context::kGt, kIds, config::CoordOptions{}, config::LossOptions{});
  for (const LossTerm& t : off.terms) EXPECT_FALSE(t.active());
}

TEST(CoordLosses, RolloutGeoAveragesMatchedAndFnSeparatelyAndExcludesFpInvalidPoly) {
  torch::manual_seed(9);
  const int64_t T = 30;
  const torch::Tensor leaf = (torch::randn({T, kVocab}, torch::kDouble) * 2.0).requires_grad_(true);
  ObjectSpan poly = bbox_object({24, 25, 26, 27, 28, 29}, ObjectSubset::kMatched, {});
  poly.geometry = GeometryKind::kPoly;
  ObjectSpan invalid = bbox_object({21}, ObjectSubset::kInvalid, {});
  const std::vector<ObjectSpan> objects = {
      bbox_object({0, 1, 2, 3}, ObjectSubset::kMatched, {0.1, 0.1, 0.4, 0.5}),
      bbox_object({4, 5, 6, 7}, ObjectSubset::kMatched, {0.2, 0.3, 0.6, 0.9}),
      bbox_object({8, 9, 10, 11}, ObjectSubset::kMatched, {0.5, 0.5, 0.7, 0.8}),
      bbox_object({12, 13, 14, 15}, ObjectSubset::kFp, {0.0, 0.0, 0.3, 0.3}),
      bbox_object({16, 17, 18, 19}, ObjectSubset::kFn, {0.6, 0.1, 0.95, 0.4}),
      invalid,
      poly,
  };
  config::LossOptions loss = geo_options();
  loss.coord_dist.mode = "dfl";
  loss.coord_dist.weight = 0.25;
  loss.coord_dist.combine = true;
  loss.coord_dist.entropy_weight = 0.1;
  config::CoordOptions coord;
  const LossTerms terms = coord_terms(leaf, objects, Context::kRollout, kIds, coord, loss);
  EXPECT_EQ(terms.num_poly_excluded, 1);
  EXPECT_EQ(terms[Term::kGeoIou].count, 3);
  EXPECT_EQ(terms[Term::kGeoIouFn].count, 1);
  EXPECT_EQ(terms[Term::kCoordDistDfl].count, 16);  // matched + fn coord slots
  EXPECT_EQ(terms[Term::kCoordDistEntropy].count, 16);
  EXPECT_FALSE(terms[Term::kCoordDistW1].active());
  EXPECT_EQ(terms.counts(), coord_term_counts(objects, Context::kRollout, loss));

  double hm = 0, im = 0, hf = 0, iff = 0;
  for (int i : {0, 1, 2}) {
    const auto [h, u] = reference_geo(leaf.detach(), objects[i], 1.0, false, coord.box_eps, 0.05, false);
    hm += h;
    im += u;
  }
  std::tie(hf, iff) = reference_geo(leaf.detach(), objects[4], 1.0, false, coord.box_eps, 0.05, false);
  double dfl = 0, ent = 0;
  for (int i : {0, 1, 2, 4})
    for (int j = 0; j < 4; ++j) {
      const torch::Tensor s = leaf.detach()[objects[i].coord_positions[j]].narrow(0, kFirst, 1000).unsqueeze(0);
      const torch::Tensor c = torch::tensor({objects[i].gt_box[j]}, torch::kDouble);
      dfl += dfl_per_slot(s, c, 1.0).item<double>();
      ent += entropy_per_slot(s, 1.0).item<double>();
    }
  // L = lambda_geo [lambda_h (mean_m + mean_fn) + lambda_c (mean_m + mean_fn)] + 0.25 DFL + 0.1 H.
  const double expected = 0.5 * (2.0 * (hm / 3 + hf) + 3.0 * (im / 3 + iff)) + 0.25 * dfl / 16 + 0.1 * ent / 16;
  const torch::Tensor total = total_loss(terms, terms.counts(), loss);
  EXPECT_NEAR(total.item<double>(), expected, 1e-11);

  // FP, invalid and polygon coord rows get exactly zero gradient; supervised rows do not.
  const torch::Tensor grad = torch::autograd::grad({total}, {leaf})[0];
  for (int64_t r : {12, 13, 14, 15, 21, 24, 25, 26, 27, 28, 29, 20, 22, 23})
    EXPECT_EQ(grad[r].abs().max().item<double>(), 0.0) << "row " << r;
  for (int64_t r : {0, 7, 16, 19}) EXPECT_GT(grad[r].abs().max().item<double>(), 0.0) << "row " << r;
  EXPECT_EQ(grad.narrow(1, 0, kFirst).abs().max().item<double>(), 0.0);  // only coord columns

  // Metrics: one per active term, with names and global means.
  const auto metrics = loss_metrics(terms.detached_sums(), terms.counts(), terms.active(), terms.iou_kind);
  std::vector<std::string> names;
  for (const auto& m : metrics) names.push_back(m.name);
  EXPECT_EQ(names, (std::vector<std::string>{"loss_coord_dist_dfl", "loss_coord_dist_entropy", "loss_geo_huber",
                                             "loss_geo_ciou", "loss_geo_huber_fn", "loss_geo_ciou_fn"}));
  EXPECT_NEAR(metrics[3].value, im / 3, 1e-12);
  EXPECT_EQ(metrics[3].count, 3);
  EXPECT_NEAR(metrics[5].value, iff, 1e-12);
}

TEST(CoordLosses, EmptySetsGiveExactZerosWithAUsableGraph) {
  const config::LossOptions loss = [] {
    config::LossOptions l = geo_options();
    l.coord_dist.mode = "w1";
    return l;
  }();
  for (const std::string mode : {"exp", "st"}) {
    config::CoordOptions coord;
    coord.decode_mode = mode;
    const torch::Tensor leaf = torch::randn({6, kVocab}, torch::kDouble).requires_grad_(true);
    const std::vector<std::vector<ObjectSpan>> cases = {
        {},                                                                       // no objects at all
        {bbox_object({0, 1, 2, 3}, ObjectSubset::kFp, {0.1, 0.1, 0.2, 0.2})},     // everything FP
        {bbox_object({0, 1, 2, 3}, ObjectSubset::kMatched, {0.1, 0.1, 0.2, 0.2})},  // no FN
    };
    for (size_t k = 0; k < cases.size(); ++k) {
      LossTerms terms = coord_terms(leaf, cases[k], Context::kRollout, kIds, coord, loss);
      // Token CE with nothing supervised (all-zero weights) joins the same step.
      const torch::Tensor zeros = torch::zeros({6});
      terms += token_ce_terms(leaf, torch::zeros({6}, torch::kLong), TokenWeights{zeros, zeros, zeros, zeros}, loss);
      EXPECT_EQ(terms[Term::kGeoIouFn].count, 0);
      EXPECT_EQ(terms[Term::kGeoIouFn].sum.item<double>(), 0.0);
      EXPECT_EQ(terms[Term::kStructCe].sum.item<double>(), 0.0);
      const torch::Tensor total = total_loss(terms, terms.counts(), loss);
      EXPECT_TRUE(total.requires_grad());
      EXPECT_TRUE(std::isfinite(total.item<double>()));
      const torch::Tensor grad = torch::autograd::grad({total}, {leaf})[0];
      EXPECT_TRUE(torch::isfinite(grad).all().item<bool>());
      if (k < 2) {
        EXPECT_EQ(total.item<double>(), 0.0);
        EXPECT_EQ(grad.abs().max().item<double>(), 0.0);
      }
    }
  }
  // mean_or_zero contract.
  const torch::Tensor x = torch::ones({}, torch::kDouble).requires_grad_(true);
  EXPECT_EQ(mean_or_zero(LossTerm{x * 0, 0}, 0).item<double>(), 0.0);
  EXPECT_EQ(mean_or_zero(LossTerm{x * 6, 2}, 3).item<double>(), 2.0);
  EXPECT_THROW(mean_or_zero(LossTerm{x, 3}, 2), InternalError);  // global below local: counts not reduced
  EXPECT_FALSE(mean_or_zero(LossTerm{}, 0).defined());
}

TEST(CoordLosses, ExtremeLogitsAndSmallTauStayFinite) {
  torch::Tensor base = torch::full({8, kVocab}, -1e4, torch::kDouble);
  base[0][kFirst + 999] = 1e4;  // all mass on the top bin, far from the GT
  base[1][kFirst + 0] = 1e4;    // all mass on bin 0 (x2 < x1 after decode)
  base[2][kFirst + 500] = 1e4;
  base[3][kFirst + 500] = 1e4;  // y1 == y2 -> zero height before canonicalization
  base.narrow(0, 4, 4).narrow(1, kFirst, 1000).uniform_(-1e4, 1e4);
  const std::vector<ObjectSpan> objects = {bbox_object({0, 1, 2, 3}, ObjectSubset::kMatched, {0.2, 0.2, 0.4, 0.4}),
                                           bbox_object({4, 5, 6, 7}, ObjectSubset::kFn, {0.0, 0.0, 0.0, 0.0})};
  config::LossOptions loss = geo_options();
  loss.coord_dist.mode = "dfl";
  loss.coord_dist.combine = true;
  loss.coord_dist.w1_weight = 1.0;
  loss.coord_dist.entropy_weight = 1.0;
  for (auto dtype : {torch::kDouble, torch::kFloat})
    for (double tau : {1.0, 0.05})
      for (const std::string mode : {"exp", "st"})
        for (const std::string kind : {"ciou", "giou"}) {
          loss.geo.iou_kind = kind;
          config::CoordOptions coord;
          coord.decode_tau = tau;
          coord.decode_mode = mode;
          const torch::Tensor leaf = base.to(dtype).requires_grad_(true);
          const LossTerms terms = coord_terms(leaf, objects, Context::kRollout, kIds, coord, loss);
          const torch::Tensor total = total_loss(terms, terms.counts(), loss);
          EXPECT_TRUE(std::isfinite(total.item<double>())) << tau << mode << kind;
          const torch::Tensor grad = torch::autograd::grad({total}, {leaf})[0];
          EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << tau << mode << kind;
        }
}

// Two samples in two micro-batches, normalized with global counts, equal one big batch of both.
TEST(CoordLosses, MicroBatchAccumulationWithGlobalCountsEqualsOneBigBatch) {
  torch::manual_seed(17);
  const int64_t ta = 12, tb = 9;
  const torch::Tensor la = (torch::randn({ta, kVocab}, torch::kDouble) * 2).requires_grad_(true);
  const torch::Tensor lb = (torch::randn({tb, kVocab}, torch::kDouble) * 2).requires_grad_(true);
  const torch::Tensor ya = torch::randint(0, kVocab, {ta}, torch::kLong), yb = torch::randint(0, kVocab, {tb}, torch::kLong);
  auto weights = [](int64_t n, int64_t shift) {
    TokenWeights w{torch::zeros({n}), torch::zeros({n}), torch::zeros({n}), torch::zeros({n})};
    for (int64_t t = 0; t < n; ++t) {
      const int64_t k = (t + shift) % 4;
      (k == 0 ? w.struct_w : k == 1 ? w.desc_w : k == 2 ? w.coord_w : w.struct_w)[t] = k == 2 ? 2.0f : 1.0f;
    }
    w.eos_w[n - 1] = 1.0f;
    w.struct_w[n - 1] = w.desc_w[n - 1] = w.coord_w[n - 1] = 0.0f;
    return w;
  };
  const TokenWeights wa = weights(ta, 0), wb = weights(tb, 3);
  const std::vector<ObjectSpan> oa = {bbox_object({0, 1, 2, 3}, ObjectSubset::kMatched, {0.1, 0.2, 0.3, 0.4}),
                                      bbox_object({4, 5, 6, 7}, ObjectSubset::kMatched, {0.5, 0.5, 0.9, 0.7}),
                                      bbox_object({8, 9, 10, 11}, ObjectSubset::kFn, {0.3, 0.6, 0.5, 0.9})};
  const std::vector<ObjectSpan> ob = {bbox_object({0, 1, 2, 3}, ObjectSubset::kFn, {0.05, 0.1, 0.6, 0.3}),
                                      bbox_object({4, 5, 6, 7}, ObjectSubset::kFp, {0.2, 0.2, 0.4, 0.4})};
  config::LossOptions loss = geo_options();
  loss.coord_dist.mode = "dfl";
  loss.coord_ce.upweight = 2.0;
  const config::CoordOptions coord;
  auto terms_of = [&](const torch::Tensor& logits, const torch::Tensor& y, const TokenWeights& w,
                      const std::vector<ObjectSpan>& objs) {
    LossTerms t = token_ce_terms(logits, y, w, loss);
    t += coord_terms(logits, objs, Context::kRollout, kIds, coord, loss);
    return t;
  };

  // One big batch: rows concatenated, B's positions offset by ta.
  std::vector<ObjectSpan> big_objects = oa;
  for (ObjectSpan o : ob) {
    for (int32_t& r : o.coord_positions) r += static_cast<int32_t>(ta);
    big_objects.push_back(o);
  }
  auto cat = [](const torch::Tensor& a, const torch::Tensor& b) { return torch::cat({a, b}); };
  const TokenWeights wbig{cat(wa.struct_w, wb.struct_w), cat(wa.desc_w, wb.desc_w), cat(wa.coord_w, wb.coord_w),
                          cat(wa.eos_w, wb.eos_w)};
  const LossTerms big = terms_of(cat(la, lb), cat(ya, yb), wbig, big_objects);
  const torch::Tensor big_loss = total_loss(big, big.counts(), loss);
  const auto big_grads = torch::autograd::grad({big_loss}, {la, lb});

  // Two micro-batches: counts known before the forward (from the inputs alone), "all-reduced" by summing.
  auto counts_of = [&](const TokenWeights& w, const std::vector<ObjectSpan>& objs) {
    TermCounts c = token_ce_counts(w, loss);
    const TermCounts g = coord_term_counts(objs, Context::kRollout, loss);
    for (int i = 0; i < kNumTerms; ++i) c[i] += g[i];
    return c;
  };
  const TermCounts ca = counts_of(wa, oa), cb = counts_of(wb, ob);
  TermCounts global{};
  for (int i = 0; i < kNumTerms; ++i) global[i] = ca[i] + cb[i];
  EXPECT_EQ(global, big.counts());
  const LossTerms ma = terms_of(la, ya, wa, oa);
  EXPECT_EQ(ma.counts(), ca);
  const torch::Tensor loss_a = total_loss(ma, global, loss);
  loss_a.backward();
  const LossTerms mb = terms_of(lb, yb, wb, ob);
  EXPECT_EQ(mb.counts(), cb);
  const torch::Tensor loss_b = total_loss(mb, global, loss);
  loss_b.backward();

  EXPECT_NEAR(loss_a.item<double>() + loss_b.item<double>(), big_loss.item<double>(), 1e-12);
  EXPECT_LT((la.grad() - big_grads[0]).abs().max().item<double>(), 1e-12);
  EXPECT_LT((lb.grad() - big_grads[1]).abs().max().item<double>(), 1e-12);
  EXPECT_GT(la.grad().abs().max().item<double>(), 0.0);
  // Local normalization (each micro-batch by its own counts, averaged) is a different objective.
  const double naive = 0.5 * (total_loss(ma, ma.counts(), loss).item<double>() + total_loss(mb, mb.counts(), loss).item<double>());
  EXPECT_GT(std::abs(naive - big_loss.item<double>()), 1e-3);
}

TEST(CoordLosses, OptionsValidateAndWeightTerms) {
  config::LossOptions loss;
  EXPECT_NO_THROW(loss.validate());
  const auto w = term_weights(loss);
  EXPECT_EQ(w[static_cast<int>(Term::kCoordTokenCe)], 1.0);  // lambda_coord_ce = 1 by default
  EXPECT_EQ(w[static_cast<int>(Term::kCoordDistDfl)], 0.0);   // coord_dist.mode none
  EXPECT_EQ(w[static_cast<int>(Term::kGeoIou)], 0.0);         // lambda_geo = 0
  auto expect_error = [](const config::LossOptions& o, const std::string& key) {
    try {
      o.validate("channel_b.loss");
      ADD_FAILURE() << "no error for " << key;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("channel_b.loss." + key), std::string::npos) << e.what();
    }
  };
  config::LossOptions o;
  o.coord_dist.mode = "dfl";
  o.coord_dist.entropy_weight = 0.1;
  expect_error(o, "coord_dist.entropy_weight");  // stacking without combine
  o.coord_dist.combine = true;
  EXPECT_NO_THROW(o.validate());
  EXPECT_EQ(term_weights(o)[static_cast<int>(Term::kCoordDistEntropy)], 0.1);
  o.coord_dist.dfl_weight = 1.0;
  expect_error(o, "coord_dist.dfl_weight");  // the primary mode's weight is coord_dist.weight
  o = {};
  o.coord_dist.mode = "kl";
  expect_error(o, "coord_dist.mode");
  o = {};
  o.geo.iou_kind = "diou";
  expect_error(o, "geo.iou_kind");
  o = {};
  o.geo.delta = -1;
  expect_error(o, "geo.delta");
  o = {};
  o.desc_weight = -0.5;
  expect_error(o, "desc_weight");
  config::CoordOptions c;
  EXPECT_NO_THROW(c.validate());
  c.decode_mode = "mean";
  EXPECT_THROW(c.validate(), ConfigError);
  c = {};
  c.box_eps = 0;
  EXPECT_THROW(c.validate(), ConfigError);
}

}  // namespace
}  // namespace coordexp::coord
