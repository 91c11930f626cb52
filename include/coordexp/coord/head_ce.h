// The LM head and the token cross-entropy in one pass over row chunks (do less work: never hold the
// [K, V] logits of all K answer rows). For Qwen3's 151,936+ vocabulary rows, [K, V] float32 logits are
// 0.6 MB per row: 1.2 GB for a 2,000-token answer batch, and as much again for their gradient. Here
// at most `chunk_rows` rows of logits exist at a time, in the forward and in the backward.
//
// The forward also computes the CE gradient of every chunk for the loss weights the caller declares
// (`grad_scale`: d loss / d term sum, e.g. the trainer's term weight / global count), so the backward
// does not go over the vocabulary again. If the backward's incoming gradients are not a common
// multiple of the declared ones (another use of the outputs), it recomputes the chunks with the
// actual gradients instead: the result is the exact gradient either way. The coord-subspace terms
// read the 1000 coord columns, returned as their own (differentiable) output.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>

namespace coordexp::coord {

// Row -> CE term of the chunked head: 0 = struct (+ eos), 1 = desc, 2 = coord-token CE; -1 = none.
inline constexpr int kNumHeadCeTerms = 3;

struct HeadCeResult {
  torch::Tensor term_sums;     // [3]: sum over the term's rows of row_weight * CE (float32, float64 input: float64)
  torch::Tensor coord_logits;  // [K, 1000]: logits[:, coord_first_id .. +1000) of every row
};

// hidden_KH: final-normed hidden states of the K rows; weight_VH: the LM head weight ([V, H], no
// bias); targets_K, term_K: int64; row_weight_K: the per-token weight of the row's term (ignored for
// term -1). Differentiable in hidden_KH and weight_VH. chunk_rows >= 1.
HeadCeResult chunked_head_ce(const torch::Tensor& hidden_KH, const torch::Tensor& weight_VH, const torch::Tensor& targets_K,
                             const torch::Tensor& term_K, const torch::Tensor& row_weight_K, int64_t coord_first_id,
                             const std::array<double, kNumHeadCeTerms>& grad_scale, int64_t chunk_rows);

// Backward passes that had to go over the vocabulary again (this process; for tests and benches).
int64_t chunked_head_backward_passes();

}  // namespace coordexp::coord
