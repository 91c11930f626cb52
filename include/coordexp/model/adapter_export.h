// Export of an adapted Qwen3-VL as a plain Hugging Face model: LoRA/DoRA factors and the coord-offset
// table (adapter_files.h) merged into the base weights (adapter_merge.h), streamed one base shard at a
// time with the base's shard layout, key names and dtypes, plus config.json and the tokenizer /
// processor / generation files copied so the folder loads as-is. Validation errors name the key or
// file and both shapes. Not here: training, the runtime adapter modules, resharding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace coordexp::model {

struct ExportOptions {
  bool force = false;  // write into a non-empty output directory (its old weight files are replaced)
};

struct ExportReport {
  int64_t num_lora_merged = 0;            // LoRA weights merged
  int64_t num_dora_merged = 0;            // DoRA weights merged
  bool coord_offset_applied = false;
  bool lm_head_materialized = false;      // an untied offset on a tied base wrote lm_head.weight
  std::vector<std::string> weight_files;  // written, in order (plus the index when sharded)
  std::vector<std::string> copied_files;  // tokenizer / processor / generation files copied
  uint64_t largest_shard_bytes = 0;       // tensor data of the largest output weight file
  uint64_t total_bytes = 0;               // tensor data of all output weight files
};

// Files copied from the base directory when present (besides config.json, which is rewritten when
// lm_head is materialised and copied byte for byte otherwise).
const std::vector<std::string>& export_copied_file_names();

// `adapter` is an adapter directory (adapter_config.json) or a training checkpoint holding one in
// `adapter/`; returns the adapter directory or throws DataError saying what is missing.
std::string resolve_adapter_dir(const std::string& adapter);

// Merges `adapter` into the model in `base_dir` and writes the plain model to `out_dir`, streamed:
// per base file, one tensor at a time (mapped, or merged in row blocks from the mapping), written and
// dropped, the mapped pages it read given back. Peak memory above the process: the adapter, one
// merged tensor and its blocks, the pages of the tensor being copied (docs/performance.md measures
// it: under 2 x the largest shard + the adapter).
ExportReport export_merged_model(const std::string& base_dir, const std::string& adapter,
                                 const std::string& out_dir, const ExportOptions& options = {});

}  // namespace coordexp::model
