// Per-optimizer-step normalization of the Unified Loss Registry terms. Each term of a micro-batch is a
// (sum, count) pair; the trainer all-reduces the counts over micro-batches and ranks, then divides each
// local sum by its global count (mean_or_zero) before backward, so gradient accumulation and data
// parallelism give the same update as one big batch. Also names terms for metrics (loss_struct_ce, ...).
// Does not compute losses (losses.h) nor talk to process groups (dist).
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "coordexp/config/sections/loss.h"
#include "coordexp/coord/geometry.h"

namespace coordexp::coord {

// One term on one micro-batch: sum of weighted per-item losses (0-dim, graph attached) and the number
// of supervised items (tokens, coord slots or objects). An up-weight scales the summand, never count.
struct LossTerm {
  torch::Tensor sum;  // undefined = term not computed (inactive)
  int64_t count = 0;
  bool active() const { return sum.defined(); }
  LossTerm& operator+=(const LossTerm& other);
};

// local.sum / global_count, or exactly zero (graph kept, gradients zero, never NaN) when global_count
// is 0. global_count >= local.count is checked. An inactive term gives an undefined tensor.
torch::Tensor mean_or_zero(const LossTerm& local, int64_t global_count);

// Registry terms. kGeo*Fn hold the FN-injected subset of context=rollout, which L_geo averages
// separately: L_geo = mean_or_zero(matched) + mean_or_zero(fn) (seed 7.2). In gt/self_context every
// object is in the kGeoHuber/kGeoIou bucket.
enum class Term : int {
  kStructCe,
  kDescCe,
  kCoordTokenCe,
  kCoordDistDfl,
  kCoordDistW1,
  kCoordDistEntropy,
  kGeoHuber,
  kGeoIou,
  kGeoHuberFn,
  kGeoIouFn,
};
constexpr int kNumTerms = 10;
using TermCounts = std::array<int64_t, kNumTerms>;
using TermSums = std::array<double, kNumTerms>;
using TermActive = std::array<bool, kNumTerms>;

// Metric name: loss_struct_ce, loss_desc_ce, loss_coord_token_ce, loss_coord_dist_dfl|w1|entropy,
// loss_geo_huber, loss_geo_ciou|giou, loss_geo_huber_fn, loss_geo_ciou_fn|giou_fn.
std::string term_name(Term term, IouKind iou_kind);

// The multiplier of each finalized term in the total: 1 for struct/desc CE, lambda_coord_ce,
// the coord_dist weights (primary mode: coord_dist.weight; others only when combine), and
// lambda_geo * lambda_huber / lambda_geo * lambda_ciou for the geo terms.
std::array<double, kNumTerms> term_weights(const config::LossOptions& loss);

struct LossTerms {
  std::array<LossTerm, kNumTerms> terms;
  IouKind iou_kind = IouKind::kCiou;  // names the kGeoIou* metrics
  int64_t num_poly_excluded = 0;      // polygon objects skipped by L_geo / L_coord_dist (token CE only)

  LossTerm& operator[](Term t) { return terms[static_cast<int>(t)]; }
  const LossTerm& operator[](Term t) const { return terms[static_cast<int>(t)]; }
  // Adds sums and counts term by term (samples of a micro-batch, or Channel-A's gt-context CE terms
  // and self_context geometry terms). A term is active when either side is.
  LossTerms& operator+=(const LossTerms& other);
  TermCounts counts() const;
  TermActive active() const;
  TermSums detached_sums() const;  // 0 for inactive terms; for logging
};

// sum_i weight_i * mean_or_zero(local_i, global_counts_i) over active terms with non-zero weight.
// A 0-dim tensor; backward on each micro-batch's total accumulates exactly the big-batch gradient.
// Returns an exact zero without graph when nothing is active.
torch::Tensor total_loss(const LossTerms& local, const TermCounts& global_counts, const config::LossOptions& loss);
// The same with explicit per-term multipliers (e.g. Channel-B's term_weights with the matched half of
// L_geo scaled by channel_b.matched_geo_weight).
torch::Tensor total_loss(const LossTerms& local, const TermCounts& global_counts,
                         const std::array<double, kNumTerms>& weights);

struct Metric {
  std::string name;
  double value = 0.0;  // global mean (0 when count is 0)
  int64_t count = 0;   // global supervised items
};
// One metric per active term, from globally reduced sums and counts.
std::vector<Metric> loss_metrics(const TermSums& global_sums, const TermCounts& global_counts,
                                 const TermActive& active, IouKind iou_kind);

}  // namespace coordexp::coord
