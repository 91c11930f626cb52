// CoordExp decode and context embeddings: gather as a slice, closed-interval bin values, float64
// finite-difference gradients, the identity dc/ds_k = p_k (phi_k - c) / tau, straight-through forward
// bit-exactness and soft backward, em_detach, and finiteness for extreme logits / small tau.
#include <gtest/gtest.h>

#include "coordexp/coord/decode.h"
#include "coordexp/util/error.h"
#include "gradcheck.h"
#include "reference.h"

namespace coordexp::coord {
namespace {

using testing::expect_gradients_match;

torch::Tensor random_logits(int64_t n, double scale, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({n, CoordIdRange::kNumBins}, torch::kDouble) * scale;
}

TEST(CoordDecode, GatherIsAContiguousSliceAndBinValuesAreClosedInterval) {
  const CoordIdRange ids{37};
  const torch::Tensor logits = torch::randn({2, 3, 37 + 1000 + 5});
  const torch::Tensor s = gather_coord_logits(logits, ids);
  EXPECT_EQ(s.sizes(), (std::vector<int64_t>{2, 3, 1000}));
  EXPECT_EQ(s.data_ptr<float>(), logits.data_ptr<float>() + 37);  // a view, no full-vocab copy
  EXPECT_TRUE(torch::equal(s.select(-1, 999), logits.select(-1, 37 + 999)));
  EXPECT_THROW(gather_coord_logits(torch::randn({4, 1036}), ids), FormatError);

  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    const torch::Tensor phi = coord_bin_values(torch::TensorOptions().dtype(dtype));
    EXPECT_EQ(phi[0].item<double>(), 0.0);
    EXPECT_EQ(phi[999].item<double>(), 1.0);
    EXPECT_NEAR(phi[500].item<double>(), 500.0 / 999.0, 1e-7);
  }
  // A one-hot distribution decodes to its bin value exactly, also at both ends.
  torch::Tensor p = torch::zeros({3, 1000}, torch::kDouble);
  p[0][0] = 1.0;
  p[1][999] = 1.0;
  p[2][110] = 1.0;
  const torch::Tensor c = decode_exp(p);
  EXPECT_EQ(c[0].item<double>(), 0.0);
  EXPECT_EQ(c[1].item<double>(), 1.0);
  EXPECT_EQ(c[2].item<double>(), 110.0 / 999.0);
  EXPECT_EQ(parse_decode_mode("st"), DecodeMode::kSt);
  EXPECT_THROW(parse_decode_mode("mean"), ConfigError);
  EXPECT_THROW(parse_ctx_embed_mode("sample", "channel_a.coord_ctx_embed_mode"), ConfigError);
}

TEST(CoordDecode, ExpDecodeMatchesReferenceAndGradientIdentity) {
  for (double tau : {1.0, 0.5, 2.0}) {
    const torch::Tensor s = random_logits(2, 2.0, 7).requires_grad_(true);
    const torch::Tensor c = decode_exp(coord_probs(s, tau));
    for (int64_t i = 0; i < 2; ++i) {
      std::vector<double> row(s[i].data_ptr<double>(), s[i].data_ptr<double>() + 1000);
      EXPECT_NEAR(c[i].item<double>(), reference::expectation(reference::softmax(row, tau)), 1e-13);
    }
    // Identity of seed 2.4, against autograd and against central differences.
    const torch::Tensor grad = torch::autograd::grad({c.sum()}, {s})[0];
    const torch::Tensor p = coord_probs(s, tau).detach();
    const torch::Tensor phi = coord_bin_values(p.options());
    const torch::Tensor identity = p * (phi - c.detach().unsqueeze(-1)) / tau;
    EXPECT_LT((grad - identity).abs().max().item<double>(), 1e-15);
    EXPECT_EQ(expect_gradients_match([tau](const auto& x) { return decode_exp(coord_probs(x[0], tau)); }, {s}), 0);
    torch::NoGradGuard ng;
    for (int64_t k : {0, 1, 250, 998, 999}) {
      torch::Tensor sp = s.detach().clone(), sm = s.detach().clone();
      sp[0][k] += 1e-6;
      sm[0][k] -= 1e-6;
      const double fd = (decode_exp(coord_probs(sp, tau))[0] - decode_exp(coord_probs(sm, tau))[0]).item<double>() / 2e-6;
      EXPECT_NEAR(fd, identity[0][k].item<double>(), 1e-9 + 1e-6 * std::abs(fd)) << "k=" << k << " tau=" << tau;
    }
  }
}

TEST(CoordDecode, StraightThroughIsHardForwardSoftBackward) {
  const double tau = 0.7;
  torch::Tensor s = random_logits(4, 3.0, 11);
  s[1][999] = 50.0;  // argmax at the top bin: hard value exactly 1.0
  s[2][0] = 50.0;    // and at the bottom bin: exactly 0.0
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    const torch::Tensor x = s.to(dtype).requires_grad_(true);
    const torch::Tensor p = coord_probs(x, tau);
    const torch::Tensor st = decode_st(p);
    const torch::Tensor hard = decode_hard(p);
    EXPECT_TRUE(torch::equal(st.detach(), hard));  // bit-exact forward
    EXPECT_TRUE(torch::equal(hard, coord_bin_values(hard.options()).index({p.detach().argmax(-1)})));
    EXPECT_EQ(st[1].item<double>(), 1.0);
    EXPECT_EQ(st[2].item<double>(), 0.0);
    EXPECT_FALSE(hard.requires_grad());
    const torch::Tensor r = torch::randn({4}, dtype);
    const torch::Tensor g_st = torch::autograd::grad({(st * r).sum()}, {x})[0];
    const torch::Tensor g_soft = torch::autograd::grad({(decode_exp(coord_probs(x, tau)) * r).sum()}, {x})[0];
    EXPECT_TRUE(torch::equal(g_st, g_soft));  // backward is exactly the expectation gradient
  }
  // ST backward vs central differences of the soft decode (the ST forward itself is piecewise constant).
  EXPECT_EQ(expect_gradients_match([tau](const auto& x) { return decode_st(coord_probs(x[0], tau)); }, {s},
                                   [tau](const auto& x) { return decode_exp(coord_probs(x[0], tau)); }),
            0);
  EXPECT_TRUE(torch::equal(decode_coords(coord_probs(s, tau), DecodeMode::kSt), decode_hard(coord_probs(s, tau))));
}

