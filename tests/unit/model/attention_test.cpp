// Chunked attention (attention.h) against two independent references, in float64: a brute-force
// loop over (row, head, query, key) applying the mask rule literally, and the eager kernel with the
// dense bias of make_attention_bias (output and the q, k, v gradients by autograd). Cases: causal,
// right and left padding, a tail offset P > 0 (prefix reuse), per-row offsets with holes (a KV
// cache), GQA ratios 1 and 4, query chunks that do and do not divide T, online key blocks, T = 1,
// the unmasked (vision) form; plus the chunk planner and float32 agreement with default chunks.
#include <gtest/gtest.h>

#include <cmath>

#include "coordexp/model/attention.h"
#include "coordexp/model/kv_cache.h"

namespace cm = coordexp::model;

namespace {

struct Qkv {
  torch::Tensor q, k, v;
};

Qkv random_qkv(int64_t B, int64_t nh, int64_t nkv, int64_t T, int64_t K, int64_t hd, uint64_t seed,
               torch::ScalarType dtype = torch::kDouble) {
  auto gen = at::detail::createCPUGenerator(seed);
  // Scale 2: peaked enough that a wrong mask or a missed rescale shows far above rounding.
  return {torch::randn({B, nh, T, hd}, gen, dtype) * 2, torch::randn({B, nkv, K, hd}, gen, dtype) * 2,
          torch::randn({B, nkv, K, hd}, gen, dtype)};
}

// Relative to the reference's largest entry, absolute (x 1e-3) where that is below 1e-3: with one
// visible key dq and dk are zero in exact arithmetic and both kernels return rounding noise (~1e-17).
double rel_err(const torch::Tensor& got, const torch::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(want.abs().max().item<double>(), 1e-3);
}

// The mask rule written out: causal -> key s visible to query j of row b iff (valid and s <= slot)
// or s == slot, slot = offset(b) + j; not causal -> always.
bool visible(const cm::AttentionMask& m, int64_t b, int64_t j, int64_t s) {
  if (!m.causal) return true;
  const int64_t slot = m.offset(b) + j;
  const bool valid = !m.key_valid.defined() || m.key_valid[m.key_valid.size(0) == 1 ? 0 : b][s].item<bool>();
  return (valid && s <= slot) || s == slot;
}

// softmax over visible keys, by loops (no tensor kernels of the code under test).
torch::Tensor brute_force(const Qkv& x, const cm::AttentionMask& m, double scale) {
  const int64_t B = x.q.size(0), nh = x.q.size(1), T = x.q.size(2), hd = x.q.size(3);
  const int64_t nkv = x.k.size(1), K = x.k.size(2), g = nh / nkv;
  auto q = x.q.contiguous(), k = x.k.contiguous(), v = x.v.contiguous();
  auto qa = q.accessor<double, 4>(), ka = k.accessor<double, 4>(), va = v.accessor<double, 4>();
  auto out = torch::zeros({B, nh, T, hd}, torch::kDouble);
  auto oa = out.accessor<double, 4>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t j = 0; j < T; ++j) {
        std::vector<double> s(K, -INFINITY);
        double mx = -INFINITY;
        for (int64_t t = 0; t < K; ++t) {
          if (!visible(m, b, j, t)) continue;
          double d = 0;
          for (int64_t e = 0; e < hd; ++e) d += qa[b][h][j][e] * ka[b][h / g][t][e];
          s[t] = d * scale;
          mx = std::max(mx, s[t]);
        }
        double z = 0;
        for (int64_t t = 0; t < K; ++t) z += std::isinf(s[t]) ? 0.0 : std::exp(s[t] - mx);
        for (int64_t t = 0; t < K; ++t) {
          if (std::isinf(s[t])) continue;
          const double p = std::exp(s[t] - mx) / z;
          for (int64_t e = 0; e < hd; ++e) oa[b][h][j][e] += p * va[b][h / g][t][e];
        }
      }
  return out;
}

struct Result {
  torch::Tensor out, dq, dk, dv;
};

// Output and gradients of sum(out * w) for one attention implementation.
template <class F>
Result run(const Qkv& x, const torch::Tensor& w, F&& attend) {
  auto q = x.q.clone().requires_grad_(true), k = x.k.clone().requires_grad_(true), v = x.v.clone().requires_grad_(true);
  auto out = attend(q, k, v);
  (out * w).sum().backward();
  return {out.detach(), q.grad(), k.grad(), v.grad()};
}

struct Case {
  std::string name;
  int64_t B, nh, nkv, T, K;
  cm::AttentionMask mask;
};

