// Unified Loss Registry components (see losses.h): token CE by type, coord-distribution losses and
// L_geo with the rollout subset split, each as (sum, count). Object/slot selection is shared by the
// compute and the count functions so the counts a trainer all-reduces match the sums exactly.
#include "coordexp/coord/losses.h"

#include <cmath>

#include "coordexp/util/error.h"

namespace coordexp::coord {

namespace {

torch::Tensor at_least_float(const torch::Tensor& t) {
  return t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16 ? t.to(torch::kFloat) : t;
}

torch::Tensor dfl_from_log_probs(const torch::Tensor& logp_NK, const torch::Tensor& c_gt_N) {
  constexpr double kLast = CoordIdRange::kNumBins - 1;
  // Targets carry no gradient; computed in float64 so an exact bin c = k/999 snaps to u = k.
  torch::Tensor u = c_gt_N.detach().to(torch::kDouble).clamp(0.0, 1.0) * kLast;
  const torch::Tensor r = u.round();
  u = torch::where((u - r).abs() < 1e-4, r, u);
  const torch::Tensor g0 = u.floor().clamp_max(kLast);
  const torch::Tensor g1 = (g0 + 1.0).clamp_max(kLast);
  const torch::Tensor a = (u - g0).to(logp_NK.scalar_type());
  const torch::Tensor lp0 = logp_NK.gather(-1, g0.to(torch::kLong).unsqueeze(-1)).squeeze(-1);
  const torch::Tensor lp1 = logp_NK.gather(-1, g1.to(torch::kLong).unsqueeze(-1)).squeeze(-1);
  return -((1.0 - a) * lp0 + a * lp1);
}

torch::Tensor w1_from_probs(const torch::Tensor& p_NK, const torch::Tensor& c_gt_N) {
  const torch::Tensor phi = coord_bin_values(p_NK.options());
  const torch::Tensor c = c_gt_N.detach().to(p_NK.scalar_type()).clamp(0.0, 1.0).unsqueeze(-1);
  return (p_NK * (phi - c).abs()).sum(-1);
}

torch::Tensor entropy_from_log_probs(const torch::Tensor& logp_NK) { return -(logp_NK.exp() * logp_NK).sum(-1); }

void check_coord_logits(const torch::Tensor& s_NK, const torch::Tensor& c_gt_N) {
  COORDEXP_CHECK(s_NK.dim() == 2 && s_NK.size(1) == CoordIdRange::kNumBins, "coord logits must be [N, 1000], got "
                                                                               << s_NK.sizes());
  COORDEXP_CHECK(c_gt_N.dim() == 1 && c_gt_N.size(0) == s_NK.size(0),
                 "GT coords must be [N] matching " << s_NK.sizes() << ", got " << c_gt_N.sizes());
}

LossTerm sum_term(const torch::Tensor& per_item) { return {per_item.sum(), per_item.size(0)}; }

// Objects that carry geometry / coord-distribution supervision, in bucket order.
struct GeoSelection {
  std::vector<const ObjectSpan*> main;  // gt/self_context: all bbox objects; rollout: matched
  std::vector<const ObjectSpan*> fn;    // rollout: fn-injected
  int64_t num_poly_excluded = 0;
};

GeoSelection select_geo_objects(const std::vector<ObjectSpan>& objects, Context context) {
  GeoSelection sel;
  for (const ObjectSpan& o : objects) {
    std::vector<const ObjectSpan*>* bucket = &sel.main;
    if (context == Context::kRollout) {
      COORDEXP_CHECK(o.subset != ObjectSubset::kUnassigned, "context=rollout needs every object's subset");
      if (o.subset == ObjectSubset::kFp || o.subset == ObjectSubset::kInvalid) continue;
      if (o.subset == ObjectSubset::kFn) bucket = &sel.fn;
    }
    if (o.geometry == GeometryKind::kPoly) {
      ++sel.num_poly_excluded;
      continue;
    }
    COORDEXP_CHECK(o.coord_positions.size() == 4, "bbox object has " << o.coord_positions.size() << " coord positions");
    bucket->push_back(&o);
  }
  return sel;
}

struct CoordActivity {
  bool dfl, w1, entropy, geo, fn_buckets;
  bool any_dist() const { return dfl || w1 || entropy; }
};

CoordActivity coord_activity(Context context, const config::LossOptions& loss) {
  const std::array<double, kNumTerms> w = term_weights(loss);
  auto on = [&w](Term t) { return w[static_cast<int>(t)] > 0.0; };
  return {on(Term::kCoordDistDfl), on(Term::kCoordDistW1), on(Term::kCoordDistEntropy), loss.geo.weight > 0.0,
          context == Context::kRollout};
}

void check_token_inputs(const torch::Tensor& logits_TV, const torch::Tensor& targets_T, const TokenWeights& w) {
  COORDEXP_CHECK(logits_TV.dim() == 2, "aligned logits must be [T, V], got " << logits_TV.sizes());
  const int64_t T = logits_TV.size(0);
  COORDEXP_CHECK(targets_T.dim() == 1 && targets_T.size(0) == T && targets_T.scalar_type() == torch::kLong,
                 "targets must be int64 [" << T << "], got " << targets_T.sizes() << " " << targets_T.scalar_type());
  for (const torch::Tensor* t : {&w.struct_w, &w.desc_w, &w.coord_w, &w.eos_w})
    COORDEXP_CHECK(t->defined() && t->dim() == 1 && t->size(0) == T,
                   "token weights must be [" << T << "], got " << (t->defined() ? t->sizes() : torch::IntArrayRef{}));
}

}  // namespace

torch::Tensor response_logits(const torch::Tensor& logits_LV, int64_t response_begin, int64_t response_len) {
  COORDEXP_CHECK(logits_LV.dim() == 2, "logits must be [L, V], got " << logits_LV.sizes());
  COORDEXP_CHECK(response_begin >= 1 && response_len >= 0 && response_begin - 1 + response_len <= logits_LV.size(0),
                 "response [" << response_begin << ", " << response_begin + response_len
                              << ") has no aligned logits in [L=" << logits_LV.size(0) << "]");
  return logits_LV.narrow(0, response_begin - 1, response_len);
}

torch::Tensor token_ce_per_token(const torch::Tensor& logits_NV, const torch::Tensor& targets_N) {
  COORDEXP_CHECK(logits_NV.dim() == 2 && targets_N.dim() == 1 && targets_N.size(0) == logits_NV.size(0),
                 "token CE needs logits [N, V] and targets [N], got " << logits_NV.sizes() << " and "
                                                                      << targets_N.sizes());
  return torch::cross_entropy_loss(at_least_float(logits_NV), targets_N, {}, at::Reduction::None);
}

torch::Tensor dfl_per_slot(const torch::Tensor& s_NK, const torch::Tensor& c_gt_N, double tau) {
  check_coord_logits(s_NK, c_gt_N);
  COORDEXP_CHECK(tau > 0.0, "temperature must be positive, got " << tau);
  return dfl_from_log_probs(torch::log_softmax(at_least_float(s_NK) / tau, -1), c_gt_N);
}

torch::Tensor w1_per_slot(const torch::Tensor& p_NK, const torch::Tensor& c_gt_N) {
  check_coord_logits(p_NK, c_gt_N);
  return w1_from_probs(p_NK, c_gt_N);
}

torch::Tensor entropy_per_slot(const torch::Tensor& s_NK, double tau) {
  COORDEXP_CHECK(s_NK.dim() == 2 && s_NK.size(1) == CoordIdRange::kNumBins, "coord logits must be [N, 1000]");
  COORDEXP_CHECK(tau > 0.0, "temperature must be positive, got " << tau);
  return entropy_from_log_probs(torch::log_softmax(at_least_float(s_NK) / tau, -1));
}

TermCounts token_ce_counts(const TokenWeights& weights, const config::LossOptions& loss) {
  TermCounts c{};
  auto positive = [](const torch::Tensor& w) { return (w > 0).sum().item<int64_t>(); };
  c[static_cast<int>(Term::kStructCe)] = positive(weights.struct_w + weights.eos_w);
  c[static_cast<int>(Term::kDescCe)] = positive(weights.desc_w);
  if (loss.coord_ce.weight > 0.0) c[static_cast<int>(Term::kCoordTokenCe)] = positive(weights.coord_w);
  return c;
}

LossTerms token_ce_terms(const torch::Tensor& logits_TV, const torch::Tensor& targets_T, const TokenWeights& weights,
                         const config::LossOptions& loss) {
  check_token_inputs(logits_TV, targets_T, weights);
  const torch::Device device = logits_TV.device();
  auto term = [&](const torch::Tensor& w_T) {
    // Each term's CE runs only on its own supervised rows (types are exclusive, so the row sets are
    // disjoint and the full-vocab work is the same as one pass); a zero-weight row never enters a sum.
    const torch::Tensor rows = (w_T > 0).nonzero().squeeze(-1).to(device);
    const torch::Tensor ce = token_ce_per_token(logits_TV.index_select(0, rows), targets_T.to(device).index_select(0, rows));
    const torch::Tensor w = w_T.to(device).index_select(0, rows).to(ce.scalar_type());
    return LossTerm{(w * ce).sum(), rows.size(0)};
  };
  LossTerms out;
  out[Term::kStructCe] = term(weights.struct_w + weights.eos_w);
  out[Term::kDescCe] = term(weights.desc_w);
  if (loss.coord_ce.weight > 0.0) out[Term::kCoordTokenCe] = term(weights.coord_w);
  return out;
}

TermCounts coord_term_counts(const std::vector<ObjectSpan>& objects, Context context,
                             const config::LossOptions& loss) {
  const GeoSelection sel = select_geo_objects(objects, context);
  const CoordActivity act = coord_activity(context, loss);
  const auto n_main = static_cast<int64_t>(sel.main.size());
  const auto n_fn = static_cast<int64_t>(sel.fn.size());
  const int64_t slots = 4 * (n_main + n_fn);
  TermCounts c{};
  if (act.dfl) c[static_cast<int>(Term::kCoordDistDfl)] = slots;
  if (act.w1) c[static_cast<int>(Term::kCoordDistW1)] = slots;
  if (act.entropy) c[static_cast<int>(Term::kCoordDistEntropy)] = slots;
  if (act.geo) {
    c[static_cast<int>(Term::kGeoHuber)] = c[static_cast<int>(Term::kGeoIou)] = n_main;
    if (act.fn_buckets) c[static_cast<int>(Term::kGeoHuberFn)] = c[static_cast<int>(Term::kGeoIouFn)] = n_fn;
  }
  return c;
}

LossTerms coord_terms(const torch::Tensor& logits_TV, const std::vector<ObjectSpan>& objects, Context context,
                      CoordIdRange ids, const config::CoordOptions& coord, const config::LossOptions& loss) {
  COORDEXP_CHECK(logits_TV.dim() == 2, "aligned logits must be [T, V], got " << logits_TV.sizes());
  const GeoSelection sel = select_geo_objects(objects, context);
  const CoordActivity act = coord_activity(context, loss);
  LossTerms out;
  out.iou_kind = loss.geo.iou_kind == "giou" ? IouKind::kGiou : IouKind::kCiou;
  out.num_poly_excluded = sel.num_poly_excluded;
  if (!act.any_dist() && !act.geo) return out;

  const int64_t T = logits_TV.size(0);
  std::vector<int64_t> rows;
  std::vector<double> gt;
  for (const auto* bucket : {&sel.main, &sel.fn})
    for (const ObjectSpan* o : *bucket)
      for (int j = 0; j < 4; ++j) {
        const int64_t r = o->coord_positions[j];
        COORDEXP_CHECK(r >= 0 && r < T, "coord position " << r << " outside the aligned logits [T=" << T << "]");
        rows.push_back(r);
        gt.push_back(o->gt_box[j]);
      }
  const torch::Device device = logits_TV.device();
  const torch::Tensor rows_t = torch::tensor(torch::ArrayRef<int64_t>(rows), torch::kLong).to(device);
  const torch::Tensor s = at_least_float(gather_coord_logits(logits_TV, ids).index_select(0, rows_t));
  const torch::Tensor c_gt = torch::tensor(torch::ArrayRef<double>(gt), torch::kDouble).to(s.options());
  const torch::Tensor logp = torch::log_softmax(s / coord.decode_tau, -1);

  const torch::Tensor p = logp.exp();
  if (act.dfl) out[Term::kCoordDistDfl] = sum_term(dfl_from_log_probs(logp, c_gt));
  if (act.w1) out[Term::kCoordDistW1] = sum_term(w1_from_probs(p, c_gt));
  if (act.entropy) out[Term::kCoordDistEntropy] = sum_term(entropy_from_log_probs(logp));
  if (act.geo) {
    const DecodeMode mode = parse_decode_mode(coord.decode_mode);
    const torch::Tensor pred = canonicalize_boxes(decode_coords(p, mode).view({-1, 4}), coord.box_eps);
    const torch::Tensor gt_boxes = canonicalize_boxes(c_gt.view({-1, 4}), coord.box_eps);
    const torch::Tensor huber = smooth_l1_per_box(pred, gt_boxes, loss.geo.delta);
    const torch::Tensor iou = iou_loss_per_box(pred, gt_boxes, out.iou_kind);
    const auto n_main = static_cast<int64_t>(sel.main.size());
    const auto n_fn = static_cast<int64_t>(sel.fn.size());
    out[Term::kGeoHuber] = sum_term(huber.narrow(0, 0, n_main));
    out[Term::kGeoIou] = sum_term(iou.narrow(0, 0, n_main));
    if (act.fn_buckets) {
      out[Term::kGeoHuberFn] = sum_term(huber.narrow(0, n_main, n_fn));
      out[Term::kGeoIouFn] = sum_term(iou.narrow(0, n_main, n_fn));
    }
  }
  return out;
}

}  // namespace coordexp::coord
