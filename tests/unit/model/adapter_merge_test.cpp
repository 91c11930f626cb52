// Merge math (adapter_merge.h) against references written out here element by element in double
// from the formulas: LoRA W + (alpha/r) B A, DoRA (m / ||W + s B A||_row) (W + s B A), the coord-offset
// rows; bf16 weights merged in float32 and rounded once; shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "coordexp/model/adapter_merge.h"
#include "coordexp/util/error.h"

namespace cm = coordexp::model;

namespace {

// Row-major double copies (the reference never touches torch's matmul or norm).
std::vector<double> to_vec(const torch::Tensor& t) {
  auto c = t.to(torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// W + s * B A, element by element.
std::vector<double> ref_lora(const std::vector<double>& W, const std::vector<double>& A, const std::vector<double>& B,
                             int64_t out, int64_t in, int64_t r, double s) {
  std::vector<double> M(out * in);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      double acc = 0;
      for (int64_t k = 0; k < r; ++k) acc += B[o * r + k] * A[k * in + i];
      M[o * in + i] = W[o * in + i] + s * acc;
    }
  return M;
}

std::vector<double> ref_dora(const std::vector<double>& W, const std::vector<double>& A, const std::vector<double>& B,
                             const std::vector<double>& m, int64_t out, int64_t in, int64_t r, double s) {
  auto M = ref_lora(W, A, B, out, in, r, s);
  for (int64_t o = 0; o < out; ++o) {
    double sq = 0;
    for (int64_t i = 0; i < in; ++i) sq += M[o * in + i] * M[o * in + i];
    const double f = m[o] / std::sqrt(sq);
    for (int64_t i = 0; i < in; ++i) M[o * in + i] *= f;
  }
  return M;
}

double max_abs_diff(const torch::Tensor& got, const std::vector<double>& ref) {
  const auto g = to_vec(got);
  EXPECT_EQ(g.size(), ref.size());
  double d = 0;
  for (size_t i = 0; i < g.size(); ++i) d = std::max(d, std::fabs(g[i] - ref[i]));
  return d;
}

struct Factors {
  torch::Tensor W, A, B, m;
};
Factors factors(int64_t out, int64_t in, int64_t r, torch::ScalarType dtype) {
  torch::manual_seed(out * 1000 + in * 10 + r);
  Factors f;
  f.W = torch::randn({out, in}, torch::kDouble).to(dtype);
  f.A = torch::randn({r, in}, torch::kDouble).mul(0.3).to(dtype);
  f.B = torch::randn({out, r}, torch::kDouble).mul(0.3).to(dtype);
  f.m = torch::rand({out}, torch::kDouble).add(0.5).to(dtype);  // not the row norms: DoRA rescales
  return f;
}

}  // namespace

TEST(AdapterMerge, LoraMatchesFormulaFloat32AndFloat64) {
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    const int64_t out = 7, in = 5, r = 3;
    const double s = 16.0 / r;  // alpha 16
    auto f = factors(out, in, r, dtype);
    const auto ref = ref_lora(to_vec(f.W), to_vec(f.A), to_vec(f.B), out, in, r, s);
    const auto got = cm::merge_lora_weight(f.W, f.A, f.B, s);
    EXPECT_EQ(got.scalar_type(), dtype);
    // float64 compute rounded once: within half an ulp of float32 (or float64 rounding noise).
    EXPECT_LT(max_abs_diff(got, ref), dtype == torch::kFloat ? 4e-6 : 1e-12);
    const auto delta = cm::lora_weight_delta(f.A, f.B, s, torch::kDouble);
    std::vector<double> zeros(out * in, 0.0);
    EXPECT_LT(max_abs_diff(delta, ref_lora(zeros, to_vec(f.A), to_vec(f.B), out, in, r, s)), 1e-12);
    EXPECT_GT(max_abs_diff(got, to_vec(f.W)), 0.1);  // the delta is not negligible
  }
}

TEST(AdapterMerge, DoraMatchesFormula) {
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    const int64_t out = 6, in = 9, r = 2;
    const double s = 0.75;
    auto f = factors(out, in, r, dtype);
    const auto ref = ref_dora(to_vec(f.W), to_vec(f.A), to_vec(f.B), to_vec(f.m), out, in, r, s);
    const auto got = cm::merge_dora_weight(f.W, f.A, f.B, f.m, s);
    EXPECT_EQ(got.scalar_type(), dtype);
    EXPECT_LT(max_abs_diff(got, ref), dtype == torch::kFloat ? 2e-6 : 1e-12);
    // Row norms of the merged weight are the magnitudes (what DoRA means).
    const auto norms = got.to(torch::kDouble).norm(2, {1});
    EXPECT_LT(max_abs_diff(norms, to_vec(f.m)), dtype == torch::kFloat ? 1e-5 : 1e-12);
    // dora_row_norms is ||W + s B A|| per row.
    auto lora = ref_lora(to_vec(f.W), to_vec(f.A), to_vec(f.B), out, in, r, s);
    std::vector<double> ref_norms(out);
    for (int64_t o = 0; o < out; ++o) {
      double sq = 0;
      for (int64_t i = 0; i < in; ++i) sq += lora[o * in + i] * lora[o * in + i];
      ref_norms[o] = std::sqrt(sq);
    }
    EXPECT_LT(max_abs_diff(cm::dora_row_norms(f.W, f.A, f.B, s, torch::kDouble), ref_norms), 1e-6);
  }
}

