// The Unified Loss Registry's loss components (seed 5.5.2): per-item building blocks (token CE, DFL, W1,
// entropy) and the two registry entry points that turn aligned logits + masks/objects into (sum, count)
// terms: token_ce_terms (L_struct_ce, L_desc_ce, L_coord_token_ce) and coord_terms (L_coord_dist,
// L_geo with the rollout subset split). Counting functions give the same counts without logits, so a
// trainer can all-reduce them before the forward. Normalization lives in loss_terms.h.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "coordexp/config/sections/coord.h"
#include "coordexp/config/sections/loss.h"
#include "coordexp/coord/decode.h"
#include "coordexp/coord/loss_terms.h"
#include "coordexp/coord/masks.h"

namespace coordexp::coord {

// "Aligned logits": row t scores response token t. For a causal LM whose input holds the response at
// [response_begin, response_begin + response_len), that is output row response_begin - 1 + t. View
// [response_len, V]; throws InternalError when out of range or response_begin < 1.
torch::Tensor response_logits(const torch::Tensor& logits_LV, int64_t response_begin, int64_t response_len);

// -log softmax(logits_NV)[n, targets_N[n]] over the full vocab, [N].
torch::Tensor token_ce_per_token(const torch::Tensor& logits_NV, const torch::Tensor& targets_N);
// DFL soft-label CE: u = 999 c (snapped to the nearest integer within 1e-4 so an exact bin is a one-hot
// target), g0 = floor(u), g1 = min(g0 + 1, 999), a = u - g0;
// -(1 - a) log p[g0] - a log p[g1] with log p = log_softmax(s / tau). c_gt_N is clamped to [0,1]. [N]
torch::Tensor dfl_per_slot(const torch::Tensor& s_NK, const torch::Tensor& c_gt_N, double tau);
// W1 / expected absolute error: sum_k p_k |k/999 - c|. [N]
torch::Tensor w1_per_slot(const torch::Tensor& p_NK, const torch::Tensor& c_gt_N);
// Entropy -sum_k p_k log p_k of softmax(s / tau), computed from log_softmax (finite for any finite s). [N]
torch::Tensor entropy_per_slot(const torch::Tensor& s_NK, double tau);

// L_struct_ce (struct + eos weights), L_desc_ce and L_coord_token_ce (active when coord_ce.weight > 0)
// from aligned logits [T, V], target ids [T] (int64) and weights [T]. CE is evaluated only on rows with
// a non-zero weight; counts are the tokens with weight > 0 (0 for an inactive term).
LossTerms token_ce_terms(const torch::Tensor& logits_TV, const torch::Tensor& targets_T, const TokenWeights& weights,
                         const config::LossOptions& loss);
TermCounts token_ce_counts(const TokenWeights& weights, const config::LossOptions& loss);

// L_coord_dist (coord slots) and L_geo (objects) from aligned logits [T, V] at the objects' coord
// positions, decoded with coord.decode_tau / decode_mode and canonicalized with coord.box_eps on both
// pred and GT boxes. gt/self_context: every bbox object, one bucket. rollout: matched -> kGeo*, fn ->
// kGeo*Fn, fp/invalid excluded. Polygons are excluded and counted in num_poly_excluded. Geo terms are
// active when geo.weight > 0, coord_dist terms per their weights. Geo sums: SmoothL1 summed over the 4
// coords per object, (1 - CIoU|GIoU) per object; coord_dist sums over slots.
LossTerms coord_terms(const torch::Tensor& logits_TV, const std::vector<ObjectSpan>& objects, Context context,
                      CoordIdRange ids, const config::CoordOptions& coord, const config::LossOptions& loss);
TermCounts coord_term_counts(const std::vector<ObjectSpan>& objects, Context context,
                             const config::LossOptions& loss);

}  // namespace coordexp::coord
