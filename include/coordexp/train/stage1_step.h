// The Stage-1 loss of one micro-batch (context gt, seed 5.3): token weights and supervised-item counts
// are prepared before any forward (so counts can be summed over the micro-batches of an optimizer step
// and over ranks first), then one forward computes logits only at the answer positions and the Unified
// Loss Registry terms (L_struct_ce, L_desc_ce, L_coord_token_ce, optional L_coord_dist / L_geo).
// Normalization and backward are the trainer's job (coord/loss_terms.h total_loss).
#pragma once

#include <torch/torch.h>

#include "coordexp/config/sections/coord.h"
#include "coordexp/config/sections/loss.h"
#include "coordexp/coord/decode.h"
#include "coordexp/coord/head_ce.h"
#include "coordexp/coord/loss_terms.h"
#include "coordexp/coord/masks.h"
#include "coordexp/data/collate.h"
#include "coordexp/model/qwen3vl.h"

namespace coordexp::train {

struct PreparedBatch {
  data::Batch batch;
  coord::TokenWeights weights;  // context gt, over all answers of the batch concatenated
  coord::TermCounts counts{};   // supervised items per term in this micro-batch
  // d(step loss) / d(sum of L_struct_ce, L_desc_ce, L_coord_token_ce) = term weight / global count,
  // set by the trainer once the counts are reduced: the chunked head then keeps the CE gradient
  // from its forward (coord/head_ce.h). Zeros (unknown) are right too, with a second pass.
  std::array<double, coord::kNumHeadCeTerms> ce_grad_scale{};
};

// Builds the gt-context token weights of the batch's response view and counts the supervised items
// (token CE per type, coord slots / objects of L_coord_dist and L_geo).
PreparedBatch prepare_batch(data::Batch batch, const config::LossOptions& loss);

// Forward 0 of a micro-batch, shared by Stage-1 and Channel-A: the teacher-forced GT forward with
// logits only at the rows that predict answer tokens ([N, V], aligned with response_targets) and
// the token CE terms (context gt) from them. `vision` holds the batch's encoded images. With
// `capture_prefix` (length set) the forward also leaves its per-layer prefix keys/values there
// (Channel-A's prefix reuse).
struct GtForward {
  torch::Tensor logits_NV;      // loss.head_chunk_rows 0 only (else undefined: never materialized)
  torch::Tensor coord_logits;   // [N, 1000]: the coord columns of every answer row (coord ids from 0)
  coord::LossTerms ce_terms;
};
GtForward gt_forward(model::Qwen3VL& model, const PreparedBatch& prepared, const model::VisionFeatures& vision,
                     coord::CoordIdRange ids, const config::LossOptions& loss,
                     model::PrefixKv* capture_prefix = nullptr);

// bool [B, T] with the given rows of the flattened [B * T] sequence set (each at most once).
torch::Tensor flat_row_mask(const torch::Tensor& flat_rows, int64_t B, int64_t T);

// Forward of one prepared micro-batch on `model` (images encoded, logits only at the rows that predict
// answer tokens) and the registry terms as (sum, local count). An empty batch (every sample skipped)
// gives terms that are all inactive.
coord::LossTerms stage1_loss_terms(model::Qwen3VL& model, const PreparedBatch& prepared, coord::CoordIdRange ids,
                                   const config::CoordOptions& coord, const config::LossOptions& loss);

// sum_i weight_i x sums_i / counts_i over active terms (0 for a term with no items): the total loss
// value from already reduced sums and counts, for logs.
double total_loss_value(const coord::TermSums& sums, const coord::TermCounts& counts, const coord::TermActive& active,
                        const config::LossOptions& loss);
// The same with explicit term multipliers (coord::total_loss's second form).
double total_loss_value(const coord::TermSums& sums, const coord::TermCounts& counts, const coord::TermActive& active,
                        const std::array<double, coord::kNumTerms>& weights);

}  // namespace coordexp::train
