// LibTorch modules of Qwen3-VL (dense): vision tower with DeepStack mergers and the text decoder,
// laid out so that named_parameters() yields exactly the Hugging Face checkpoint keys
// ("model.visual.blocks.0.attn.qkv.weight", ...). Parameters are created uninitialised; loading or
// init_random() fills them. Math follows docs/qwen3_vl_spec.md sections 3-4. The public entry
// point is Qwen3VL (qwen3vl.h); these classes are exposed for tests and parameter access.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "coordexp/model/attention.h"
#include "coordexp/model/config.h"
#include "coordexp/model/kv_cache.h"

namespace coordexp::model {

// Named intermediate tensors recorded for parity tests and debugging (e.g. "vision_block_0").
using Trace = std::map<std::string, torch::Tensor>;

struct LinearAdapter;  // adapter.h

// A parameter holder: `weight` (any shape) and an optional `bias`; used for linear maps, norms, the
// embedding table and the patch projection alike.
class WeightBiasImpl : public torch::nn::Module {
 public:
  WeightBiasImpl(const std::vector<int64_t>& weight_shape, bool with_bias, const torch::TensorOptions& options);
  torch::Tensor weight, bias;
  std::shared_ptr<LinearAdapter> adapter;  // LoRA/DoRA of a linear map (attach_adapters), or null
};
TORCH_MODULE(WeightBias);

// Tensor math shared by the blocks. Weights are cast to the input's dtype unless autocast is on
// (bf16 parameters on CPU still compute in float32).
torch::Tensor cast_weight(const torch::Tensor& w, const torch::Tensor& x);
torch::Tensor linear(const torch::Tensor& x, const WeightBias& p);  // through p's adapter when attached
torch::Tensor layer_norm(const torch::Tensor& x, const WeightBias& p, double eps);
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

class VisionBlockImpl : public torch::nn::Module {
 public:
  VisionBlockImpl(const VisionConfig& c, const torch::TensorOptions& options);
  // x [Np, Dv]; cos/sin [Np, hdv]; cu: per-frame segment boundaries. kChunked attends query chunks
  // of each frame (never [nh, n, n] at once); eager and sdpa use the eager per-frame softmax.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const std::vector<int64_t>& cu, AttentionKind attention = AttentionKind::kEager);
  WeightBias norm1{nullptr}, norm2{nullptr}, qkv{nullptr}, proj{nullptr}, fc1{nullptr}, fc2{nullptr};

 private:
  int64_t num_heads_, head_dim_;
};
TORCH_MODULE(VisionBlock);

// Patch merger: LayerNorm before (main merger) or after (DeepStack) the m x m concatenation, then
// fc1 -> exact GELU -> fc2.
class PatchMergerImpl : public torch::nn::Module {
 public:
  PatchMergerImpl(const VisionConfig& c, bool postshuffle_norm, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // [Np, Dv] -> [Np / m^2, Dout]
  WeightBias norm{nullptr}, fc1{nullptr}, fc2{nullptr};

 private:
  bool postshuffle_norm_;
  int64_t merged_dim_;
};
TORCH_MODULE(PatchMerger);

// Output of the vision tower, reusable across several decoder forwards of the same images.
struct VisionFeatures {
  torch::Tensor image_embeds;            // [Nv, H]: rows in <|image_pad|> order
  std::vector<torch::Tensor> deepstack;  // one [Nv, H] per DeepStack level
  torch::Tensor grid_thw;                // int64 [num_images, 3] (CPU)
  int64_t num_tokens() const { return image_embeds.defined() ? image_embeds.size(0) : 0; }
};

class VisionTowerImpl : public torch::nn::Module {
 public:
  VisionTowerImpl(const VisionConfig& c, const torch::TensorOptions& options);
  // pixel_values [Np, C*tp*p*p] (any float dtype; computed in `compute`), grid_thw int64 [N, 3].
  VisionFeatures forward(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw,
                         torch::ScalarType compute, Trace* trace = nullptr);
  bool gradient_checkpointing = false;
  AttentionKind attention = AttentionKind::kEager;  // passed to every block
  WeightBias patch_proj{nullptr}, pos_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr}, deepstack_mergers{nullptr};
  PatchMerger merger{nullptr};

 private:
  VisionConfig config_;
};
TORCH_MODULE(VisionTower);

// Attention geometry of one decoder forward: the mask (compact, and dense where the kernel needs it)
// and, with a cache, where the block's keys go. Without a cache keys are the block itself, or a
// reused prefix followed by the block.
struct AttentionPlan {
  AttentionKind kind = AttentionKind::kEager;
  AttentionMask mask;                // causal, key validity, the block's first query slot per row
  torch::Tensor bias;                // [B or 1, 1, T, K] of `mask`; eager and sdpa only
  bool causal_only = false;          // mask is plain causal over the block itself (sdpa's is_causal)
  KvCache* cache = nullptr;
  const KvCache::Append* append = nullptr;
  const PrefixKv* prefix = nullptr;  // keys = prefix keys ++ block keys (K = prefix->length + T)
  PrefixKv* capture = nullptr;       // store views of the block's first capture->length keys/values
};

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const TextConfig& c, const torch::TensorOptions& options);
  // h [B, T, H]; cos/sin [B, T, hd].
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                        const AttentionPlan& plan, int64_t layer_index);
  WeightBias input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  WeightBias q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr}, q_norm{nullptr}, k_norm{nullptr};
  WeightBias gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  int64_t num_heads_, num_kv_heads_, head_dim_;
  double eps_;
};
TORCH_MODULE(DecoderLayer);

class TextModelImpl : public torch::nn::Module {
 public:
  TextModelImpl(const TextConfig& c, const torch::TensorOptions& options);
  // Decoder stack + final norm. visual_mask: bool [B, T] of image positions (undefined = none);
  // deepstack[l] is added at those positions after layer l. Returns the normed hidden states.
  torch::Tensor forward(const torch::Tensor& inputs_embeds, const torch::Tensor& cos, const torch::Tensor& sin,
                        const AttentionPlan& plan, const torch::Tensor& visual_mask,
                        const std::vector<torch::Tensor>& deepstack, Trace* trace = nullptr);
  bool gradient_checkpointing = false;
  WeightBias embed_tokens{nullptr}, norm{nullptr};
  torch::nn::ModuleList layers{nullptr};

 private:
  double eps_;
};
TORCH_MODULE(TextModel);

// Root: "model.visual", "model.language_model" and (untied only) "lm_head".
class Qwen3VLModuleImpl : public torch::nn::Module {
 public:
  Qwen3VLModuleImpl(const Qwen3VLConfig& c, const torch::TensorOptions& options);
  const torch::Tensor& lm_head_weight() const;  // lm_head.weight, or embed_tokens.weight when tied
  VisionTower visual{nullptr};
  TextModel language_model{nullptr};
  WeightBias lm_head{nullptr};  // null when tied
};
TORCH_MODULE(Qwen3VLModule);

}  // namespace coordexp::model
