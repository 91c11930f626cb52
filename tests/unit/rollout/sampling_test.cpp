// Next-token choice math: top-p keeps the smallest most-likely prefix with mass >= p (hand-made
// dyadic distributions and a brute-force property check on random ones), top-k with ties, the
// combined sampling distribution against a direct computation, the inverse-CDF draw, SplitMix64
// against its published first output, and draw frequencies. The partial-selection masks equal a
// float64 full-sort reference (ties, zeros, -inf, p near 0 and 1, k = 1 and k >= V), also at the
// real 152,670-token vocabulary, and draws for a fixed seed equal those of the former full-sort
// implementation (golden ids recorded from it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "coordexp/rollout/sampling.h"

namespace cr = coordexp::rollout;

namespace {

std::vector<bool> to_vec(const torch::Tensor& mask) {
  const auto m = mask.to(torch::kCPU, torch::kBool).contiguous();
  return std::vector<bool>(m.data_ptr<bool>(), m.data_ptr<bool>() + m.numel());
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

namespace {

// Brute-force float64 references of the keep masks' definitions (sampling.h): a stable descending
// order of all V values (equal values: lower index first), then the first k, or the prefix whose
// exclusive mass, added one token at a time in that order, stays below top_p.
std::vector<int64_t> stable_descending(const std::vector<double>& v) {
  std::vector<int64_t> order(v.size());
  for (size_t i = 0; i < v.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  return order;
}

// order: stable_descending(v), computed once per vector.
std::vector<bool> reference_top_k(const std::vector<int64_t>& order, int64_t k) {
  std::vector<bool> keep(order.size(), k == 0 || k >= static_cast<int64_t>(order.size()));
  if (keep[0]) return keep;
  for (int64_t i = 0; i < k; ++i) keep[order[i]] = true;
  return keep;
}

std::vector<bool> reference_top_p(const std::vector<double>& p, const std::vector<int64_t>& order, double top_p) {
  std::vector<bool> keep(p.size(), false);
  double before = 0.0;
  for (int64_t i : order) {
    if (!(before < top_p)) break;
    keep[i] = true;
    before += p[i];
  }
  return keep;
}

std::vector<double> values(const torch::Tensor& t) {
  const auto c = t.to(torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Logits of a few shapes: smooth (few ties), quantized (many ties, at every rank), constant, and
// with -inf entries (what top-k or a constraint leaves), at scale sigma.
torch::Tensor test_logits(int64_t V, int kind, double sigma, at::Generator& gen) {
  auto x = torch::randn({V}, gen, torch::kDouble) * sigma;
  if (kind == 1) x = torch::round(x * 2.0) / 2.0;
  if (kind == 2) x = torch::full({V}, 0.25, torch::kDouble);
  if (kind == 3) x = x.masked_fill(torch::rand({V}, gen, torch::kDouble).lt(0.7), -std::numeric_limits<double>::infinity());
  return x;
}

}  // namespace

TEST(RolloutSampling, PartialSelectionEqualsFullSortReference) {
  auto gen = at::detail::createCPUGenerator(23);
  int cases = 0;
  for (int64_t V : {int64_t{1}, int64_t{2}, int64_t{7}, int64_t{64}, int64_t{65}, int64_t{300}, int64_t{5000},
                    int64_t{70000}}) {
    for (int kind = 0; kind < 4; ++kind) {
      for (double sigma : {0.3, 2.0, 8.0}) {
        const auto x = test_logits(V, kind, sigma, gen);
        const auto x_order = stable_descending(values(x));
        for (int64_t k : {int64_t{1}, int64_t{2}, int64_t{63}, int64_t{64}, int64_t{65}, V - 1, V, V + 5,
                          int64_t{1} + static_cast<int64_t>(torch::randint(V, {1}, gen).item<int64_t>())}) {
          if (k < 0) continue;
          ASSERT_EQ(to_vec(cr::top_k_keep_mask(x, k)), reference_top_k(x_order, k)) << "V " << V << " kind " << kind << " k " << k;
          ++cases;
        }
        // Probabilities with exact zeros where the logits were -inf (kind 3) or masked by top-k.
        const auto probs = torch::softmax(x, 0);
        const auto probs_topk = torch::softmax(x.masked_fill(cr::top_k_keep_mask(x, 50).logical_not(),
                                                             -std::numeric_limits<double>::infinity()), 0);
        for (const auto& q : {probs, probs_topk}) {
          const auto qv = values(q);
          const auto q_order = stable_descending(qv);
          double qsum = 0.0;
          for (double e : qv) qsum += e;
          for (double top_p : {1e-12, 0.1, 0.5, 0.9, 0.95, 0.999, 1.0 - 1e-12, 1.0, qsum, std::nextafter(qsum, 0.0),
                               torch::rand({1}, gen, torch::kDouble).item<double>() + 1e-300}) {
            if (!(top_p > 0.0 && top_p <= 1.0)) continue;
            ASSERT_EQ(to_vec(cr::top_p_keep_mask(q, top_p)), reference_top_p(qv, q_order, top_p))
                << "V " << V << " kind " << kind << " sigma " << sigma << " top_p " << top_p;
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_GT(cases, 1000);
}

TEST(RolloutSampling, PartialSelectionAtFullVocabulary) {
  // V = 152,670 (the real Qwen3-VL vocabulary), peaked and flat: the nucleus is found in the first
  // candidate round (peaked) or needs more than V / 16 tokens and falls back to the full sort (flat).
  auto gen = at::detail::createCPUGenerator(5);
  for (double sigma : {6.0, 2.0}) {
    const auto x = torch::randn({152670}, gen, torch::kDouble) * sigma;
    const auto probs = torch::softmax(x, 0);
    const auto pv = values(probs);
    const auto p_order = stable_descending(pv), x_order = stable_descending(values(x));
    for (double top_p : {0.5, 0.9, 0.99})
      EXPECT_EQ(to_vec(cr::top_p_keep_mask(probs, top_p)), reference_top_p(pv, p_order, top_p)) << sigma << " " << top_p;
    for (int64_t k : {1, 50, 4096}) EXPECT_EQ(to_vec(cr::top_k_keep_mask(x, k)), reference_top_k(x_order, k)) << k;
  }
}

TEST(RolloutSampling, DrawsForAFixedSeedAreUnchanged) {
  // Recorded from the full-sort implementation (before partial selection): 60 draws from random
  // logits at V = 152,670 (sigma 1, 3, 6) with top-p, top-k + top-p, and top-k alone; the RNG use is
  // one uniform per draw, as before.
  const std::vector<int64_t> golden = {39529, 5027, 127565, 15846, 25431, 29259, 121840, 96729, 79557, 103339, 82665, 113948, 32688, 73292, 19324, 123977, 42360, 62094, 43449, 29355, 124417, 9833, 7421, 47297, 150342, 69456, 23165, 69328, 146783, 131832, 114795, 62608, 76326, 3206, 127497, 97153, 93221, 147405, 85856, 78153, 30494, 137453, 40240, 113353, 8019, 127905, 132418, 66149, 145567, 89266, 50106, 127097, 59993, 38084, 89172, 58564, 90909, 85691, 25698, 112369};
  auto gen = at::detail::createCPUGenerator(3);
  cr::RowRng rng(99);
  std::vector<int64_t> drawn;
  for (double sigma : {1.0, 3.0, 6.0})
    for (cr::SamplingParams p : {cr::SamplingParams{1.0, 0, 0.9}, cr::SamplingParams{0.7, 50, 0.95},
                                 cr::SamplingParams{1.3, 1000, 0.5}, cr::SamplingParams{1.0, 20, 1.0}})
      for (int r = 0; r < 5; ++r) {
        const auto logits = torch::randn({152670}, gen, torch::kFloat) * sigma;
        drawn.push_back(cr::draw_from(cr::sampling_distribution(logits, p), rng.uniform()));
      }
  EXPECT_EQ(drawn, golden);
}
