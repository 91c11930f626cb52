// (sum, count) loss terms, their per-step normalization, weights and metric names (see loss_terms.h).
#include "coordexp/coord/loss_terms.h"

#include "coordexp/util/error.h"

namespace coordexp::coord {

LossTerm& LossTerm::operator+=(const LossTerm& other) {
  if (other.active()) sum = active() ? sum + other.sum : other.sum;
  count += other.count;
  return *this;
}

torch::Tensor mean_or_zero(const LossTerm& local, int64_t global_count) {
  if (!local.active()) return {};
  COORDEXP_CHECK(global_count >= local.count,
                 "global count " << global_count << " is below this micro-batch's count " << local.count
                                 << " (counts must be reduced over all micro-batches and ranks)");
  // Empty everywhere: the local sum is a sum over no items (exactly 0); multiplying by 0 keeps the graph
  // so backward still reaches the parameters (with zero gradients) and never divides by zero.
  if (global_count == 0) return local.sum * 0.0;
  return local.sum / static_cast<double>(global_count);
}

std::string term_name(Term term, IouKind iou_kind) {
  const std::string iou = iou_kind == IouKind::kGiou ? "giou" : "ciou";
  switch (term) {
    case Term::kStructCe: return "loss_struct_ce";
    case Term::kDescCe: return "loss_desc_ce";
    case Term::kCoordTokenCe: return "loss_coord_token_ce";
    case Term::kCoordDistDfl: return "loss_coord_dist_dfl";
    case Term::kCoordDistW1: return "loss_coord_dist_w1";
    case Term::kCoordDistEntropy: return "loss_coord_dist_entropy";
    case Term::kGeoHuber: return "loss_geo_huber";
    case Term::kGeoIou: return "loss_geo_" + iou;
    case Term::kGeoHuberFn: return "loss_geo_huber_fn";
    case Term::kGeoIouFn: return "loss_geo_" + iou + "_fn";
  }
  COORDEXP_CHECK(false, "unknown loss term " << static_cast<int>(term));
  return {};
}

std::array<double, kNumTerms> term_weights(const config::LossOptions& loss) {
  std::array<double, kNumTerms> w{};
  auto at = [&w](Term t) -> double& { return w[static_cast<int>(t)]; };
  at(Term::kStructCe) = 1.0;
  at(Term::kDescCe) = 1.0;
  at(Term::kCoordTokenCe) = loss.coord_ce.weight;
  const config::CoordDistOptions& d = loss.coord_dist;
  auto dist_weight = [&d](const char* mode, double secondary) {
    if (d.mode == mode) return d.weight;
    return d.combine ? secondary : 0.0;
  };
  at(Term::kCoordDistDfl) = dist_weight("dfl", d.dfl_weight);
  at(Term::kCoordDistW1) = dist_weight("w1", d.w1_weight);
  at(Term::kCoordDistEntropy) = dist_weight("entropy", d.entropy_weight);
  at(Term::kGeoHuber) = at(Term::kGeoHuberFn) = loss.geo.weight * loss.geo.huber_weight;
  at(Term::kGeoIou) = at(Term::kGeoIouFn) = loss.geo.weight * loss.geo.iou_weight;
  return w;
}

LossTerms& LossTerms::operator+=(const LossTerms& other) {
  for (int i = 0; i < kNumTerms; ++i) terms[i] += other.terms[i];
  num_poly_excluded += other.num_poly_excluded;
  if (other[Term::kGeoIou].active() || other[Term::kGeoIouFn].active()) iou_kind = other.iou_kind;
  return *this;
}

TermCounts LossTerms::counts() const {
  TermCounts c{};
  for (int i = 0; i < kNumTerms; ++i) c[i] = terms[i].count;
  return c;
}

TermActive LossTerms::active() const {
  TermActive a{};
  for (int i = 0; i < kNumTerms; ++i) a[i] = terms[i].active();
  return a;
}

TermSums LossTerms::detached_sums() const {
  TermSums s{};
  for (int i = 0; i < kNumTerms; ++i) s[i] = terms[i].active() ? terms[i].sum.detach().item<double>() : 0.0;
  return s;
}

torch::Tensor total_loss(const LossTerms& local, const TermCounts& global_counts, const config::LossOptions& loss) {
  return total_loss(local, global_counts, term_weights(loss));
}

torch::Tensor total_loss(const LossTerms& local, const TermCounts& global_counts,
                         const std::array<double, kNumTerms>& weights) {
  torch::Tensor total;
  for (int i = 0; i < kNumTerms; ++i) {
    if (!local.terms[i].active() || weights[i] == 0.0) continue;
    torch::Tensor term = mean_or_zero(local.terms[i], global_counts[i]) * weights[i];
    total = total.defined() ? total + term : term;
  }
  return total.defined() ? total : torch::zeros({});
}

std::vector<Metric> loss_metrics(const TermSums& global_sums, const TermCounts& global_counts,
                                 const TermActive& active, IouKind iou_kind) {
  std::vector<Metric> out;
  for (int i = 0; i < kNumTerms; ++i) {
    if (!active[i]) continue;
    const int64_t n = global_counts[i];
    out.push_back({term_name(static_cast<Term>(i), iou_kind), n > 0 ? global_sums[i] / static_cast<double>(n) : 0.0, n});
  }
  return out;
}

}  // namespace coordexp::coord