TEST(CoordDecode, ContextEmbeddingsSoftStHardAndEmDetach) {
  const double tau = 0.8;
  const torch::Tensor s = random_logits(2, 2.0, 5);
  torch::manual_seed(6);
  const torch::Tensor E = torch::randn({1000, 3}, torch::kDouble);
  auto embed = [tau](CtxEmbedMode mode, bool detach) {
    return [=](const std::vector<torch::Tensor>& x) { return coord_context_embeddings(coord_probs(x[0], tau), x[1], mode, detach); };
  };
  // soft: gradients w.r.t. logits and table against central differences.
  EXPECT_EQ(expect_gradients_match(embed(CtxEmbedMode::kSoft, false), {s, E}), 0);
  // st: backward (logits and table) equals the soft derivative; forward equals the hard rows exactly.
  EXPECT_EQ(expect_gradients_match(embed(CtxEmbedMode::kSt, false), {s, E}, embed(CtxEmbedMode::kSoft, false)), 0);

  const torch::Tensor x = s.clone().requires_grad_(true), table = E.clone().requires_grad_(true);
  const torch::Tensor p = coord_probs(x, tau);
  const torch::Tensor k_star = p.detach().argmax(-1);
  const torch::Tensor e_soft = coord_context_embeddings(p, table, CtxEmbedMode::kSoft, false);
  const torch::Tensor e_st = coord_context_embeddings(p, table, CtxEmbedMode::kSt, false);
  const torch::Tensor e_hard = coord_context_embeddings(p, table, CtxEmbedMode::kHard, false);
  EXPECT_TRUE(torch::equal(e_st.detach(), E.index_select(0, k_star)));
  EXPECT_TRUE(torch::equal(e_hard.detach(), E.index_select(0, k_star)));
  EXPECT_LT((e_soft.detach() - torch::matmul(p.detach(), E)).abs().max().item<double>(), 1e-14);
  const torch::Tensor r = torch::randn({2, 3}, torch::kDouble);
  const auto g_st = torch::autograd::grad({(e_st * r).sum()}, {x, table}, {}, true);
  const auto g_soft = torch::autograd::grad({(e_soft * r).sum()}, {x, table}, {}, true);
  EXPECT_TRUE(torch::equal(g_st[0], g_soft[0]));
  EXPECT_TRUE(torch::equal(g_st[1], g_soft[1]));
  // hard: no gradient into the logits; the table gets exactly r on the chosen rows.
  const auto g_hard = torch::autograd::grad({(e_hard * r).sum()}, {x, table}, {}, true, false, true);
  EXPECT_FALSE(g_hard[0].defined());
  EXPECT_TRUE(torch::equal(g_hard[1].index_select(0, k_star), r));

  // em_detach: same forward; no gradient into the logits; the table's gradient is the soft one.
  for (CtxEmbedMode mode : {CtxEmbedMode::kSoft, CtxEmbedMode::kSt}) {
    const torch::Tensor e = coord_context_embeddings(p, table, mode, /*em_detach=*/true);
    EXPECT_TRUE(torch::equal(e.detach(), mode == CtxEmbedMode::kSt ? e_st.detach() : e_soft.detach()));
    const auto g = torch::autograd::grad({(e * r).sum()}, {x, table}, {}, true, false, true);
    EXPECT_FALSE(g[0].defined());
    EXPECT_TRUE(torch::equal(g[1], g_soft[1]));
  }
}