// A DoRA magnitude equal to the row norms makes DoRA the same as LoRA (PEFT's initialisation).
TEST(AdapterMerge, DoraWithNormMagnitudeIsLora) {
  auto f = factors(8, 4, 2, torch::kDouble);
  const auto norms = cm::dora_row_norms(f.W, f.A, f.B, 2.0, torch::kDouble);
  EXPECT_TRUE(torch::allclose(cm::merge_dora_weight(f.W, f.A, f.B, norms, 2.0),
                              cm::merge_lora_weight(f.W, f.A, f.B, 2.0), 1e-12, 1e-12));
}

// bf16 weights: the merge runs in float32 and rounds once, so the result is the bf16 rounding of
// the exact value (up to one bf16 ulp where float32 rounding lands next to a tie).
TEST(AdapterMerge, Bf16RoundsOnce) {
  const int64_t out = 16, in = 32, r = 4;
  auto f = factors(out, in, r, torch::kBFloat16);
  const auto ref = ref_dora(to_vec(f.W), to_vec(f.A), to_vec(f.B), to_vec(f.m), out, in, r, 2.0);
  const auto got = cm::merge_dora_weight(f.W, f.A, f.B, f.m, 2.0);
  EXPECT_EQ(got.scalar_type(), torch::kBFloat16);
  const auto ref_bf16 = torch::tensor(ref, torch::kDouble).view({out, in}).to(torch::kBFloat16);
  const auto g = got.to(torch::kDouble), rb = ref_bf16.to(torch::kDouble);
  const auto ulp = rb.abs().clamp_min(1e-30).log2().floor().sub(7).exp2();  // bf16: 8 significant bits
  EXPECT_TRUE(((g - rb).abs() <= ulp).all().item<bool>());
  EXPECT_GT((g == rb).to(torch::kDouble).mean().item<double>(), 0.95);
}

TEST(AdapterMerge, CoordOffsetRows) {
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    torch::manual_seed(3);
    const auto E = torch::randn({1300, 8}).to(dtype);
    const auto off = torch::randn({1000, 8}).to(dtype);
    const int64_t first = 250;
    const auto E_before = E.clone();
    const auto got = cm::add_coord_offset_rows(E, off, first);
    EXPECT_EQ(got.scalar_type(), dtype);
    const auto Ed = to_vec(E), od = to_vec(off), gd = to_vec(got);
    double worst = 0;
    for (int64_t v = 0; v < 1300; ++v)
      for (int64_t h = 0; h < 8; ++h) {
        const bool in_range = v >= first && v < first + 1000;
        const double expect = Ed[v * 8 + h] + (in_range ? od[(v - first) * 8 + h] : 0.0);
        if (!in_range) {
          ASSERT_EQ(gd[v * 8 + h], expect) << "row " << v << " outside the coord range changed";
        }
        worst = std::max(worst, std::fabs(gd[v * 8 + h] - expect) / std::max(1.0, std::fabs(expect)));
      }
    EXPECT_LT(worst, dtype == torch::kFloat ? 1e-7 : 8e-3);
    EXPECT_TRUE(torch::equal(E, E_before));  // input untouched (a copy is returned)
  }
}

TEST(AdapterMerge, ShapeMismatchesAreInternalErrors) {
  auto f = factors(4, 3, 2, torch::kFloat);
  EXPECT_THROW(cm::merge_lora_weight(f.W, f.A.t(), f.B, 1.0), coordexp::InternalError);
  EXPECT_THROW(cm::merge_dora_weight(f.W, f.A, f.B, torch::ones({5}), 1.0), coordexp::InternalError);
  EXPECT_THROW(cm::add_coord_offset_rows(torch::zeros({1100, 4}), torch::zeros({1000, 4}), 101),
               coordexp::InternalError);
  EXPECT_THROW(cm::add_coord_offset_rows(torch::zeros({1100, 4}), torch::zeros({1000, 3}), 0), coordexp::InternalError);
}
