// `optim:` section — AdamW hyper-parameters, the learning-rate schedule (warmup then cosine, linear
// or constant), gradient clipping, and per-parameter-group multipliers / freeze flags for the vision
// tower, the mergers, the language model and the coord-token rows. Values only; src/train builds
// the optimizer from them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

// One parameter group's deviation from the global optimizer settings.
struct ParamGroupOptions {
  double lr_mult = 1.0;            // group lr = optim.lr x lr_mult
  double weight_decay_mult = 1.0;  // group weight decay = optim.weight_decay x weight_decay_mult
  bool freeze = false;             // true = no gradients, no optimizer state for this group
};

template <class V>
void visit_fields(V& v, ParamGroupOptions& o) {
  v.field(Field("lr_mult", "Learning rate of this group = `optim.lr` x lr_mult.").min(0), o.lr_mult);
  v.field(Field("weight_decay_mult", "Weight decay of this group = `optim.weight_decay` x "
                                     "weight_decay_mult.").min(0), o.weight_decay_mult);
  v.field(Field("freeze", "Freeze the group: no gradients and no optimizer state."), o.freeze);
}

// The coord-offset table's optimizer settings (adapter.coord_offset): absolute values, not multipliers.
struct CoordOffsetOptimOptions {
  double lr = 0.0;            // peak lr of the table; 0 = optim.lr (same warmup and decay either way)
  double weight_decay = 0.0;  // decoupled weight decay of the table (pulls it back to the base rows)
};

template <class V>
void visit_fields(V& v, CoordOffsetOptimOptions& o) {
  v.field(Field("lr", "Peak learning rate of the coord-offset table (it follows the same warmup and decay "
                      "as `optim.lr`); 0 = `optim.lr`.").range(0, 1), o.lr);
  v.field(Field("weight_decay", "Decoupled weight decay of the coord-offset table (absolute, not a "
                                "multiplier; decays it towards the base coord rows).").range(0, 10),
          o.weight_decay);
}

struct OptimOptions {
  double lr = 1e-5;                          // peak learning rate (after warmup)
  std::vector<double> betas = {0.9, 0.999};  // AdamW (beta1, beta2)
  double eps = 1e-8;                         // AdamW denominator epsilon
  double weight_decay = 0.0;                 // decoupled (AdamW) weight decay
  int64_t warmup_steps = 100;                // linear warmup from 0 to lr over this many steps
  std::string schedule = "cosine";           // decay after warmup: cosine | linear | constant
  double min_lr_ratio = 0.1;                 // final lr = lr x min_lr_ratio (cosine/linear)
  double grad_clip = 1.0;                    // global grad-norm clip; 0 = off
  bool fused = true;                         // one pass per element on CPU (train/adamw.h)
  ParamGroupOptions vision;                  // vision tower (patch embed + blocks)
  ParamGroupOptions merger;                  // patch merger and deepstack mergers
  ParamGroupOptions language_model;          // text decoder (except the coord rows)
  ParamGroupOptions coord_rows;              // <|coord_k|> rows of the embedding and LM head
  CoordOffsetOptimOptions coord_offset;      // the adapter.coord_offset table(s)

  void validate() const {
    if (betas.size() != 2)
      throw ConfigError("optim.betas must have exactly 2 values (beta1, beta2), got " +
                            std::to_string(betas.size()),
                        "optim.betas", "write e.g. betas: [0.9, 0.999]");
    if (vision.freeze && merger.freeze && language_model.freeze && coord_rows.freeze)
      throw ConfigError("every parameter group is frozen, nothing would be trained",
                        "optim.language_model.freeze", "unfreeze at least one group");
  }
};

template <class V>
void visit_fields(V& v, OptimOptions& o) {
  v.field(Field("lr", "Peak learning rate (reached at the end of warmup).").range(0, 1), o.lr);
  v.field(Field("betas", "AdamW (beta1, beta2).").range(0, 0.999999), o.betas);
  v.field(Field("eps", "AdamW epsilon added to the denominator.").range(1e-30, 1), o.eps);
  v.field(Field("weight_decay", "Decoupled (AdamW) weight decay.").range(0, 10), o.weight_decay);
  v.field(Field("warmup_steps", "Optimizer steps of linear warmup from 0 to `optim.lr`.").min(0),
          o.warmup_steps);
  v.field(Field("schedule", "Learning-rate decay after warmup, down to lr x min_lr_ratio at the "
                            "last step.").choices({"cosine", "linear", "constant"}), o.schedule);
  v.field(Field("min_lr_ratio", "Final learning rate as a fraction of `optim.lr` (cosine and "
                                "linear schedules).").range(0, 1), o.min_lr_ratio);
  v.field(Field("grad_clip", "Clip the global gradient L2 norm to this value; 0 = no clipping.")
              .min(0), o.grad_clip);
  v.field(Field("fused", "AdamW update in one pass over each parameter slice (CPU with AVX2 + FMA: "
                         "reads parameter, gradient and both moments once, writes three) instead of "
                         "nine tensor operations; the same float32 arithmetic in the same order. "
                         "false = the operation-by-operation update (also used on CUDA and older CPUs)."),
          o.fused);
  v.section("vision", "Vision tower parameters (patch embedding and ViT blocks).", o.vision);
  v.section("merger", "Patch merger and deepstack merger parameters.", o.merger);
  v.section("language_model", "Text decoder parameters, except the coord-token rows.",
            o.language_model);
  v.section("coord_rows", "The `<|coord_0|>`..`<|coord_999|>` rows of the input embedding and "
                          "the LM head.", o.coord_rows);
  v.section("coord_offset", "The coord-offset table(s) of `adapter.coord_offset`.", o.coord_offset);
}

}  // namespace coordexp::config
