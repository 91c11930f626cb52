// CoordExp decoding (seed 2.2-2.6): coord-subspace logits as a contiguous slice of full-vocab logits,
// the temperature softmax, expectation / hard / straight-through decode to [0,1], and the soft / ST /
// hard context embeddings built from the coord rows of an embedding table. Pure functions on tensors;
// no model, no tokenizer (the coord id range travels as CoordIdRange), no full-vocab softmax.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace coordexp::coord {

// <|coord_k|> has token id first_id + k, k = 0..999 (contiguous, as the tokenizer guarantees).
struct CoordIdRange {
  static constexpr int64_t kNumBins = 1000;
  int64_t first_id = -1;
};

enum class DecodeMode { kExp, kSt };
enum class CtxEmbedMode { kSoft, kSt, kHard };

// "exp" | "st"; throws ConfigError naming `key` otherwise.
DecodeMode parse_decode_mode(const std::string& name, const std::string& key = "coord.decode_mode");
// "soft" | "st" | "hard"; throws ConfigError naming `key` otherwise.
CtxEmbedMode parse_ctx_embed_mode(const std::string& name, const std::string& key);

// s[..., k] = logits[..., first_id + k] as a view (no copy). logits_xV: [..., V] with V >= first_id + 1000;
// throws FormatError naming the tensor when the vocab is too small.
torch::Tensor gather_coord_logits(const torch::Tensor& logits_xV, CoordIdRange ids);

// p = softmax(s / tau) over the last dim (1000 bins). Half/bfloat16 inputs are computed in float32.
torch::Tensor coord_probs(const torch::Tensor& s_xK, double tau);

// phi_k = k / 999 for k = 0..999 (phi_0 = 0, phi_999 = 1 exactly), shape [1000].
torch::Tensor coord_bin_values(const torch::TensorOptions& options);

// Expectation decode: c = sum_k p_k phi_k, shape [...] (last dim reduced).
torch::Tensor decode_exp(const torch::Tensor& p_xK);
// Hard decode: phi_{argmax_k p_k} (first maximum on ties); no gradient.
torch::Tensor decode_hard(const torch::Tensor& p_xK);
// Straight-through decode: forward equals decode_hard bit-exactly, backward is decode_exp's gradient.
torch::Tensor decode_st(const torch::Tensor& p_xK);
torch::Tensor decode_coords(const torch::Tensor& p_xK, DecodeMode mode);

// Coord-slot context embeddings from p_NK and the coord rows E_KD of the (possibly tied) input
// embedding table: soft = p E; hard = E[argmax p]; st = forward hard, backward exactly the gradient of
// soft with respect to both p and E (the hard row enters as a constant). em_detach stops the gradient
// into p (EM fallback); E still receives gradients through the soft (or hard) path. Output [N, D].
torch::Tensor coord_context_embeddings(const torch::Tensor& p_NK, const torch::Tensor& E_KD, CtxEmbedMode mode,
                                       bool em_detach);

}  // namespace coordexp::coord
