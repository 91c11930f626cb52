// The chunked LM head + CE (coord/head_ce.h) against the plain float64 computation it replaces:
// full [K, V] logits, per-row cross-entropy, per-term weighted sums and the coord columns, with
// autograd through ordinary ops as the reference. Values and gradients (hidden and head weight) must
// agree to 1e-10 relative for every chunk size, on the path that reuses the forward's gradient
// (incoming gradients = declared scale, or a multiple of it) and on the recomputing one (other
// gradients, or K < H so only the last chunk's CE gradient is kept), with the coord columns' own
// gradient added.
#include <gtest/gtest.h>

#include "coordexp/coord/decode.h"
#include "coordexp/coord/head_ce.h"

namespace coordexp::coord {
namespace {

struct Problem {
  torch::Tensor hidden, weight, targets, term, row_weight, coord_grad;
  int64_t first = 150;
};

Problem make(int64_t K, int64_t H, int64_t V, uint64_t seed) {
  torch::manual_seed(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  Problem p;
  p.hidden = torch::randn({K, H}, f64);
  p.weight = torch::randn({V, H}, f64) * 0.5;
  p.targets = torch::randint(0, V, {K}, torch::kLong);
  p.term = torch::randint(-1, 3, {K}, torch::kLong);
  p.row_weight = torch::rand({K}, f64) + 0.5;
  p.coord_grad = torch::randn({K, CoordIdRange::kNumBins}, f64);
  return p;
}

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-300);
}

// loss = sum_t loss_scale[t] * term_sums[t] + sum(coord_logits * coord_grad)
void check(const Problem& p, const std::array<double, 3>& declared, const std::array<double, 3>& loss_scale,
           int64_t chunk, bool expect_second_pass) {
  // Reference: ordinary ops, full logits.
  torch::Tensor h0 = p.hidden.clone().requires_grad_(true), w0 = p.weight.clone().requires_grad_(true);
  const torch::Tensor logits = torch::matmul(h0, w0.t());
  const torch::Tensor ce = torch::nn::functional::cross_entropy(
      logits, p.targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  std::vector<torch::Tensor> ref_sums;
  for (int t = 0; t < 3; ++t) ref_sums.push_back((ce * p.row_weight * p.term.eq(t).to(torch::kDouble)).sum());
  const torch::Tensor ref_coord = logits.narrow(1, p.first, CoordIdRange::kNumBins);
  torch::Tensor ref_loss = (ref_coord * p.coord_grad).sum();
  for (int t = 0; t < 3; ++t) ref_loss = ref_loss + ref_sums[t] * loss_scale[t];
  ref_loss.backward();

  torch::Tensor h1 = p.hidden.clone().requires_grad_(true), w1 = p.weight.clone().requires_grad_(true);
  const int64_t passes_before = chunked_head_backward_passes();
  const HeadCeResult r = chunked_head_ce(h1, w1, p.targets, p.term, p.row_weight, p.first, declared, chunk);
  torch::Tensor loss = (r.coord_logits * p.coord_grad).sum();
  for (int t = 0; t < 3; ++t) loss = loss + r.term_sums[t] * loss_scale[t];
  loss.backward();
  const bool second_pass = chunked_head_backward_passes() > passes_before;

  for (int t = 0; t < 3; ++t) EXPECT_LT(rel(r.term_sums[t], ref_sums[t]), 1e-12) << "term " << t << " chunk " << chunk;
  EXPECT_LT(rel(r.coord_logits, ref_coord), 1e-12);
  EXPECT_LT(rel(h1.grad(), h0.grad()), 1e-10) << "d hidden, chunk " << chunk;
  EXPECT_LT(rel(w1.grad(), w0.grad()), 1e-10) << "d weight, chunk " << chunk;
  EXPECT_EQ(second_pass, expect_second_pass) << "chunk " << chunk;
}

TEST(ChunkedHeadCe, MatchesFullLogitsWhenTheForwardsGradientIsReused) {
  const Problem p = make(/*K=*/37, /*H=*/8, /*V=*/1203, 1);  // K >= H: the forward keeps the gradient
  const std::array<double, 3> scale{0.5, 0.25, 2.0};
  for (int64_t chunk : {1, 5, 16, 37, 100}) check(p, scale, scale, chunk, /*second pass=*/false);
  // A common multiple of the declared gradients (e.g. a loss scale) still reuses it.
  check(p, scale, {1.5, 0.75, 6.0}, 7, false);
}

TEST(ChunkedHeadCe, RecomputesWithTheActualGradientsOtherwise) {
  const Problem p = make(37, 8, 1203, 2);
  // Incoming gradients that are not a multiple of the declared ones: exact through the second pass.
  check(p, {0.5, 0.25, 2.0}, {1.0, 0.0, 3.0}, 6, true);
  check(p, {0.0, 0.0, 0.0}, {1.0, 1.0, 1.0}, 9, true);  // nothing declared: no gradient kept
  // K < H: the [V, H] buffer would exceed the logits, so only the last chunk's gradient is kept and
  // the backward recomputes the others ...
  const Problem wide = make(12, 32, 1180, 3);
  check(wide, {1.0, 1.0, 1.0}, {1.0, 1.0, 1.0}, 4, true);
  check(wide, {1.0, 1.0, 1.0}, {1.0, 1.0, 1.0}, 5, true);  // a short last chunk
  // ... or none of them when every row fits in one chunk, also for a multiple of the declared
  // gradients; gradients that are not a multiple recompute that chunk too.
  check(wide, {0.5, 0.25, 2.0}, {0.5, 0.25, 2.0}, 12, false);
  check(wide, {0.5, 0.25, 2.0}, {1.5, 0.75, 6.0}, 64, false);
  check(wide, {0.5, 0.25, 2.0}, {1.0, 0.0, 3.0}, 64, true);
}

TEST(ChunkedHeadCe, RowsWithoutATermOnlyFeedTheCoordColumns) {
  Problem p = make(10, 4, 1160, 4);
  p.term.fill_(-1);
  check(p, {1.0, 1.0, 1.0}, {1.0, 1.0, 1.0}, 3, false);
  const HeadCeResult r = chunked_head_ce(p.hidden, p.weight, p.targets, p.term, p.row_weight, p.first, {1, 1, 1}, 4);
  EXPECT_EQ(r.term_sums.abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace coordexp::coord
