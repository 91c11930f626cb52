// Stage-1 micro-batch loss: gt-context weights and counts before the forward, then vision encoding,
// a decoder forward with a logits mask at the answer-predicting rows, and the registry terms.
#include "coordexp/train/stage1_step.h"

#include "coordexp/coord/losses.h"
#include "coordexp/util/error.h"

namespace coordexp::train {

PreparedBatch prepare_batch(data::Batch batch, const config::LossOptions& loss) {
  PreparedBatch p;
  p.batch = std::move(batch);
  const coord::ResponseLayout& layout = p.batch.response_layout;
  p.weights = coord::build_token_weights(layout, coord::Context::kGt, loss);
  const coord::TermCounts ce = coord::token_ce_counts(p.weights, loss);
  const coord::TermCounts geo = coord::coord_term_counts(layout.objects, coord::Context::kGt, loss);
  for (int i = 0; i < coord::kNumTerms; ++i) p.counts[i] = ce[i] + geo[i];
  return p;
}

torch::Tensor flat_row_mask(const torch::Tensor& flat_rows, int64_t B, int64_t T) {
  torch::Tensor mask = torch::zeros({B * T}, torch::kBool);
  mask.index_fill_(0, flat_rows, true);
  COORDEXP_CHECK(mask.sum().item<int64_t>() == flat_rows.numel(), "duplicate logit rows");
  return mask.view({B, T});
}

GtForward gt_forward(model::Qwen3VL& model, const PreparedBatch& prepared, const model::VisionFeatures& vision,
                     const config::LossOptions& loss) {
  const data::Batch& b = prepared.batch;
  const torch::Device device = model.runtime().device;
  // The rows b * T + t that predict answer tokens are increasing in the response view's order, so
  // the masked logits (row-major) come out aligned with the answers.
  model::ForwardInputs in;
  in.input_ids = b.input_ids;
  in.attention_mask = b.attention_mask;
  in.vision = &vision;
  in.logits = model::LogitsRequest::at(flat_row_mask(b.response_logit_rows, b.input_ids.size(0), b.input_ids.size(1)));
  GtForward out;
  out.logits_NV = model.forward(in).logits;
  COORDEXP_CHECK(out.logits_NV.size(0) == b.response_targets.numel(),
                 "masked logits rows " << out.logits_NV.size(0) << " != answer tokens " << b.response_targets.numel());
  coord::TokenWeights w = prepared.weights;
  for (torch::Tensor* t : {&w.struct_w, &w.desc_w, &w.coord_w, &w.eos_w}) *t = t->to(device);
  out.ce_terms = coord::token_ce_terms(out.logits_NV, b.response_targets.to(device), w, loss);
  return out;
}

coord::LossTerms stage1_loss_terms(model::Qwen3VL& model, const PreparedBatch& prepared, coord::CoordIdRange ids,
                                   const config::CoordOptions& coord, const config::LossOptions& loss) {
  const data::Batch& b = prepared.batch;
  if (b.size() == 0 || b.response_targets.numel() == 0) return {};
  const torch::Device device = model.runtime().device;
  const model::VisionFeatures vision = model.encode_images(b.pixel_values.to(device), b.image_grid_thw.to(device));
  GtForward f = gt_forward(model, prepared, vision, loss);
  f.ce_terms += coord::coord_terms(f.logits_NV, b.response_layout.objects, coord::Context::kGt, ids, coord, loss);
  return f.ce_terms;
}

double total_loss_value(const coord::TermSums& sums, const coord::TermCounts& counts, const coord::TermActive& active,
                        const config::LossOptions& loss) {
  return total_loss_value(sums, counts, active, coord::term_weights(loss));
}

double total_loss_value(const coord::TermSums& sums, const coord::TermCounts& counts, const coord::TermActive& active,
                        const std::array<double, coord::kNumTerms>& weights) {
  double total = 0.0;
  for (int i = 0; i < coord::kNumTerms; ++i) {
    if (!active[i] || weights[i] == 0.0 || counts[i] == 0) continue;
    total += weights[i] * sums[i] / static_cast<double>(counts[i]);
  }
  return total;
}

}  // namespace coordexp::train
