// Qwen3VL: the owner of a loaded Qwen3-VL model (config, parameters, checkpoint layout, runtime
// choices) and its forward API: images -> VisionFeatures (computed once, reusable), then decoder
// forwards over input_ids with optional vision features, embedding overrides (Channel-A), padding,
// precomputed position ids, a KV cache or a reused prefix (PrefixKv), and logits only where
// requested. Load/save round-trips Hugging Face checkpoints. Preprocessing (pixels -> pixel_values)
// lives in vision_preprocess.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "coordexp/config/sections/model.h"
#include "coordexp/model/adapter_files.h"
#include "coordexp/model/config.h"
#include "coordexp/model/kv_cache.h"
#include "coordexp/model/modules.h"
#include "coordexp/model/weights.h"

namespace coordexp::model {

// Resolved runtime choices (from config::ModelOptions).
struct ModelRuntime {
  torch::ScalarType param_dtype = torch::kFloat;  // float32 or bfloat16; float64 computes in float64 (tests)
  torch::Device device = torch::kCPU;
  bool cuda_autocast = true;                      // bf16 autocast on CUDA; CPU computes float32
  bool cpu_autocast = false;                      // C++ API only (tests; no config key): bf16 autocast on CPU
  AttentionKind attention = AttentionKind::kEager;  // model.attn_implementation (attention.h)
  bool checkpoint_text_layers = false;
  bool checkpoint_vision_blocks = false;
  // Resolves "auto" device (CUDA when available). Throws ConfigError for cuda without CUDA.
  static ModelRuntime from_options(const config::ModelOptions& options);
};

// Rows that replace token embeddings before the decoder (Channel-A's soft coord embeddings).
// positions: int64 [K, 2] of (batch row, sequence index); rows: [K, H] (may require grad). Image
// pad positions cannot be overridden (image features never travel through here).
struct EmbeddingOverride {
  torch::Tensor positions;
  torch::Tensor rows;
};

// Where logits are computed (never [B, T, V] unless kAll is asked for).
struct LogitsRequest {
  enum class Kind { kNone, kAll, kLast, kMask };
  Kind kind = Kind::kLast;
  torch::Tensor mask;  // kMask: bool [B, T]
  static LogitsRequest none() { return {Kind::kNone, {}}; }
  static LogitsRequest all() { return {Kind::kAll, {}}; }
  static LogitsRequest last() { return {Kind::kLast, {}}; }  // last real token of each row
  static LogitsRequest at(torch::Tensor mask_BT) { return {Kind::kMask, std::move(mask_BT)}; }
};

struct ForwardInputs {
  torch::Tensor input_ids;                // int64 [B, T]; always (locates image pads and positions)
  torch::Tensor attention_mask;           // [B, T] nonzero = real token; undefined = all real.
                                          // With a cache it covers only this block (the cache
                                          // remembers which earlier slots were padding).
  const VisionFeatures* vision = nullptr;  // features for this batch's <|image_pad|> runs, in order
  const EmbeddingOverride* embedding_override = nullptr;
  torch::Tensor position_ids;             // int64 [3, B, T]; undefined = computed (spec section 5)
  KvCache* cache = nullptr;               // append this block (forwards with a cache never record grads)
  // Set `length` before the forward; it fills keys/values (length <= T; text-layer gradient
  // checkpointing must be off while grads are recorded: its layers keep no graph to capture).
  PrefixKv* capture_prefix = nullptr;
  // Reuse these keys/values for positions [0, prefix->length) and compute only the tail [length, T):
  // input_ids, attention_mask, position_ids and vision still describe the whole [B, T] sequence (they
  // place the tail), overrides and logits must lie in the tail, and hidden states / logits cover only
  // the tail (kAll [B, T - length, V], return_hidden_states [B, T - length, H]). Not with a cache.
  const PrefixKv* prefix = nullptr;
  LogitsRequest logits = LogitsRequest::last();
  bool return_hidden_states = false;      // final-normed hidden states [B, T, H]
  Trace* trace = nullptr;                 // intermediate tensors for parity tests
};

struct ForwardOutput {
  torch::Tensor logits;         // kAll [B, T, V]; kLast [B, V]; kMask [K, V] (row-major over mask)
  torch::Tensor hidden_states;  // [B, T, H] if requested
  torch::Tensor position_ids;   // int64 [3, B, T] used (with a prefix: [3, B, T - length] of the tail)
  torch::Tensor rope_deltas;    // int64 [B, 1] (HF convention; zeros when ids were precomputed)
};

// Random initialisation scales for make-tiny models (not a training recipe).
struct InitScales {
  double linear_std = 0.02;    // every linear weight ~ N(0, std^2)
  double embed_std = 0.02;     // embed_tokens, lm_head, pos_embed
  double bias_std = 0.0;       // biases
  double norm_noise = 0.0;     // norm weights = 1 + N(0, noise^2) (LayerNorm biases 0)
};

class Qwen3VL {
 public:
  // Loads dir/config.json and the weights (single file or shards). Throws FormatError on any
  // config or key/shape mismatch (one error listing everything).
  static Qwen3VL load(const std::string& dir, const ModelRuntime& runtime = {});
  // A model with uninitialised parameters (call init_random or load weights into it).
  static Qwen3VL create(const Qwen3VLConfig& config, const ModelRuntime& runtime = {});