TEST(CoordDecode, ExtremeLogitsAndSmallTauStayFinite) {
  torch::Tensor s = torch::zeros({4, 1000}, torch::kDouble);
  s[0].fill_(-1e4);
  s[0][3] = 1e4;  // one bin at +1e4, the rest at -1e4
  s[1].uniform_(-1e4, 1e4);
  s[2][998] = 1e4;
  s[2][999] = 1e4;  // a tie at the top: first maximum wins the hard decode
  s[3].fill_(1e4);  // all equal
  torch::manual_seed(3);
  const torch::Tensor E = torch::randn({1000, 4}, torch::kDouble);
  for (auto dtype : {torch::kDouble, torch::kFloat})
    for (double tau : {1.0, 0.05}) {
      const torch::Tensor x = s.to(dtype).requires_grad_(true), table = E.to(dtype).requires_grad_(true);
      const torch::Tensor p = coord_probs(x, tau);
      const torch::Tensor c_exp = decode_exp(p), c_st = decode_st(p);
      const torch::Tensor emb = coord_context_embeddings(p, table, CtxEmbedMode::kSt, false);
      EXPECT_TRUE(torch::isfinite(c_exp).all().item<bool>());
      EXPECT_NEAR(c_exp[0].item<double>(), 3.0 / 999.0, 1e-6);
      EXPECT_EQ(c_st[2].item<double>(), decode_hard(p)[2].item<double>());
      EXPECT_NEAR(c_st[2].item<double>(), 998.0 / 999.0, 1e-7);
      EXPECT_NEAR(c_exp[3].item<double>(), 0.5, 1e-6);
      const auto g = torch::autograd::grad({c_exp.sum() + c_st.sum() + emb.sum()}, {x, table});
      EXPECT_TRUE(torch::isfinite(g[0]).all().item<bool>()) << "tau " << tau;
      EXPECT_TRUE(torch::isfinite(g[1]).all().item<bool>()) << "tau " << tau;
    }
}

}  // namespace
}  // namespace coordexp::coord
