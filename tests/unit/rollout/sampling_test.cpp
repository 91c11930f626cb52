// Next-token choice math: top-p keeps the smallest most-likely prefix with mass >= p (hand-made
// dyadic distributions and a brute-force property check on random ones), top-k with ties, the
// combined sampling distribution against a direct computation, the inverse-CDF draw, SplitMix64
// against its published first output, and draw frequencies.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "coordexp/rollout/sampling.h"

namespace cr = coordexp::rollout;

namespace {

std::vector<bool> to_vec(const torch::Tensor& mask) {
  std::vector<bool> v;
  for (int64_t i = 0; i < mask.numel(); ++i) v.push_back(mask[i].item<bool>());
  return v;
}

torch::Tensor probs(std::vector<double> p) { return torch::tensor(p, torch::kDouble); }

}  // namespace

TEST(RolloutSampling, TopPKeepsSmallestPrefixWithEnoughMass) {
  // Sorted: index 1 (0.5), 2 (0.25), then the tie 0 / 3 (0.125 each; lower index first).
  const auto p = probs({0.125, 0.5, 0.25, 0.125});
  EXPECT_EQ(to_vec(cr::top_p_keep_mask(p, 0.3)), (std::vector<bool>{false, true, false, false}));
  EXPECT_EQ(to_vec(cr::top_p_keep_mask(p, 0.5)), (std::vector<bool>{false, true, false, false}));
  EXPECT_EQ(to_vec(cr::top_p_keep_mask(p, 0.5000001)), (std::vector<bool>{false, true, true, false}));
  EXPECT_EQ(to_vec(cr::top_p_keep_mask(p, 0.75)), (std::vector<bool>{false, true, true, false}));
  EXPECT_EQ(to_vec(cr::top_p_keep_mask(p, 0.76)), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(to_vec(cr::top_p_keep_mask(p, 0.875)), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(to_vec(cr::top_p_keep_mask(p, 1.0)), (std::vector<bool>{true, true, true, true}));
  EXPECT_EQ(to_vec(cr::top_p_keep_mask(p, 1e-9)), (std::vector<bool>{false, true, false, false}));

  // Random distributions: the kept set has mass >= p, dropping its least likely member would fall
  // below p, and no dropped token is more likely than a kept one.
  auto gen = at::detail::createCPUGenerator(11);
  for (int trial = 0; trial < 50; ++trial) {
    const auto q = torch::softmax(torch::randn({40}, gen, torch::kDouble) * 2.0, 0);
    const double top_p = torch::rand({1}, gen, torch::kDouble).item<double>();
    const auto keep = cr::top_p_keep_mask(q, top_p);
    const auto kept = q.masked_select(keep), dropped = q.masked_select(keep.logical_not());
    const double mass = kept.sum().item<double>();
    EXPECT_GE(mass, top_p - 1e-12) << trial;
    EXPECT_LT(mass - kept.min().item<double>(), top_p) << trial;
    if (dropped.numel() > 0) {
      EXPECT_GE(kept.min().item<double>(), dropped.max().item<double>()) << trial;
    }
  }
}

TEST(RolloutSampling, TopKDistributionAndDraw) {
  const auto logits = torch::tensor({1.0, 3.0, 3.0, 2.0});
  EXPECT_EQ(to_vec(cr::top_k_keep_mask(logits, 1)), (std::vector<bool>{false, true, false, false}));
  EXPECT_EQ(to_vec(cr::top_k_keep_mask(logits, 3)), (std::vector<bool>{false, true, true, true}));
  EXPECT_EQ(to_vec(cr::top_k_keep_mask(logits, 0)), (std::vector<bool>{true, true, true, true}));
  EXPECT_EQ(cr::argmax_token(logits), 1);

  // temperature 2, top_k 3, top_p 0.6 computed by hand: softmax of {3, 3, 2} / 2, then the nucleus.
  const auto dist = cr::sampling_distribution(torch::tensor({1.0f, 3.0f, 3.0f, 2.0f}), {2.0, 3, 0.6});
  const double e3 = std::exp(1.5), e2 = std::exp(1.0), z = 2 * e3 + e2;
  ASSERT_LT(e3 / z, 0.6);  // so the nucleus needs both 3s and stops before the 2
  ASSERT_GE(2 * e3 / z, 0.6);
  EXPECT_NEAR(dist[0].item<double>(), 0.0, 0.0);
  EXPECT_NEAR(dist[1].item<double>(), 0.5, 1e-15);
  EXPECT_NEAR(dist[2].item<double>(), 0.5, 1e-15);
  EXPECT_NEAR(dist[3].item<double>(), 0.0, 0.0);
  const auto full = cr::sampling_distribution(torch::tensor({1.0, 3.0, 3.0, 2.0}), {2.0, 0, 1.0});
  EXPECT_NEAR(full[3].item<double>(), e2 / (z + std::exp(0.5)), 1e-15);

  // Inverse CDF skips zero-probability tokens.
  const auto p = probs({0.0, 0.5, 0.0, 0.5});
  EXPECT_EQ(cr::draw_from(p, 0.0), 1);
  EXPECT_EQ(cr::draw_from(p, 0.49), 1);
  EXPECT_EQ(cr::draw_from(p, 0.5), 3);
  EXPECT_EQ(cr::draw_from(p, 0.999999), 3);

  // SplitMix64 from state 0: published first output 0xe220a8397b1dcdaf.
  cr::RowRng rng(0);
  EXPECT_EQ(rng.next_u64(), 0xe220a8397b1dcdafULL);
  EXPECT_NE(cr::row_seed(5, 0), cr::row_seed(5, 1));
  EXPECT_NE(cr::row_seed(5, 0), cr::row_seed(6, 0));
  EXPECT_EQ(cr::row_seed(5, 3), cr::row_seed(5, 3));

  // Draw frequencies follow the distribution (20000 draws: 4 sigma ~ 0.014).
  const auto q = probs({0.2, 0.3, 0.5});
  std::vector<int> counts(3, 0);
  cr::RowRng r(42);
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[cr::draw_from(q, r.uniform())];
  EXPECT_NEAR(counts[0] / double(n), 0.2, 0.015);
  EXPECT_NEAR(counts[1] / double(n), 0.3, 0.015);
  EXPECT_NEAR(counts[2] / double(n), 0.5, 0.015);
}
