// Channel-A micro-batch loss (channel_a_step.h): forward 0 with logits at the answer rows (CE, and
// the first coord belief), then the self-context forwards with coord-slot embedding overrides and
// logits only at the coord-slot rows (over the tail after forward 0's reused prefix keys/values),
// then the geometry terms from the last of them.
#include "coordexp/train/channel_a_step.h"

#include <algorithm>
#include <map>
#include <vector>

#include "coordexp/coord/losses.h"
#include "coordexp/util/error.h"

namespace coordexp::train {
namespace {

// Response positions of every coord token of every object (bboxes and polygons alike: each coord
// slot gets its context replaced; which objects enter L_geo is coord_terms' business), increasing.
std::vector<int64_t> coord_slots(const std::vector<coord::ObjectSpan>& objects) {
  std::vector<int64_t> slots;
  for (const auto& o : objects) slots.insert(slots.end(), o.coord_positions.begin(), o.coord_positions.end());
  std::sort(slots.begin(), slots.end());
  COORDEXP_CHECK(std::adjacent_find(slots.begin(), slots.end()) == slots.end(), "two objects share a coord slot");
  return slots;
}

// The objects with coord positions renumbered to indices into `slots` (rows of slot-only logits).
std::vector<coord::ObjectSpan> objects_on_slot_rows(const std::vector<coord::ObjectSpan>& objects,
                                                    const std::vector<int64_t>& slots) {
  std::map<int64_t, int64_t> row_of;
  for (size_t i = 0; i < slots.size(); ++i) row_of[slots[i]] = static_cast<int64_t>(i);
  std::vector<coord::ObjectSpan> out = objects;
  for (auto& o : out)
    for (auto& p : o.coord_positions) p = row_of.at(p);
  return out;
}

// Length of the prefix the self-context forwards can take from forward 0: the earliest sequence
// index, over all rows, of a row that predicts a coord slot (flat_slot_rows: b * T + t).
// Why exact: forwards m >= 1 change only coord-slot input embeddings (index >= that row + 1), the
// position ids depend only on input_ids and the mask, and the causal mask makes hidden states at
// index i depend only on inputs <= i, so every layer's keys/values before it equal forward 0's.
// Why that row and not the first coord input slot itself: the last forward needs logits at every
// coord-predicting row, including this one, so it is recomputed (one position) rather than its
// logits stitched in from forward 0. Why one length for the batch (the min over rows) instead of
// per-row tails: collate right-pads, so sequence index t is the same token position in every row
// and a common prefix is a plain [B, nkv, P, hd] slice with the usual causal/padding bias; rows
// whose first coord comes later recompute a few unchanged positions (cost, not error), and
// padding sits at the ends of rows, inside the tail, masked as in the full forward.
int64_t reusable_prefix_length(const torch::Tensor& flat_slot_rows, int64_t T) {
  return flat_slot_rows.remainder(T).min().item<int64_t>();
}

}  // namespace

ChannelASettings ChannelASettings::from_options(const config::ChannelAOptions& o) {
  o.validate();
  ChannelASettings s;
  s.n_softctx_iter = o.n_softctx_iter;
  s.em_detach = o.softctx_grad_mode == "em_detach";
  s.embed_mode = coord::parse_ctx_embed_mode(o.coord_ctx_embed_mode, "channel_a.coord_ctx_embed_mode");
  s.ctx_tau = o.ctx_tau;
  s.init_from_gt = o.init == "gt";
  s.prefix_reuse = o.prefix_reuse;
  return s;
}

int ChannelASettings::override_forwards() const {
  // init=gt: forward 1 sees the GT coord tokens, so its logits are forward 0's; they are reused.
  return std::max(0, n_softctx_iter - 1 - (init_from_gt ? 1 : 0));
}

ChannelADiagnostics& ChannelADiagnostics::operator+=(const ChannelADiagnostics& o) {
  num_slots += o.num_slots;
  abs_shift_sum += o.abs_shift_sum;
  argmax_changed += o.argmax_changed;
  decoder_forwards += o.decoder_forwards;
  reused_positions += o.reused_positions;
  computed_positions += o.computed_positions;
  return *this;
}

coord::LossTerms channel_a_loss_terms(model::Qwen3VL& model, const PreparedBatch& prepared, coord::CoordIdRange ids,
                                      const config::CoordOptions& coord, const config::LossOptions& loss,
                                      const ChannelASettings& settings, ChannelADiagnostics* diagnostics) {
  const data::Batch& b = prepared.batch;
  if (b.size() == 0 || b.response_targets.numel() == 0) return {};
  const torch::Device device = model.runtime().device;
  const model::VisionFeatures vision = model.encode_images(b.pixel_values.to(device), b.image_grid_thw.to(device));
  const int64_t B = b.input_ids.size(0), T = b.input_ids.size(1);

  const std::vector<coord::ObjectSpan>& objects = b.response_layout.objects;
  const std::vector<int64_t> slots = coord_slots(objects);
  const int iterations = slots.empty() ? 0 : settings.override_forwards();
  if (diagnostics) diagnostics->decoder_forwards += 1 + iterations;
  if (iterations == 0) {
    GtForward first = gt_forward(model, prepared, vision, ids, loss);  // the only forward
    coord::LossTerms terms = std::move(first.ce_terms);
    terms += coord::coord_terms(first.coord_logits, objects, coord::Context::kSelfContext, coord::CoordIdRange{0},
                                coord, loss);
    return terms;
  }

  // Coord slot k: response position slots[k] is predicted by logit row response_logit_rows[slots[k]]
  // of the flat [B * T] sequence and sits at input position row + 1 (the next token of the same row).
  const torch::Tensor slot_index = torch::tensor(slots, torch::kLong);
  const torch::Tensor slot_rows = b.response_logit_rows.index_select(0, slot_index);
  const torch::Tensor slot_inputs = slot_rows + 1;

  // Checkpointed text layers keep no graph of their keys/values (and a checkpointed tail would not
  // route gradients into reused ones): the full forwards run then.
  model::PrefixKv prefix;
  if (settings.prefix_reuse && !model.runtime().checkpoint_text_layers)
    prefix.length = reusable_prefix_length(slot_rows, T);
  const bool reuse = prefix.length > 0;
  GtForward first = gt_forward(model, prepared, vision, ids, loss, reuse ? &prefix : nullptr);  // forward 0
  const torch::Tensor& coord_NK = first.coord_logits;  // coord ids from 0
  coord::LossTerms terms = std::move(first.ce_terms);
  const torch::Tensor slot_ids = b.input_ids.view(-1).index_select(0, slot_inputs);
  COORDEXP_CHECK(slot_ids.ge(ids.first_id).logical_and(slot_ids.lt(ids.first_id + coord::CoordIdRange::kNumBins))
                     .all()
                     .item<bool>(),
                 "a Channel-A coord slot does not hold a coord token");
  model::EmbeddingOverride override_rows;
  override_rows.positions = torch::stack({slot_inputs.div(T, "floor"), slot_inputs.remainder(T)}, 1);
  const torch::Tensor E_coord =
      model.coord_embedding_rows(ids.first_id);  // the coord offset included (adapter.coord_offset)

  const torch::Tensor s_first = coord_NK.index_select(0, slot_index.to(device));
  torch::Tensor s = s_first;
  torch::Tensor logits_SV;
  model::ForwardInputs in;
  in.input_ids = b.input_ids;
  in.attention_mask = b.attention_mask;
  in.vision = &vision;
  in.embedding_override = &override_rows;
  in.prefix = reuse ? &prefix : nullptr;
  in.logits = model::LogitsRequest::at(flat_row_mask(slot_rows, B, T));  // row-major = increasing slots
  for (int m = 0; m < iterations; ++m) {
    const torch::Tensor p_ctx = coord::coord_probs(s, settings.ctx_tau);
    override_rows.rows = coord::coord_context_embeddings(p_ctx, E_coord, settings.embed_mode, settings.em_detach);
    logits_SV = model.forward(in).logits;
    COORDEXP_CHECK(logits_SV.size(0) == static_cast<int64_t>(slots.size()), "slot logits rows mismatch");
    s = coord::gather_coord_logits(logits_SV, ids);
  }
  if (diagnostics) {
    diagnostics->reused_positions += iterations * B * prefix.length;
    diagnostics->computed_positions += iterations * B * (T - prefix.length);
  }
  terms += coord::coord_terms(logits_SV, objects_on_slot_rows(objects, slots), coord::Context::kSelfContext, ids,
                              coord, loss);

  if (diagnostics) {
    torch::NoGradGuard no_grad;
    const torch::Tensor c_first = coord::decode_exp(coord::coord_probs(s_first.detach(), coord.decode_tau));
    const torch::Tensor c_last = coord::decode_exp(coord::coord_probs(s.detach(), coord.decode_tau));
    diagnostics->num_slots += static_cast<int64_t>(slots.size());
    diagnostics->abs_shift_sum += (c_last - c_first).abs().sum().item<double>();
    diagnostics->argmax_changed += s_first.argmax(-1).ne(s.argmax(-1)).sum().item<int64_t>();
  }
  return terms;
}

}  // namespace coordexp::train
