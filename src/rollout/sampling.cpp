// Next-token choice math (see sampling.h): argmax, top-k / top-p keep masks by partial selection
// (topk, then a sort of the few candidates that can matter, never of the whole vocabulary unless
// the nucleus needs a sixteenth of it), the sampling distribution and the inverse-CDF draw, plus the
// SplitMix64 row generator.
#include "coordexp/rollout/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "coordexp/util/error.h"

namespace coordexp::rollout {

namespace {

torch::Tensor as_double(const torch::Tensor& t) { return t.detach().to(torch::kDouble).contiguous(); }

// top_p: candidates start at the kFirstCandidates most likely tokens and grow at least 4x per round;
// once they would reach 1/kFullSortFraction of the vocabulary, one full sort is cheaper than a large
// topk plus a sort of its result (measured at V = 152,670: a flat 36k-token nucleus took 26 ms that
// way at V / 4 against 17 ms for the full sort; docs/performance.md).
constexpr int64_t kFirstCandidates = 64;
constexpr int64_t kFullSortFraction = 16;  // full sort once the candidates reach V / 16

}  // namespace

int64_t argmax_token(const torch::Tensor& logits_V) {
  COORDEXP_CHECK(logits_V.dim() == 1 && logits_V.numel() > 0, "logits must be [V]");
  return logits_V.argmax().item<int64_t>();
}

torch::Tensor top_p_keep_mask(const torch::Tensor& probs_V, double top_p) {
  COORDEXP_CHECK(probs_V.dim() == 1 && probs_V.numel() > 0, "probs must be [V]");
  COORDEXP_CHECK(top_p > 0.0 && top_p <= 1.0, "top_p " << top_p);
  const auto probs = as_double(probs_V);
  const int64_t V = probs.numel();
  for (int64_t m = std::min(kFirstCandidates, V);;) {
    const bool all = m * kFullSortFraction >= V;
    // Candidates: every token at least as likely as the m-th most likely one (ties included), in
    // ascending index order. Every other token is strictly less likely, so the candidates are the
    // head of the full descending order, and a stable sort of them alone gives that head exactly.
    // When the m-th is a zero, the candidates are the nonzero tokens: the zeros follow them in that
    // order and add no mass, so they are kept exactly when all nonzero tokens are.
    double floor = 0.0;
    torch::Tensor sorted_p, sorted_ids;  // candidates' probabilities in descending order, their token ids
    if (all) {  // the whole vocabulary: one stable sort, nothing gathered
      auto sorted = torch::sort(probs, /*stable=*/true, /*dim=*/0, /*descending=*/true);
      sorted_p = std::get<0>(sorted);
      sorted_ids = std::get<1>(sorted);
    } else {
      floor = std::get<0>(probs.topk(m, 0, /*largest=*/true, /*sorted=*/false)).min().item<double>();
      const auto cand = (floor > 0.0 ? probs.ge(floor) : probs.gt(0.0)).nonzero().view({-1});
      const auto cand_p = probs.index_select(0, cand);
      auto sorted = torch::sort(cand_p, /*stable=*/true, /*dim=*/0, /*descending=*/true);
      sorted_p = std::get<0>(sorted);
      sorted_ids = cand.index_select(0, std::get<1>(sorted));
    }
    sorted_p = sorted_p.to(torch::kCPU).contiguous();
    // Exclusive prefix sums, added one by one in descending order (what a cumsum over the fully
    // sorted vector gives, bit for bit): a token is kept while the mass before it is < top_p.
    const double* p = sorted_p.data_ptr<double>();
    const int64_t C = sorted_p.numel();
    double mass = 0.0;
    int64_t kept = 0;
    while (kept < C && mass < top_p) mass += p[kept++];
    // Decided when a candidate already had mass >= top_p before it, or when all candidates together
    // reach top_p (then the next, non-candidate token has that mass before it); else look further.
    if (mass >= top_p || all) {
      auto keep = torch::zeros({V}, torch::TensorOptions(torch::kBool).device(probs.device()));
      keep.index_fill_(0, sorted_ids.slice(0, 0, kept), true);
      return keep;
    }
    if (floor == 0.0) return torch::ones({V}, torch::TensorOptions(torch::kBool).device(probs.device()));
    // The m candidates hold `mass` < top_p and every other token has probability <= floor: at least
    // (top_p - mass) / floor more tokens are needed, so grow by that much, and at least 4x.
    const double need = std::ceil((top_p - mass) / floor);
    m = static_cast<int64_t>(std::min<double>(static_cast<double>(V), std::max<double>(4.0 * m, C + need)));
  }
}

torch::Tensor top_k_keep_mask(const torch::Tensor& logits_V, int64_t top_k) {
  COORDEXP_CHECK(logits_V.dim() == 1 && logits_V.numel() > 0, "logits must be [V]");
  COORDEXP_CHECK(top_k >= 0, "top_k " << top_k);
  const int64_t V = logits_V.numel();
  const auto bool_opts = torch::TensorOptions(torch::kBool).device(logits_V.device());
  if (top_k == 0 || top_k >= V) return torch::ones({V}, bool_opts);
  const auto x = as_double(logits_V);
  // The k-th largest value (a 0-dim tensor; topk's own tie order is unspecified and not used):
  // everything above it is kept, and of the tokens equal to it the lowest indices fill the rest.
  const auto kth = std::get<0>(x.topk(top_k, 0, /*largest=*/true, /*sorted=*/false)).min();
  const auto above = x.gt(kth), at = x.eq(kth);
  const auto room = above.sum().neg().add(top_k);  // k - #above, on the device
  return above.logical_or(at.logical_and(at.cumsum(0).le(room)));
}

torch::Tensor sampling_distribution(const torch::Tensor& logits_V, const SamplingParams& params) {
  COORDEXP_CHECK(params.temperature > 0.0, "temperature " << params.temperature);
  auto scaled = as_double(logits_V) / params.temperature;
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
