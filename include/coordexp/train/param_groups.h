// Parameter groups of Qwen3-VL for the optimizer: every parameter (by Hugging Face key) is split into
// row slices that belong to one group — vision tower, mergers (patch merger + DeepStack mergers),
// language model, or the <|coord_k|> rows of the input embedding and LM head. The coord rows are rows
// of tensors shared with the language model, so a group is a list of row slices, not of tensors
// (each slice has its own optimizer state). No optimizer math here (adamw.h).
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace coordexp::train {

// kCoordOffset: the adapter.coord_offset table(s) (adapter parameters; LoRA/DoRA factors belong to
// the group of the module they adapt).
enum class ParamGroup : int { kVision, kMerger, kLanguageModel, kCoordRows, kCoordOffset };
constexpr int kNumParamGroups = 5;
const char* to_string(ParamGroup g);  // "vision", "merger", "language_model", "coord_rows", "coord_offset"

// Rows [row_begin, row_end) of `param` (a whole tensor: 0 .. size(0); a 0-dim tensor: 0 .. 1).
struct ParamSlice {
  std::string key;  // Hugging Face key of the tensor
  torch::Tensor param;
  int64_t row_begin = 0;
  int64_t row_end = 0;
  ParamGroup group = ParamGroup::kLanguageModel;
  bool decay = true;  // decoupled weight decay applies (matrices only; never biases or norm scales)

  bool whole() const;
  torch::Tensor value() const;  // view of the rows (in-place updates reach `param`)
  torch::Tensor grad() const;   // the same rows of param.grad(); undefined when there is no grad
  // Stable name for optimizer state: the key, plus "[rows a:b]" for a partial slice.
  std::string state_key() const;
};

// Where the coord rows sit in the embedding / LM head: rows [first_id, first_id + num_rows).
struct CoordRows {
  int64_t first_id = -1;
  int64_t num_rows = 1000;
};

// The group a tensor key belongs to when it has no coord rows: model.visual.merger.* and
// model.visual.deepstack_merger_list.* -> kMerger, other model.visual.* -> kVision,
// model.language_model.* and lm_head.* -> kLanguageModel, coord_offset.* -> kCoordOffset (so adapter
// keys, "<module>.lora_A.weight", fall into their module's group). Throws InternalError for other keys.
ParamGroup group_of_key(const std::string& key);

// Keys whose rows are token ids (the coord rows are carved out of these).
bool has_token_rows(const std::string& key);

// Splits named parameters into slices, in key order. Tensors appearing under two keys (tied lm_head)
// are listed once, under the first key. The coord rows of token-row tensors form kCoordRows slices and
// the remaining rows kLanguageModel slices. Throws DataError when a token-row tensor has fewer than
// first_id + num_rows rows (a model without the coord vocabulary; hint: expand-vocab).
std::vector<ParamSlice> partition_parameters(const std::map<std::string, torch::Tensor>& params, CoordRows coord);

// Number of elements per group, for the start-of-run summary.
std::array<int64_t, kNumParamGroups> count_elements(const std::vector<ParamSlice>& slices);

}  // namespace coordexp::train
