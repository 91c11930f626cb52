// Channel-A, Stage-2's hot path (seed 6.2 / 7.1), on one prepared micro-batch: forward 0 is
// teacher-forced on the GT answer and gives the CE terms (context gt); each further forward feeds
// the coord slots the model's own coord belief from the previous forward as input embeddings
// (soft / ST / hard, optionally detached), and the last forward's logits at the coord slots give
// L_geo / L_coord_dist by identity alignment (context self_context). Everything else stays
// teacher-forced. Counts are the Stage-1 ones (prepare_batch), so normalization is unchanged.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "coordexp/config/sections/channel_a.h"
#include "coordexp/config/sections/coord.h"
#include "coordexp/config/sections/loss.h"
#include "coordexp/coord/decode.h"
#include "coordexp/coord/loss_terms.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/stage1_step.h"

namespace coordexp::train {

// config::ChannelAOptions resolved once.
struct ChannelASettings {
  int n_softctx_iter = 2;
  bool em_detach = false;
  coord::CtxEmbedMode embed_mode = coord::CtxEmbedMode::kSt;
  double ctx_tau = 1.0;
  bool init_from_gt = false;  // init=gt: the first self-context forward would repeat forward 0
  bool prefix_reuse = true;   // forwards m >= 1 reuse forward 0's prefix keys/values (exact)

  static ChannelASettings from_options(const config::ChannelAOptions& options);
  // Decoder forwards that carry coord-slot overrides: n - 1 (init ctx) or n - 2 (init gt), >= 0.
  int override_forwards() const;
};

// What the self-context loop did to the coord beliefs (no gradient): summed over coord slots, so
// micro-batches and ranks add up. 0 slots when no override forward ran.
struct ChannelADiagnostics {
  int64_t num_slots = 0;          // coord slots whose context was replaced
  double abs_shift_sum = 0.0;     // sum |c^(last) - c^(0)| of the expectation decode (coord.decode_tau)
  int64_t argmax_changed = 0;     // slots whose argmax bin differs between forward 0 and the last
  int64_t decoder_forwards = 0;   // decoder forwards run (1 + override forwards when slots exist)
  // Over the override forwards, rows x positions: taken from forward 0's keys/values (prefix reuse)
  // and computed (the tail, or the whole row without reuse). reused / (reused + computed) = saving.
  int64_t reused_positions = 0;
  int64_t computed_positions = 0;

  ChannelADiagnostics& operator+=(const ChannelADiagnostics& o);
};

// The Channel-A registry terms of one micro-batch: CE terms (context gt) from forward 0 plus the
// geometry / coord-distribution terms (context self_context) from the last forward. Images are
// encoded once and shared by every forward; with settings.prefix_reuse (and text-layer gradient
// checkpointing off) forwards m >= 1 compute only the positions from the batch's first
// coord-predicting row on, attending to forward 0's keys/values before it: the same losses and
// gradients as full forwards. An empty batch gives inactive terms.
coord::LossTerms channel_a_loss_terms(model::Qwen3VL& model, const PreparedBatch& prepared, coord::CoordIdRange ids,
                                      const config::CoordOptions& coord, const config::LossOptions& loss,
                                      const ChannelASettings& settings, ChannelADiagnostics* diagnostics = nullptr);

}  // namespace coordexp::train