torch::Tensor bool_rows(const std::vector<std::vector<int>>& rows) {
  std::vector<torch::Tensor> r;
  for (const auto& row : rows) r.push_back(torch::tensor(std::vector<int64_t>(row.begin(), row.end())).ne(0));
  return torch::stack(r);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (int64_t nkv : {4, 1}) {  // GQA ratio 1 and 4 (4 query heads)
    const std::string r = "/g" + std::to_string(4 / nkv);
    out.push_back({"causal" + r, 2, 4, nkv, 13, 13, {}});
    cm::AttentionMask right;
    right.key_valid = bool_rows({std::vector<int>(13, 1), {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}});
    out.push_back({"right_padding" + r, 2, 4, nkv, 13, 13, right});
    cm::AttentionMask left;
    left.key_valid = bool_rows({{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, std::vector<int>(13, 1)});
    out.push_back({"left_padding" + r, 2, 4, nkv, 13, 13, left});
    // Prefix reuse: the tail's 8 queries sit at slots [5, 13) of 13 keys; left padding in row 0.
    cm::AttentionMask tail;
    tail.key_valid = bool_rows({{0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, std::vector<int>(13, 1)});
    tail.query_offsets = {5};
    out.push_back({"tail_offset" + r, 2, 4, nkv, 8, 13, tail});
    cm::AttentionMask tail_plain;
    tail_plain.query_offsets = {6};
    out.push_back({"tail_offset_unpadded" + r, 1, 4, nkv, 7, 13, tail_plain});
    // A KV cache block: rows at different offsets, a padding hole inside row 1's history.
    cm::AttentionMask cache;
    cache.key_valid = bool_rows({{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, {0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1}});
    cache.query_offsets = {2, 4};
    out.push_back({"cache_offsets" + r, 2, 4, nkv, 8, 12, cache});
    out.push_back({"single_query" + r, 2, 4, nkv, 1, 1, {}});
    cm::AttentionMask decode;
    decode.key_valid = bool_rows({{1, 1, 1, 0, 1, 1}, {0, 0, 1, 1, 1, 1}});
    decode.query_offsets = {5};
    out.push_back({"single_query_decode" + r, 2, 4, nkv, 1, 6, decode});
    out.push_back({"unmasked" + r, 2, 4, nkv, 11, 11, cm::AttentionMask::unmasked()});
  }
  return out;
}

constexpr double kScale = 0.3;

}  // namespace

TEST(ChunkedAttention, EagerReferenceMatchesBruteForce) {
  // Guards the reference itself: eager + dense bias is what the chunked kernel is compared with.
  for (const auto& c : cases()) {
    const auto x = random_qkv(c.B, c.nh, c.nkv, c.T, c.K, 8, 11);
    const auto bias = cm::dense_attention_bias(c.mask, c.T, c.K, torch::kDouble, torch::kCPU);
    EXPECT_LE(rel_err(cm::eager_attention(x.q, x.k, x.v, bias, kScale), brute_force(x, c.mask, kScale)), 1e-12)
        << c.name;
  }
}

TEST(ChunkedAttention, OutputAndGradientsEqualEagerFloat64) {
  // (query rows, key columns): whole rows, chunks that do / do not divide T, one row, online blocks.
  const std::vector<cm::AttentionChunks> chunkings{{0, 0}, {100, 0}, {5, 0}, {4, 0}, {1, 0}, {3, 4}, {5, 1}, {2, 5}};
  for (const auto& c : cases()) {
    const auto x = random_qkv(c.B, c.nh, c.nkv, c.T, c.K, 8, 7);
    const auto w = torch::randn({c.B, c.nh, c.T, 8}, at::detail::createCPUGenerator(9), torch::kDouble);
    const auto bias = cm::dense_attention_bias(c.mask, c.T, c.K, torch::kDouble, torch::kCPU);
    const auto ref = run(x, w, [&](auto& q, auto& k, auto& v) { return cm::eager_attention(q, k, v, bias, kScale); });
    const auto brute = brute_force(x, c.mask, kScale);
    for (const auto& ch : chunkings) {
      const auto got = run(x, w, [&](auto& q, auto& k, auto& v) { return cm::chunked_attention(q, k, v, c.mask, kScale, ch); });
      const std::string what = c.name + " rows " + std::to_string(ch.query_rows) + " cols " + std::to_string(ch.key_cols);
      EXPECT_EQ(got.out.sizes(), ref.out.sizes()) << what;
      EXPECT_LE(rel_err(got.out, brute), 1e-10) << what;
      EXPECT_LE(rel_err(got.out, ref.out), 1e-10) << what;
      EXPECT_LE(rel_err(got.dq, ref.dq), 1e-10) << what << " dq";
      EXPECT_LE(rel_err(got.dk, ref.dk), 1e-10) << what << " dk";
      EXPECT_LE(rel_err(got.dv, ref.dv), 1e-10) << what << " dv";
    }
  }
}

TEST(ChunkedAttention, BroadcastKeyValidAndUniformOffsets) {
  // One key_valid row and one offset serve every batch row (the decoder's unpadded tail).
  cm::AttentionMask m;
  m.key_valid = bool_rows({{1, 1, 0, 1, 1, 1, 1, 1, 1}});
  m.query_offsets = {3};
  const auto x = random_qkv(3, 4, 2, 6, 9, 8, 3);
  const auto bias = cm::dense_attention_bias(m, 6, 9, torch::kDouble, torch::kCPU);
  EXPECT_EQ(bias.size(0), 1);
  EXPECT_LE(rel_err(cm::chunked_attention(x.q, x.k, x.v, m, kScale, {4, 3}), brute_force(x, m, kScale)), 1e-10);
}

TEST(ChunkedAttention, Float32DefaultChunksAgreeWithEager) {
  // Default planning on a larger case (several chunks at a small budget is covered by the planner
  // test); float32 rounding only.
  cm::AttentionMask m;
  std::vector<int> row(300, 1);
  for (int i = 0; i < 40; ++i) row[i] = 0;
  m.key_valid = bool_rows({row, std::vector<int>(300, 1)});
  const auto x = random_qkv(2, 8, 2, 300, 300, 32, 5, torch::kFloat);
  const auto w = torch::randn({2, 8, 300, 32}, at::detail::createCPUGenerator(2), torch::kFloat);
  const auto bias = cm::dense_attention_bias(m, 300, 300, torch::kFloat, torch::kCPU);
  const auto ref = run(x, w, [&](auto& q, auto& k, auto& v) { return cm::eager_attention(q, k, v, bias, 0.17); });
  for (const cm::AttentionChunks ch : {cm::AttentionChunks{}, cm::AttentionChunks{37, 0}, cm::AttentionChunks{64, 100}}) {
    const auto got = run(x, w, [&](auto& q, auto& k, auto& v) { return cm::chunked_attention(q, k, v, m, 0.17, ch); });
    EXPECT_LE(rel_err(got.out, ref.out), 1e-5);
    EXPECT_LE(rel_err(got.dq, ref.dq), 1e-4);
    EXPECT_LE(rel_err(got.dk, ref.dk), 1e-4);
    EXPECT_LE(rel_err(got.dv, ref.dv), 1e-4);
  }
}

TEST(ChunkedAttention, DenseBiasIsMakeAttentionBias) {
  cm::AttentionMask m;
  m.key_valid = bool_rows({{0, 1, 1, 1, 1}, {1, 1, 1, 0, 0}});
  m.query_offsets = {1, 0};
  const auto bias = cm::dense_attention_bias(m, 3, 5, torch::kFloat, torch::kCPU);
  EXPECT_TRUE(torch::equal(bias, cm::make_attention_bias(m.key_valid, {1, 0}, 3, torch::kFloat)));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t s = 0; s < 5; ++s)
        EXPECT_EQ(bias[b][0][j][s].item<float>() == 0.0f, visible(m, b, j, s)) << b << " " << j << " " << s;
  EXPECT_FALSE(cm::dense_attention_bias(cm::AttentionMask::unmasked(), 3, 3, torch::kFloat, torch::kCPU).defined());
}

TEST(ChunkedAttention, PlannerKeepsOneBlockWithinBudget) {
  // 2B decoder layer at T = K = 8192, 16 heads, float32 scores, 32 MiB: 64 whole key rows per chunk.
  auto p = cm::plan_attention_chunks(16, 8192, 8192, 4, 32 << 20);
  EXPECT_EQ(p.query_rows, 64);
  EXPECT_EQ(p.key_cols, 8192);
  // Chunks are evened out: 100 rows at 64 per chunk -> 2 chunks of 50.
  p = cm::plan_attention_chunks(16, 100, 8192, 4, 32 << 20);
  EXPECT_EQ(p.query_rows, 50);
  // Short sequences: one chunk.
  p = cm::plan_attention_chunks(4, 90, 90, 8, 32 << 20);
  EXPECT_EQ(p.query_rows, 90);
  EXPECT_EQ(p.key_cols, 90);
  // Too long for kMinChunkRows whole rows: kMinChunkRows rows and key blocks that fit.
  p = cm::plan_attention_chunks(16, 1 << 20, 1 << 20, 4, 32 << 20);
  EXPECT_EQ(p.query_rows, cm::kMinChunkRows);
  EXPECT_EQ(p.key_cols, (32 << 20) / (16 * cm::kMinChunkRows * 4));
  EXPECT_LE(16 * p.query_rows * p.key_cols * 4, 32 << 20);
  // T = 1.
  p = cm::plan_attention_chunks(16, 1, 8192, 4, 32 << 20);
  EXPECT_EQ(p.query_rows, 1);
}

TEST(ChunkedAttention, RejectsMismatchedMask) {
  const auto x = random_qkv(2, 4, 2, 5, 5, 8, 1);
  cm::AttentionMask m;
  m.key_valid = torch::ones({2, 4}, torch::kBool);  // 4 keys, k has 5
  EXPECT_ANY_THROW(cm::chunked_attention(x.q, x.k, x.v, m, kScale));
  m = {};
  m.query_offsets = {3};  // queries would sit at slots [3, 8) of 5 keys
  EXPECT_ANY_THROW(cm::chunked_attention(x.q, x.k, x.v, m, kScale));
}
