// Next-token choice from one row of logits: greedy argmax, or a draw from softmax(logits / T)
// restricted to the top-k tokens and then to the top-p nucleus (HF's order: temperature, top-k,
// top-p), with a small per-row random generator whose stream is fixed by its seed on every
// platform. Pure functions in float64 on the input's device (the draw on the host); no model, no
// batching (generator.h does that).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace coordexp::rollout {

struct SamplingParams {
  double temperature = 1.0;  // > 0; logits are divided by it
  int64_t top_k = 0;         // keep the k largest logits (0 = all)
  double top_p = 1.0;        // in (0, 1]; keep the nucleus of mass >= top_p (1 = all)
};

// Greedy choice: index of the largest logit (the lowest index among equal maxima). logits_V [V].
int64_t argmax_token(const torch::Tensor& logits_V);

// bool [V] (on probs_V's device): the smallest set of most likely tokens whose probability mass is
// >= top_p. Tokens are taken in descending probability (equal probabilities: lower index first); a
// token is kept while the mass before it, summed in float64 one token at a time in that order, is
// < top_p, so the most likely token is always kept. probs_V float [V], sums to 1. Sorts only the
// head of the order that can matter (topk of 64 candidates, growing), not the whole vocabulary.
torch::Tensor top_p_keep_mask(const torch::Tensor& probs_V, double top_p);

// bool [V] (on logits_V's device): the k largest logits (ties at the k-th value: lower index first);
// all when k == 0 or k >= V. One topk (partial selection), no sort. NaN logits are not supported.
torch::Tensor top_k_keep_mask(const torch::Tensor& logits_V, int64_t top_k);

// The distribution a sampled token is drawn from: float64 [V], zero outside the kept tokens,
// renormalised to sum to 1. logits_V any float dtype, any device (computed and returned there).
torch::Tensor sampling_distribution(const torch::Tensor& logits_V, const SamplingParams& params);

// Inverse-CDF draw: the first index whose cumulative probability exceeds u * total (u in [0, 1)),
// skipping zero-probability tokens. probs_V float64 CPU [V].
int64_t draw_from(const torch::Tensor& probs_V, double u);

// A row's random stream: SplitMix64 (fixed arithmetic, so the same draws on every platform and
// library version, unlike std:: distributions or LibTorch generators).
class RowRng {
 public:
  explicit RowRng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64();
  double uniform();  // [0, 1) with 53 random bits
 private:
  uint64_t state_;
};

// The seed of row `row` of a request with base seed `seed` (SplitMix64 mix of both): rows draw
// independent streams and a row's stream does not depend on which other rows share its batch.
uint64_t row_seed(uint64_t seed, uint64_t row);

}  // namespace coordexp::rollout
