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
                     coord::CoordIdRange ids, const config::LossOptions& loss, model::PrefixKv* capture_prefix) {
  const data::Batch& b = prepared.batch;
  const torch::Device device = model.runtime().device;
  model::ForwardInputs in;
  in.input_ids = b.input_ids;
  in.attention_mask = b.attention_mask;
  in.vision = &vision;
  in.capture_prefix = capture_prefix;
  GtForward out;
  if (loss.head_chunk_rows == 0) {
    // The rows b * T + t that predict answer tokens are increasing in the response view's order, so
    // the masked logits (row-major) come out aligned with the answers.
    in.logits = model::LogitsRequest::at(flat_row_mask(b.response_logit_rows, b.input_ids.size(0), b.input_ids.size(1)));
    out.logits_NV = model.forward(in).logits;
    COORDEXP_CHECK(out.logits_NV.size(0) == b.response_targets.numel(),
                   "masked logits rows " << out.logits_NV.size(0) << " != answer tokens " << b.response_targets.numel());
    coord::TokenWeights w = prepared.weights;
    for (torch::Tensor* t : {&w.struct_w, &w.desc_w, &w.coord_w, &w.eos_w}) *t = t->to(device);
    out.ce_terms = coord::token_ce_terms(out.logits_NV, b.response_targets.to(device), w, loss);
    out.coord_logits = coord::gather_coord_logits(out.logits_NV, ids);
    return out;
  }
  // Chunked head: the final-normed hidden states of the answer rows, then head + CE chunk by chunk.
  in.logits = model::LogitsRequest::none();
  in.return_hidden_states = true;
  const torch::Tensor hidden_BTH = model.forward(in).hidden_states;
  const torch::Tensor hidden =
      hidden_BTH.reshape({-1, hidden_BTH.size(2)}).index_select(0, b.response_logit_rows.to(device));
  // Each row's CE term (the token types are exclusive) and its token weight.
  const coord::TokenWeights& w = prepared.weights;
  const torch::Tensor st = w.struct_w + w.eos_w;
  const bool coord_ce = loss.coord_ce.weight > 0.0;
  torch::Tensor term = torch::full({st.size(0)}, -1, torch::kLong);
  torch::Tensor row_w = torch::zeros({st.size(0)}, st.options());
  term.masked_fill_(st > 0, 0);
  row_w = torch::where(st > 0, st, row_w);
  term.masked_fill_(w.desc_w > 0, 1);
  row_w = torch::where(w.desc_w > 0, w.desc_w, row_w);
  if (coord_ce) {
    term.masked_fill_(w.coord_w > 0, 2);
    row_w = torch::where(w.coord_w > 0, w.coord_w, row_w);
  }
  const coord::HeadCeResult r =
      coord::chunked_head_ce(hidden, model.lm_head_weight(), b.response_targets.to(device), term.to(device),
                             row_w.to(device), ids.first_id, prepared.ce_grad_scale, loss.head_chunk_rows);
  auto rows = [&](int t) { return term.eq(t).sum().item<int64_t>(); };
  out.ce_terms[coord::Term::kStructCe] = coord::LossTerm{r.term_sums[0], rows(0)};
  out.ce_terms[coord::Term::kDescCe] = coord::LossTerm{r.term_sums[1], rows(1)};
  if (coord_ce) out.ce_terms[coord::Term::kCoordTokenCe] = coord::LossTerm{r.term_sums[2], rows(2)};
  out.coord_logits = r.coord_logits;
  return out;
}

coord::LossTerms stage1_loss_terms(model::Qwen3VL& model, const PreparedBatch& prepared, coord::CoordIdRange ids,
                                   const config::CoordOptions& coord, const config::LossOptions& loss) {
  const data::Batch& b = prepared.batch;
  if (b.size() == 0 || b.response_targets.numel() == 0) return {};
  const torch::Device device = model.runtime().device;
  const model::VisionFeatures vision = model.encode_images(b.pixel_values.to(device), b.image_grid_thw.to(device));
  GtForward f = gt_forward(model, prepared, vision, ids, loss);
  f.ce_terms += coord::coord_terms(f.coord_logits, b.response_layout.objects, coord::Context::kGt, coord::CoordIdRange{0},
                                   coord, loss);
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