  Qwen3VL(Qwen3VL&&) noexcept;
  Qwen3VL& operator=(Qwen3VL&&) noexcept;
  ~Qwen3VL();

  // Deterministic random parameters from `seed` (CPU generator; same values on every machine).
  void init_random(uint64_t seed, const InitScales& scales = {});
  // Writes config.json and the weights into dir with the source's key names, dtypes and sharding
  // (a created model: one model.safetensors in `dtype_for_new`, tied lm_head omitted). With
  // max_shard_bytes > 0 the weights are re-split into HF shards of at most that many bytes.
  struct SaveOptions {
    torch::ScalarType dtype_for_new = torch::kFloat;
    uint64_t max_shard_bytes = 0;  // 0: keep the source checkpoint's files
  };
  void save(const std::string& dir, const SaveOptions& options) const;
  void save(const std::string& dir) const { save(dir, SaveOptions{}); }

  // Vision tower + DeepStack mergers. pixel_values [Np, C*tp*p*p], grid_thw int64 [N, 3].
  VisionFeatures encode_images(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw,
                               Trace* trace = nullptr);
  ForwardOutput forward(const ForwardInputs& inputs);
  // An empty cache for `batch_size` rows of up to `capacity` tokens, on the model's device.
  KvCache make_kv_cache(int64_t batch_size, int64_t capacity) const;

  const Qwen3VLConfig& config() const { return config_; }
  Qwen3VLConfig& mutable_config() { return config_; }  // e.g. vocab resize updates vocab_size
  const ModelRuntime& runtime() const { return runtime_; }
  Qwen3VLModule& module() { return module_; }
  const Qwen3VLModule& module() const { return module_; }
  const CheckpointLayout& layout() const { return layout_; }
  // Canonical key -> parameter (exactly the weight-table keys that are module parameters; never
  // the adapters').
  std::map<std::string, torch::Tensor> named_parameters() const;

  // Adapters (attached by adapter.h's attach_adapters; none by default). adapter_parameters(): the
  // LoRA/DoRA tensors under PEFT's names plus the coord-offset table(s) (adapter.h's key names).
  const AdapterSpec& adapter_spec() const { return adapter_spec_; }
  bool has_adapters() const { return adapter_spec_.kind != AdapterKind::kNone || adapter_spec_.coord_offset; }
  std::map<std::string, torch::Tensor> adapter_parameters() const;
  // The coord-offset tables [1000, H] (undefined without adapter.coord_offset; lm_head is the
  // embedding's table when tied), set by attach_adapters.
  struct CoordOffsetTables {
    torch::Tensor embed, lm_head;
  };
  const CoordOffsetTables& coord_offset() const { return coord_offset_; }
  void set_adapters(AdapterSpec spec, CoordOffsetTables tables);  // attach_adapters' bookkeeping
  // The LM head weight [V, H] the forward uses: lm_head.weight (or the tied embedding) plus the
  // head's coord offset on the coord rows (then a new tensor each call).
  torch::Tensor lm_head_weight() const;
  // Input-embedding rows of <|coord_0..999|> [1000, H] as the forward embeds them (offset included);
  // coord_first_id must be the id the offset was attached for.
  torch::Tensor coord_embedding_rows(int64_t coord_first_id) const;
  void set_gradient_checkpointing(bool text_layers, bool vision_blocks);
  // The float dtype activations are computed in (float32 on CPU; the parameter dtype on CUDA;
  // float64 for float64 parameters).
  torch::ScalarType compute_dtype() const;

 private:
  Qwen3VL(Qwen3VLConfig config, ModelRuntime runtime, Qwen3VLModule module);
  Qwen3VLConfig config_;
  ModelRuntime runtime_;
  Qwen3VLModule module_;
  CheckpointLayout layout_;
  bool has_layout_ = false;
  torch::Tensor inv_freq_;  // text rotary frequencies (float32, on device)
  AdapterSpec adapter_spec_;          // kind none, no offset: no adapters
  CoordOffsetTables coord_offset_;
};

}  // namespace coordexp::model
