// `channel_a:` section — Channel-A, Stage-2's hot path (seed 6.2 / 7.1): N full forwards where the
// coord slots' input embeddings are replaced by the model's own (soft / ST / hard) coord belief, CE
// from the teacher-forced GT forward, geometry from the last forward. Values only; the step lives in
// src/train/channel_a_step.cpp. The geometry decode (coord.decode_mode / decode_tau) and the loss
// weights (loss.*) are shared with the other contexts.
#pragma once

#include <cstdint>
#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct ChannelAOptions {
  int n_softctx_iter = 2;                   // full forwards per sample; 1 = pure teacher forcing
  std::string softctx_grad_mode = "unroll"; // unroll | em_detach (no gradient into the context p)
  std::string coord_ctx_embed_mode = "st";  // st | soft | hard (hard: debug, no gradient into p)
  double ctx_tau = 1.0;                     // tau_A of p = softmax(s / tau_A) for the context embeddings
  std::string init = "ctx";                 // ctx: first self-context forward already uses e_ctx^(0); gt: delayed
  bool prefix_reuse = true;                 // forwards m >= 1 reuse forward 0's keys/values before the first coord-predicting row (exact)

  void validate() const {
    if (n_softctx_iter < 1)
      throw ConfigError("n_softctx_iter = " + std::to_string(n_softctx_iter) + " is out of range",
                        "key channel_a.n_softctx_iter", "use 1 (teacher forcing) or more; 2 is the default");
  }
};

template <class V>
void visit_fields(V& v, ChannelAOptions& o) {
  v.field(Field("n_softctx_iter", "Full-sequence forwards per Channel-A sample (m = 0..N-1): forward 0 "
                                  "is teacher-forced on the GT answer and gives the CE terms; each later "
                                  "forward replaces the coord slots' input embeddings by the previous "
                                  "forward's coord belief; the last one gives L_geo / L_coord_dist. "
                                  "1 = pure teacher forcing.").range(1, 16),
          o.n_softctx_iter);
  v.field(Field("softctx_grad_mode", "unroll: gradients flow through the self-context loop (credit "
                                     "assignment across coord slots and iterations); em_detach: the coord "
                                     "distribution that builds the context embeddings is detached (stable "
                                     "fallback).").choices({"unroll", "em_detach"}),
          o.softctx_grad_mode);
  v.field(Field("coord_ctx_embed_mode", "Coord-slot context embedding: st = the argmax row forward, the "
                                        "expected embedding's gradient backward; soft = sum_k p_k E[k]; "
                                        "hard = E[argmax] (no gradient into p; debugging).")
              .choices({"st", "soft", "hard"}),
          o.coord_ctx_embed_mode);
  v.field(Field("ctx_tau", "Temperature tau_A of the coord softmax that builds the context embeddings "
                           "(the geometry decode uses coord.decode_tau).").range(1e-3, 100.0),
          o.ctx_tau);
  v.field(Field("init", "ctx: the first self-context forward already sees e_ctx^(0) from the GT forward "
                        "(seed default); gt: it sees the GT coord tokens, which delays the self-context "
                        "effect by one iteration (its logits equal the GT forward's and are reused, not "
                        "recomputed).").choices({"ctx", "gt"}),
          o.init);
  v.field(Field("prefix_reuse", "Forwards m >= 1 reuse forward 0's per-layer keys/values (with their "
                                "gradient) for the positions before the batch's first coord-predicting row "
                                "(prompt, image, first desc: identical under the causal mask) and compute "
                                "only the tail; exact (same losses and gradients as the full forwards, "
                                "tested in float64). off = full forwards. Metrics: a_reused_positions / "
                                "a_computed_positions. With model.gradient_checkpointing_text the full "
                                "forwards run (checkpointed layers keep no graph to reuse)."),
          o.prefix_reuse);
}

}  // namespace coordexp::config
