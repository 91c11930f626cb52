// `adapter:` config section — parameter-efficient training: LoRA / DoRA factors on the linear maps
// (PEFT's LoraConfig: rank, alpha, dropout, target_modules) and the coord-offset table (a trainable
// [1000, hidden] delta on the coord rows of the input embedding and LM head). Values only: the kind
// stays a string here (config is below model); model::parse_adapter_kind resolves it, and the model
// module (coordexp/model/adapter.h) attaches the adapters. With either on, the base weights are frozen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

// Which parts of the model get no adapters (their base weights stay frozen too).
struct AdapterFreezeOptions {
  bool vision = false;          // the ViT blocks (model.visual.blocks.*)
  bool merger = false;          // the patch merger and DeepStack mergers
  bool language_model = false;  // the text decoder's linear maps
};

template <class V>
void visit_fields(V& v, AdapterFreezeOptions& o) {
  v.field(Field("vision", "No adapters on the vision tower's linear maps (model.visual.blocks.*)."), o.vision);
  v.field(Field("merger", "No adapters on the patch merger and the DeepStack mergers."), o.merger);
  v.field(Field("language_model", "No adapters on the text decoder's linear maps."), o.language_model);
}

struct AdapterOptions {
  std::string kind = "none";                     // none | lora | dora (PEFT use_dora)
  int64_t rank = 16;                             // r of the low-rank factors
  double alpha = 32.0;                           // lora_alpha; the update is scaled by alpha / rank
  double dropout = 0.0;                          // lora_dropout on the A branch's input (training forwards)
  std::vector<std::string> targets = {"all-linear"};  // all-linear, or module-path patterns (`*` = any)
  AdapterFreezeOptions freeze;                   // parts left without adapters
  bool coord_offset = false;                     // trainable [1000, hidden] offset on the coord rows
  bool tie_head = true;                          // one offset table for the embedding and the LM head

  bool lora_on() const { return kind != "none"; }
  bool any() const { return lora_on() || coord_offset; }  // the base is frozen

  void validate() const {
    if (kind != "none" && kind != "lora" && kind != "dora")
      throw ConfigError("invalid value '" + kind + "'", "adapter.kind", "allowed: none | lora | dora");
    if (!lora_on()) return;
    if (rank < 1)
      throw ConfigError("adapter.rank = " + std::to_string(rank) + " is out of range", "adapter.rank",
                        "use a rank >= 1 (16 is the CoordExp default)");
    if (!(alpha > 0.0))
      throw ConfigError("adapter.alpha must be > 0", "adapter.alpha", "the update is scaled by alpha / rank; 32 is the default");
    if (!(dropout >= 0.0 && dropout < 1.0))
      throw ConfigError("adapter.dropout = " + std::to_string(dropout) + " is outside [0, 1)", "adapter.dropout",
                        "use 0 (the CoordExp default) or a probability below 1");
    if (targets.empty())
      throw ConfigError("adapter.targets is empty", "adapter.targets",
                        "use [all-linear] or module-path patterns such as language_model.*.q_proj");
    for (const auto& t : targets)
      if (t.empty()) throw ConfigError("adapter.targets holds an empty pattern", "adapter.targets", "remove it");
    if (freeze.vision && freeze.merger && freeze.language_model)
      throw ConfigError("adapter.kind is " + kind + " but every part is frozen: no linear map would get an adapter",
                        "adapter.freeze", "unfreeze a part, or set adapter.kind: none");
  }
};

template <class V>
void visit_fields(V& v, AdapterOptions& o) {
  v.field(Field("kind", "none: train the base weights (optim.*); lora: W + (alpha/r) B A on the targeted linear "
                        "maps; dora: LoRA with a learned per-output-row magnitude (PEFT use_dora). With lora/dora "
                        "the base weights are frozen and checkpoints hold the adapters in the PEFT layout.")
              .choices({"none", "lora", "dora"}),
          o.kind);
  v.field(Field("rank", "Rank r of the LoRA factors A [r, in] and B [out, r].").range(1, 4096), o.rank);
  v.field(Field("alpha", "lora_alpha: the update is scaled by alpha / rank.").range(1e-6, 1e6), o.alpha);
  v.field(Field("dropout", "lora_dropout: dropout on the input of the A branch in training forwards (PEFT's "
                           "placement; DoRA keeps the un-dropped input for the base term). Not with gradient "
                           "checkpointing.").range(0, 0.999),
          o.dropout);
  v.field(Field("targets", "Linear maps that get adapters: all-linear (every linear map except lm_head, like "
                           "PEFT; the patch embedding is a convolution and excluded), or patterns over the "
                           "Hugging Face module path, `*` matching anything, matched against the whole path or "
                           "a dotted suffix (q_proj, language_model.*.q_proj, model.visual.blocks.0.attn.qkv). A "
                           "pattern that matches nothing is an error."),
          o.targets);
  v.section("freeze", "Parts of the model that get no adapters (their base weights stay frozen).", o.freeze);
  v.field(Field("coord_offset", "A zero-initialised trainable [1000, hidden] table added to the "
                                "<|coord_0..999|> rows of the input embedding and of the LM head (works with "
                                "adapter.kind none: then only the table trains). Its optimizer settings: "
                                "optim.coord_offset."),
          o.coord_offset);
  v.field(Field("tie_head", "coord_offset: one table for the embedding and the LM head (true), or two "
                            "separate tables (false)."),
          o.tie_head);
}

}  // namespace coordexp::config
