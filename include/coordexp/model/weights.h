// Checkpoint weights of Qwen3-VL: the weight-name table (every parameter's Hugging Face key,
// expected shape, required/tied flags), a strict key check that reports every missing, unexpected
// and mis-shaped tensor in one error, streaming load into preallocated parameters, and saving with
// the source's key names, dtypes and sharding (byte-identical for an unchanged model). No model
// math here; the parameters arrive as a key -> tensor map.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "coordexp/model/config.h"
#include "coordexp/util/safetensors.h"

namespace coordexp::model {

struct WeightSpec {
  std::string key;             // Hugging Face checkpoint key
  std::vector<int64_t> shape;  // expected shape
  bool required = true;        // false: may be absent from the checkpoint
  std::string tied_to;         // non-empty: this tensor is (or may be stored as) a copy of that key
};

// All weights the config implies, in module order. A tied lm_head is listed as optional and tied
// to model.language_model.embed_tokens.weight.
std::vector<WeightSpec> weight_table(const Qwen3VLConfig& config);

// Qwen3-VL key for a stored key: identity for Qwen3-VL names; maps the old Qwen2-VL layout
// ("visual.*" -> "model.visual.*", "model.layers.*" etc. -> "model.language_model.*").
std::string canonical_key(const std::string& stored_key);

// How a checkpoint stored its tensors, so saving reproduces it.
struct StoredTensor {
  std::string file;        // file name relative to the model directory
  util::StDType dtype = util::StDType::F32;
  std::string stored_key;  // key as written in the file
};
struct CheckpointLayout {
  std::map<std::string, StoredTensor> tensors;  // canonical key -> storage
  std::vector<std::string> files;               // relative file names, in order
  std::map<std::string, std::map<std::string, std::string>> file_metadata;  // per file __metadata__
  bool sharded = false;                         // model.safetensors.index.json present
  std::string index_text;                       // original index.json bytes (sharded only)

  // Single model.safetensors, every tensor of `table` in `dtype`; a tied lm_head is omitted.
  static CheckpointLayout single_file(const std::vector<WeightSpec>& table, util::StDType dtype);
};

// The same tensors (stored keys, dtypes) redistributed into Hugging Face shards
// `model-0000k-of-0000N.safetensors` of at most `max_shard_bytes` tensor data each, filled in
// `table` (module) order like transformers' save_pretrained; a tensor larger than the limit gets a
// shard of its own. When everything fits in one shard the result is a single model.safetensors.
CheckpointLayout reshard_layout(const CheckpointLayout& layout, const std::vector<WeightSpec>& table,
                                uint64_t max_shard_bytes);

// Checks `ckpt` (opened from `dir`) against `table`: every missing, unexpected, mis-shaped or
// non-float tensor is listed in one FormatError with the expected shapes. Returns how the
// checkpoint stores its tensors.
CheckpointLayout inspect_checkpoint(const util::SafetensorsCheckpoint& ckpt, const std::string& dir,
                                    const std::vector<WeightSpec>& table);

// Streams every tensor of `dir`'s checkpoint into `params` (canonical key -> preallocated
// parameter; converted to the parameter's dtype/device). Checks keys and shapes against `table`
// first and throws one FormatError listing all problems. Data is read with pread in chunks of at
// most 16 MB, so peak memory is the parameters plus one chunk. Returns the storage layout.
CheckpointLayout load_weights(const std::string& dir, const std::vector<WeightSpec>& table,
                              const std::map<std::string, torch::Tensor>& params);

// Writes `params` into `dir` following `layout` (files, key names, dtypes, metadata; an index.json
// when sharded, byte-identical to the original when nothing changed). Tied tensors listed in the
// layout but absent from `params` are written from the tensor they are tied to.
void save_weights(const std::string& dir, const CheckpointLayout& layout, const std::vector<WeightSpec>& table,
                  const std::map<std::string, torch::Tensor>& params);

}  // namespace coordexp::model
