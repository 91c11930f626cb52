// CoordExp decode and coord-slot context embeddings (see include/coordexp/coord/decode.h). The
// straight-through forms are hard + (soft - soft.detach()): soft - soft is exactly +0 for finite soft,
// so the forward is the hard value bit for bit while the backward is the soft gradient.
#include "coordexp/coord/decode.h"

#include "coordexp/util/error.h"

namespace coordexp::coord {

DecodeMode parse_decode_mode(const std::string& name, const std::string& key) {
  if (name == "exp") return DecodeMode::kExp;
  if (name == "st") return DecodeMode::kSt;
  throw ConfigError("decode mode '" + name + "' is unknown", "key " + key, "use exp or st");
}

CtxEmbedMode parse_ctx_embed_mode(const std::string& name, const std::string& key) {
  if (name == "soft") return CtxEmbedMode::kSoft;
  if (name == "st") return CtxEmbedMode::kSt;
  if (name == "hard") return CtxEmbedMode::kHard;
  throw ConfigError("coord context embedding mode '" + name + "' is unknown", "key " + key, "use soft, st or hard");
}

torch::Tensor gather_coord_logits(const torch::Tensor& logits_xV, CoordIdRange ids) {
  COORDEXP_CHECK(ids.first_id >= 0, "coord id range is unset (first_id = " << ids.first_id << ")");
  COORDEXP_CHECK(logits_xV.dim() >= 1, "logits must have a vocab dimension");
  const int64_t vocab = logits_xV.size(-1);
  if (vocab < ids.first_id + CoordIdRange::kNumBins)
    throw FormatError("logits have vocab size " + std::to_string(vocab) + " but <|coord_999|> is id " +
                          std::to_string(ids.first_id + CoordIdRange::kNumBins - 1),
                      "tensor logits [..., " + std::to_string(vocab) + "]",
                      "the LM head must cover the tokenizer's coord tokens (resize embeddings after adding them)");
  return logits_xV.narrow(-1, ids.first_id, CoordIdRange::kNumBins);
}

namespace {
torch::Tensor at_least_float(const torch::Tensor& t) {
  return t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16 ? t.to(torch::kFloat) : t;
}
void check_bins(const torch::Tensor& t, const char* what) {
  COORDEXP_CHECK(t.dim() >= 1 && t.size(-1) == CoordIdRange::kNumBins,
                 "" << what << " must have 1000 coord bins in its last dim, got " << t.sizes());
}
}  // namespace

torch::Tensor coord_probs(const torch::Tensor& s_xK, double tau) {
  check_bins(s_xK, "coord logits");
  COORDEXP_CHECK(tau > 0.0, "temperature must be positive, got " << tau);
  return torch::softmax(at_least_float(s_xK) / tau, -1);
}

torch::Tensor coord_bin_values(const torch::TensorOptions& options) {
  // Computed in float64 then cast: 999/999 is exactly 1 and k/999 is correctly rounded in any dtype.
  return torch::arange(CoordIdRange::kNumBins, torch::kDouble).div(CoordIdRange::kNumBins - 1).to(options);
}

torch::Tensor decode_exp(const torch::Tensor& p_xK) {
  check_bins(p_xK, "coord probabilities");
  return torch::matmul(p_xK, coord_bin_values(p_xK.options()));
}

torch::Tensor decode_hard(const torch::Tensor& p_xK) {
  check_bins(p_xK, "coord probabilities");
  const torch::Tensor k_star = p_xK.detach().argmax(-1);
  return coord_bin_values(p_xK.options()).index({k_star});
}

torch::Tensor decode_st(const torch::Tensor& p_xK) {
  const torch::Tensor soft = decode_exp(p_xK);
  return decode_hard(p_xK) + (soft - soft.detach());
}

torch::Tensor decode_coords(const torch::Tensor& p_xK, DecodeMode mode) {
  return mode == DecodeMode::kSt ? decode_st(p_xK) : decode_exp(p_xK);
}

torch::Tensor coord_context_embeddings(const torch::Tensor& p_NK, const torch::Tensor& E_KD, CtxEmbedMode mode,
                                       bool em_detach) {
  check_bins(p_NK, "coord probabilities");
  COORDEXP_CHECK(p_NK.dim() == 2, "coord probabilities must be [N, 1000], got " << p_NK.sizes());
  COORDEXP_CHECK(E_KD.dim() == 2 && E_KD.size(0) == CoordIdRange::kNumBins,
                 "coord embedding rows must be [1000, D], got " << E_KD.sizes());
  const torch::Tensor p = em_detach ? p_NK.detach() : p_NK;
  const torch::Tensor table = E_KD.to(p.scalar_type());
  if (mode == CtxEmbedMode::kHard) return table.index_select(0, p.detach().argmax(-1));
  const torch::Tensor soft = torch::matmul(p, table);
  if (mode == CtxEmbedMode::kSoft) return soft;
  // The hard row enters as a constant so the backward is exactly the soft gradient (seed 2.6.1).
  const torch::Tensor hard = table.detach().index_select(0, p.detach().argmax(-1));
  return hard + (soft - soft.detach());
}

}  // namespace coordexp::coord
