// Adapter files in the PEFT layout (what `PeftModel.save_pretrained` writes for a LoRA/DoRA adapter)
// plus the coord-offset table, which PEFT has no exact equivalent for. Pure file I/O and validation:
// no training, no merging (adapter_merge.h), no module wrapping (adapter.h).
//
// A directory holds:
//   adapter_config.json         PEFT LoraConfig fields (peft_type "LORA", r, lora_alpha, lora_dropout,
//                               target_modules, use_dora, bias "none", task_type "CAUSAL_LM", ...)
//   adapter_model.safetensors   "base_model.model.<module>.lora_A.weight" [r, in],
//                               "base_model.model.<module>.lora_B.weight" [out, r],
//                               "base_model.model.<module>.lora_magnitude_vector" [out] (DoRA)
//   coord_offset.safetensors    only with a coord offset: "coord_offset.embed_tokens" [1000, H] and,
//                               untied only, "coord_offset.lm_head" [1000, H]
//   coordexp_adapter.json       {"coord_offset": bool, "coord_offset_tied": bool, "coord_first_id": int}
// <module> is the Hugging Face module path, e.g. "model.language_model.layers.0.self_attn.q_proj".
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace coordexp::model {

enum class AdapterKind { kNone, kLora, kDora };
// "none" | "lora" | "dora"; throws ConfigError naming `key` otherwise.
AdapterKind parse_adapter_kind(const std::string& name, const std::string& key = "adapter.kind");
const char* to_string(AdapterKind kind);

// What an adapter directory declares (resolved: concrete module paths, not patterns).
struct AdapterSpec {
  AdapterKind kind = AdapterKind::kNone;
  int64_t rank = 16;
  double alpha = 32.0;
  double dropout = 0.0;
  std::vector<std::string> target_modules;  // HF module paths carrying lora_A/lora_B, sorted
  bool coord_offset = false;
  bool coord_offset_tied = true;  // one table for embed_tokens and (tied) lm_head
  int64_t coord_first_id = -1;    // id of <|coord_0|>; rows [coord_first_id, +1000)
  std::string base_model_name_or_path;
  double scale() const { return alpha / static_cast<double>(rank); }  // PEFT's `scaling` (no rslora)
};

// The trained tensors, keyed by HF module path (no "base_model.model." prefix, no ".weight").
struct AdapterTensors {
  std::map<std::string, torch::Tensor> lora_A;     // [r, in]
  std::map<std::string, torch::Tensor> lora_B;     // [out, r]
  std::map<std::string, torch::Tensor> magnitude;  // [out], DoRA only
  torch::Tensor coord_offset_embed;                // [1000, H] or undefined
  torch::Tensor coord_offset_lm_head;              // [1000, H], untied offset only
};

// Writes the four files (atomically per file: temp + rename). Tensors are written as they are (dtype kept).
void write_adapter_dir(const std::string& dir, const AdapterSpec& spec, const AdapterTensors& tensors);
// Reads and validates a directory written by write_adapter_dir or by PEFT (LoRA/DoRA without
// rslora/rank_pattern/alpha_pattern; those are refused with a ConfigError/DataError naming the field).
// Errors name the file and the key and say the fix.
struct AdapterDir {
  AdapterSpec spec;
  AdapterTensors tensors;
};
AdapterDir read_adapter_dir(const std::string& dir);
bool is_adapter_dir(const std::string& dir);  // adapter_config.json exists

// ---- additions (not in the part-1 contract; used by export and tests) ----

// File names inside an adapter directory.
inline constexpr const char* kAdapterConfigFile = "adapter_config.json";
inline constexpr const char* kAdapterWeightsFile = "adapter_model.safetensors";
inline constexpr const char* kCoordOffsetFile = "coord_offset.safetensors";
inline constexpr const char* kCoordAdapterFile = "coordexp_adapter.json";
// PEFT's prefix of every saved key: PeftModel.base_model (LoraModel) . model (the HF model).
inline constexpr const char* kPeftKeyPrefix = "base_model.model.";
// Rows of the coord-offset table: one per <|coord_0|>..<|coord_999|>.
inline constexpr int64_t kCoordOffsetRows = 1000;

// PEFT's `target_modules` as stored in adapter_config.json: a string is a regex that must match the
// whole module path (or "all-linear": every linear map except the output layer lm_head); a list
// matches a module whose path equals an entry or ends in "." + entry. `exclude_modules` works the
// same way and wins.
struct PeftTargetModules {
  bool is_regex = false;
  std::string regex;                // is_regex
  std::vector<std::string> names;   // !is_regex
  bool has_exclude_regex = false;
  std::string exclude_regex;
  std::vector<std::string> exclude_names;
};
bool peft_module_matches(const PeftTargetModules& targets, const std::string& module);

}  // namespace coordexp::model
