// Next-token choice math (see sampling.h): argmax, top-k / top-p keep masks, the sampling
// distribution and the inverse-CDF draw, plus the SplitMix64 row generator.
#include "coordexp/rollout/sampling.h"

#include <limits>

#include "coordexp/util/error.h"

namespace coordexp::rollout {

namespace {

// Indices of logits_V in descending order; equal values keep ascending index order.
torch::Tensor descending_order(const torch::Tensor& values_V) {
  return std::get<1>(torch::sort(values_V, /*stable=*/true, /*dim=*/0, /*descending=*/true));
}

torch::Tensor as_cpu_double(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kDouble).contiguous(); }

}  // namespace

int64_t argmax_token(const torch::Tensor& logits_V) {
  COORDEXP_CHECK(logits_V.dim() == 1 && logits_V.numel() > 0, "logits must be [V]");
  return logits_V.argmax().item<int64_t>();
}

torch::Tensor top_p_keep_mask(const torch::Tensor& probs_V, double top_p) {
  COORDEXP_CHECK(probs_V.dim() == 1 && probs_V.numel() > 0, "probs must be [V]");
  COORDEXP_CHECK(top_p > 0.0 && top_p <= 1.0, "top_p " << top_p);
  const auto probs = as_cpu_double(probs_V);
  const auto order = descending_order(probs);
  const auto sorted = probs.index({order});
  // Exclusive prefix sums (not cumsum - sorted, which rounds differently from the inclusive sums).
  const auto mass_before = torch::cat({torch::zeros({1}, torch::kDouble), sorted.cumsum(0).slice(0, 0, -1)});
  const auto keep_sorted = mass_before.lt(top_p);
  auto keep = torch::zeros({probs.numel()}, torch::kBool);
  keep.index_put_({order}, keep_sorted);
  return keep;
}

torch::Tensor top_k_keep_mask(const torch::Tensor& logits_V, int64_t top_k) {
  COORDEXP_CHECK(logits_V.dim() == 1 && logits_V.numel() > 0, "logits must be [V]");
  COORDEXP_CHECK(top_k >= 0, "top_k " << top_k);
  const int64_t V = logits_V.numel();
  if (top_k == 0 || top_k >= V) return torch::ones({V}, torch::kBool);
  const auto order = descending_order(as_cpu_double(logits_V));
  auto keep = torch::zeros({V}, torch::kBool);
  keep.index_put_({order.slice(0, 0, top_k)}, true);
  return keep;
}

torch::Tensor sampling_distribution(const torch::Tensor& logits_V, const SamplingParams& params) {
  COORDEXP_CHECK(params.temperature > 0.0, "temperature " << params.temperature);
  auto scaled = as_cpu_double(logits_V) / params.temperature;
  if (params.top_k > 0)
    scaled = scaled.masked_fill(top_k_keep_mask(scaled, params.top_k).logical_not(),
                                -std::numeric_limits<double>::infinity());
  auto probs = torch::softmax(scaled, 0);
  if (params.top_p < 1.0) {
    probs = probs.masked_fill(top_p_keep_mask(probs, params.top_p).logical_not(), 0.0);
    probs = probs / probs.sum();
  }
  return probs;
}

int64_t draw_from(const torch::Tensor& probs_V, double u) {
  COORDEXP_CHECK(probs_V.dim() == 1 && probs_V.scalar_type() == torch::kDouble && probs_V.is_contiguous() &&
                     probs_V.device().is_cpu(),
                 "probs must be contiguous CPU float64 [V]");
  COORDEXP_CHECK(u >= 0.0 && u < 1.0, "u " << u);
  const double* p = probs_V.data_ptr<double>();
  const int64_t V = probs_V.numel();
  double total = 0.0;
  for (int64_t i = 0; i < V; ++i) total += p[i];
  COORDEXP_CHECK(total > 0.0, "sampling distribution has no mass");
  const double target = u * total;
  double cumulative = 0.0;
  int64_t last_positive = -1;
  for (int64_t i = 0; i < V; ++i) {
    if (p[i] <= 0.0) continue;
    cumulative += p[i];
    last_positive = i;
    if (cumulative > target) return i;
  }
  return last_positive;  // rounding left target == total: the last token with mass
}

uint64_t RowRng::next_u64() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double RowRng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

uint64_t row_seed(uint64_t seed, uint64_t row) {
  RowRng mix(seed);
  const uint64_t a = mix.next_u64();
  RowRng mix_row(a ^ (row * 0xd1342543de82ef95ULL + 0x632be59bd9b4e019ULL));
  return mix_row.next_u64();
}

}  // namespace coordexp::rollout
