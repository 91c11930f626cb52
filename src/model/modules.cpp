// Qwen3-VL vision tower, mergers and text decoder (see modules.h). Operation order mirrors HF
// transformers' modeling_qwen3_vl.py so float32 results agree to rounding: softmax and rotary in
// float32, RMSNorm statistics in float32, LayerNorm eps 1e-6, tanh GELU in the ViT MLP and exact
// GELU in the mergers, q_norm/k_norm before rotary, DeepStack added after decoder layers 0..k-1.
#include "coordexp/model/modules.h"

#include <cmath>
#include <string>

#include "coordexp/model/adapter.h"
#include "coordexp/model/autocast.h"
#include "coordexp/model/checkpointing.h"
#include "coordexp/model/rope.h"
#include "coordexp/util/error.h"

namespace coordexp::model {
namespace {

using torch::indexing::Slice;

// Softmax, norms and rotary run in float32 for float32/bf16/fp16 activations and stay float64 for
// float64 ones (used by gradient checks).
torch::ScalarType upcast_type(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

constexpr double kVisionNormEps = 1e-6;  // hard-coded in HF, not in config.json

// A named child that only groups parameters (HF's "attn", "mlp", "self_attn", "patch_embed").
std::shared_ptr<torch::nn::Module> group(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

}  // namespace

// Parameters may be stored in bf16 while CPU computes float32; under autocast the ops cast.
torch::Tensor cast_weight(const torch::Tensor& w, const torch::Tensor& x) {
  if (!w.defined() || w.scalar_type() == x.scalar_type() || autocast_active()) return w;
  return w.to(x.scalar_type());
}

WeightBiasImpl::WeightBiasImpl(const std::vector<int64_t>& weight_shape, bool with_bias,
                               const torch::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty(weight_shape, options));
  if (with_bias) bias = register_parameter("bias", torch::empty({weight_shape[0]}, options));
}

torch::Tensor linear(const torch::Tensor& x, const WeightBias& p) {
  if (p->adapter)
    return adapted_linear(x, p->weight, p->bias, *p->adapter, p->is_training() && torch::GradMode::is_enabled());
  return torch::linear(x, cast_weight(p->weight, x), cast_weight(p->bias, x));
}

torch::Tensor layer_norm(const torch::Tensor& x, const WeightBias& p, double eps) {
  return torch::layer_norm(x, {x.size(-1)}, cast_weight(p->weight, x), cast_weight(p->bias, x), eps);
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto xf = x.to(upcast_type(x));
  auto var = xf.pow(2).mean(-1, /*keepdim=*/true);
  auto normed = (xf * torch::rsqrt(var + eps)).to(x.scalar_type());
  return cast_weight(weight, normed) * normed;
}

// ------------------------------------------------------------------------------------ vision

VisionBlockImpl::VisionBlockImpl(const VisionConfig& c, const torch::TensorOptions& o)
    : num_heads_(c.num_heads), head_dim_(c.head_dim()) {
  const int64_t D = c.hidden_size, I = c.intermediate_size;
  norm1 = register_module("norm1", WeightBias(std::vector<int64_t>{D}, true, o));
  norm2 = register_module("norm2", WeightBias(std::vector<int64_t>{D}, true, o));
  auto attn = group(*this, "attn");
  qkv = attn->register_module("qkv", WeightBias(std::vector<int64_t>{3 * D, D}, true, o));
  proj = attn->register_module("proj", WeightBias(std::vector<int64_t>{D, D}, true, o));
  auto mlp = group(*this, "mlp");
  fc1 = mlp->register_module("linear_fc1", WeightBias(std::vector<int64_t>{I, D}, true, o));
  fc2 = mlp->register_module("linear_fc2", WeightBias(std::vector<int64_t>{D, I}, true, o));
}

torch::Tensor VisionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                       const torch::Tensor& sin, const std::vector<int64_t>& cu,
                                       AttentionKind attention) {
  const int64_t N = x.size(0);
  auto a = layer_norm(x, norm1, kVisionNormEps);
  auto qkv_ = linear(a, qkv).view({N, 3, num_heads_, head_dim_}).permute({1, 0, 2, 3});
  auto c = cos.unsqueeze(-2), s = sin.unsqueeze(-2);
  auto q = apply_rotary(qkv_[0].to(upcast_type(x)), c, s).to(x.scalar_type()).transpose(0, 1);  // [nh, N, hd]
  auto k = apply_rotary(qkv_[1].to(upcast_type(x)), c, s).to(x.scalar_type()).transpose(0, 1);
  auto v = qkv_[2].transpose(0, 1);
  const double scale = std::pow(static_cast<double>(head_dim_), -0.5);
  std::vector<torch::Tensor> outs;
  for (size_t i = 0; i + 1 < cu.size(); ++i) {
    // Bidirectional attention inside one image frame only.
    auto seg = Slice(cu[i], cu[i + 1]);
    auto qs = q.index({Slice(), seg}), ks = k.index({Slice(), seg}), vs = v.index({Slice(), seg});
    if (attention == AttentionKind::kChunked) {  // a 4096-patch frame would need [nh, 4096, 4096] floats
      const auto none = AttentionMask::unmasked();
      outs.push_back(chunked_attention(qs.unsqueeze(0), ks.unsqueeze(0), vs.unsqueeze(0), none, scale).squeeze(0));
      continue;
    }
    auto probs = torch::softmax(torch::matmul(qs, ks.transpose(-1, -2)) * scale, -1, upcast_type(q))
                     .to(q.scalar_type());
    outs.push_back(torch::matmul(probs, vs));
  }
  auto o = (outs.size() == 1 ? outs[0] : torch::cat(outs, 1)).transpose(0, 1).reshape({N, -1});
  auto h = x + linear(o, proj);
  auto b = layer_norm(h, norm2, kVisionNormEps);
  return h + linear(torch::gelu(linear(b, fc1), "tanh"), fc2);
}

PatchMergerImpl::PatchMergerImpl(const VisionConfig& c, bool postshuffle_norm, const torch::TensorOptions& o)
    : postshuffle_norm_(postshuffle_norm), merged_dim_(c.merged_dim()) {
  const int64_t norm_dim = postshuffle_norm ? merged_dim_ : c.hidden_size;
  norm = register_module("norm", WeightBias(std::vector<int64_t>{norm_dim}, true, o));
  fc1 = register_module("linear_fc1", WeightBias(std::vector<int64_t>{merged_dim_, merged_dim_}, true, o));
  fc2 = register_module("linear_fc2", WeightBias(std::vector<int64_t>{c.out_hidden_size, merged_dim_}, true, o));
}

torch::Tensor PatchMergerImpl::forward(const torch::Tensor& x) {
  auto z = postshuffle_norm_ ? layer_norm(x.reshape({-1, merged_dim_}), norm, kVisionNormEps)
                             : layer_norm(x, norm, kVisionNormEps).reshape({-1, merged_dim_});
  return linear(torch::gelu(linear(z, fc1)), fc2);
}

VisionTowerImpl::VisionTowerImpl(const VisionConfig& c, const torch::TensorOptions& o) : config_(c) {
  auto patch_embed = group(*this, "patch_embed");
  patch_proj = patch_embed->register_module(
      "proj", WeightBias(std::vector<int64_t>{c.hidden_size, c.in_channels, c.temporal_patch_size, c.patch_size,
                                              c.patch_size},
                         true, o));
  pos_embed = register_module("pos_embed", WeightBias(std::vector<int64_t>{c.num_position_embeddings, c.hidden_size}, false, o));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.depth; ++i) blocks->push_back(VisionBlock(c, o));
  merger = register_module("merger", PatchMerger(c, false, o));
  deepstack_mergers = register_module("deepstack_merger_list", torch::nn::ModuleList());
  for (size_t k = 0; k < c.deepstack_visual_indexes.size(); ++k) deepstack_mergers->push_back(PatchMerger(c, true, o));
}

VisionFeatures VisionTowerImpl::forward(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw,
                                        torch::ScalarType compute, Trace* trace) {
  const auto& c = config_;
  auto grid = grid_thw.to(torch::kCPU, torch::kLong).contiguous();
  if (grid.dim() != 2 || grid.size(1) != 3)
    throw DataError("image_grid_thw must have shape [num_images, 3]", "image_grid_thw");
  const int64_t num_patches = (grid.select(1, 0) * grid.select(1, 1) * grid.select(1, 2)).sum().item<int64_t>();
  if (pixel_values.dim() != 2 || pixel_values.size(0) != num_patches || pixel_values.size(1) != c.patch_dim())
    throw DataError("pixel_values has shape " + c10::str(pixel_values.sizes()) + " but image_grid_thw needs [" +
                        std::to_string(num_patches) + ", " + std::to_string(c.patch_dim()) + "]",
                    "pixel_values");
  auto record = [&](const std::string& name, const torch::Tensor& t) {
    if (trace) (*trace)[name] = t.detach();
  };
  const auto device = patch_proj->weight.device();
  auto x = pixel_values.to(device, compute);
  // Conv3d with kernel == stride == the whole patch is a linear map over the flattened patch.
  x = torch::linear(x, cast_weight(patch_proj->weight.view({c.hidden_size, -1}), x), cast_weight(patch_proj->bias, x));
  record("vision_patch_embeds", x);
  auto pos = interpolate_pos_embed(cast_weight(pos_embed->weight, x), grid, c.pos_grid_side(), c.spatial_merge_size);
  record("vision_pos_embeds", pos);
  x = x + pos;
  auto [cos, sin] = vision_rope_cos_sin(grid, c.head_dim(), c.spatial_merge_size);
  cos = cos.to(device);
  sin = sin.to(device);
  record("vision_rope_cos", cos);
  record("vision_rope_sin", sin);
  const std::vector<int64_t> cu = vision_cu_seqlens(grid);

  VisionFeatures out;
  size_t next_tap = 0;
  for (int64_t i = 0; i < c.depth; ++i) {
    auto block = blocks->ptr<VisionBlockImpl>(i);
    if (gradient_checkpointing) {
      x = checkpointed([block, cos = cos, sin = sin, cu, kind = attention](const torch::Tensor& in) {
            return block->forward(in, cos, sin, cu, kind);
          }, x, block->parameters());
    } else {
      x = block->forward(x, cos, sin, cu, attention);
    }
    record("vision_block_" + std::to_string(i), x);
    if (next_tap < c.deepstack_visual_indexes.size() && c.deepstack_visual_indexes[next_tap] == i) {
      out.deepstack.push_back(deepstack_mergers->ptr<PatchMergerImpl>(next_tap)->forward(x));
      record("deepstack_" + std::to_string(next_tap), out.deepstack.back());
      ++next_tap;
    }
  }
  out.image_embeds = merger->forward(x);
  record("image_embeds", out.image_embeds);
  out.grid_thw = grid;
  return out;
}

// ------------------------------------------------------------------------------------ text

DecoderLayerImpl::DecoderLayerImpl(const TextConfig& c, const torch::TensorOptions& o)
    : num_heads_(c.num_attention_heads), num_kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim),
      eps_(c.rms_norm_eps) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, hd = c.head_dim;
  input_layernorm = register_module("input_layernorm", WeightBias(std::vector<int64_t>{H}, false, o));
  auto attn = group(*this, "self_attn");
  q_proj = attn->register_module("q_proj", WeightBias(std::vector<int64_t>{num_heads_ * hd, H}, false, o));
  k_proj = attn->register_module("k_proj", WeightBias(std::vector<int64_t>{num_kv_heads_ * hd, H}, false, o));
  v_proj = attn->register_module("v_proj", WeightBias(std::vector<int64_t>{num_kv_heads_ * hd, H}, false, o));
  o_proj = attn->register_module("o_proj", WeightBias(std::vector<int64_t>{H, num_heads_ * hd}, false, o));
  q_norm = attn->register_module("q_norm", WeightBias(std::vector<int64_t>{hd}, false, o));
  k_norm = attn->register_module("k_norm", WeightBias(std::vector<int64_t>{hd}, false, o));
  post_attention_layernorm = register_module("post_attention_layernorm", WeightBias(std::vector<int64_t>{H}, false, o));
  auto mlp = group(*this, "mlp");
  gate_proj = mlp->register_module("gate_proj", WeightBias(std::vector<int64_t>{I, H}, false, o));
  up_proj = mlp->register_module("up_proj", WeightBias(std::vector<int64_t>{I, H}, false, o));
  down_proj = mlp->register_module("down_proj", WeightBias(std::vector<int64_t>{H, I}, false, o));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                                        const AttentionPlan& plan, int64_t layer_index) {
  const int64_t B = h.size(0), T = h.size(1);
  auto x = rms_norm(h, input_layernorm->weight, eps_);
  auto q = rms_norm(linear(x, q_proj).view({B, T, num_heads_, head_dim_}), q_norm->weight, eps_).transpose(1, 2);
  auto k = rms_norm(linear(x, k_proj).view({B, T, num_kv_heads_, head_dim_}), k_norm->weight, eps_).transpose(1, 2);
  auto v = linear(x, v_proj).view({B, T, num_kv_heads_, head_dim_}).transpose(1, 2);
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);  // [B, 1, T, hd]
  q = apply_rotary(q, c, s);
  k = apply_rotary(k, c, s);
  if (plan.cache) {
    plan.cache->write(layer_index, *plan.append, k, v);
    k = plan.cache->keys(layer_index, plan.append->key_len);
    v = plan.cache->values(layer_index, plan.append->key_len);
  }
  if (plan.capture) {  // views: attention's backward keeps k and v alive anyway
    plan.capture->keys.at(layer_index) = k.narrow(2, 0, plan.capture->length);
    plan.capture->values.at(layer_index) = v.narrow(2, 0, plan.capture->length);
  }
  if (plan.prefix) {
    k = torch::cat({plan.prefix->keys.at(layer_index).to(k.scalar_type()), k}, 2);
    v = torch::cat({plan.prefix->values.at(layer_index).to(v.scalar_type()), v}, 2);
  }
  const double scale = std::pow(static_cast<double>(head_dim_), -0.5);
  torch::Tensor o;
  switch (plan.kind) {
    case AttentionKind::kChunked: o = chunked_attention(q, k, v, plan.mask, scale); break;
    case AttentionKind::kSdpa: o = sdpa_attention(q, k, v, plan.bias, plan.causal_only); break;
    case AttentionKind::kEager: o = eager_attention(q, k, v, plan.bias, scale); break;
  }
  auto r = h + linear(o.transpose(1, 2).reshape({B, T, num_heads_ * head_dim_}), o_proj);
  auto y = rms_norm(r, post_attention_layernorm->weight, eps_);
  return r + linear(torch::silu(linear(y, gate_proj)) * linear(y, up_proj), down_proj);
}

TextModelImpl::TextModelImpl(const TextConfig& c, const torch::TensorOptions& o) : eps_(c.rms_norm_eps) {
  embed_tokens = register_module("embed_tokens", WeightBias(std::vector<int64_t>{c.vocab_size, c.hidden_size}, false, o));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c, o));
  norm = register_module("norm", WeightBias(std::vector<int64_t>{c.hidden_size}, false, o));
}

torch::Tensor TextModelImpl::forward(const torch::Tensor& inputs_embeds, const torch::Tensor& cos,
                                     const torch::Tensor& sin, const AttentionPlan& plan,
                                     const torch::Tensor& visual_mask, const std::vector<torch::Tensor>& deepstack,
                                     Trace* trace) {
  auto h = inputs_embeds;
  const bool checkpoint = gradient_checkpointing && plan.cache == nullptr;
  // A checkpointed layer records no graph for captured keys and routes no gradient into reused ones.
  COORDEXP_CHECK(!(checkpoint && torch::GradMode::is_enabled() && (plan.prefix || plan.capture)),
                 "prefix keys/values cannot be captured or reused under text-layer gradient checkpointing");
  for (size_t i = 0; i < layers->size(); ++i) {
    auto layer = layers->ptr<DecoderLayerImpl>(i);
    const int64_t li = static_cast<int64_t>(i);
    if (checkpoint) {
      h = checkpointed([layer, cos, sin, plan, li](const torch::Tensor& in) { return layer->forward(in, cos, sin, plan, li); },
                       h, layer->parameters());
    } else {
      h = layer->forward(h, cos, sin, plan, li);
    }
    if (visual_mask.defined() && i < deepstack.size())
      h = h.index_put({visual_mask}, h.index({visual_mask}) + deepstack[i].to(h.scalar_type()));
    if (trace) (*trace)["text_layer_" + std::to_string(i)] = h.detach();
  }
  return rms_norm(h, norm->weight, eps_);
}

Qwen3VLModuleImpl::Qwen3VLModuleImpl(const Qwen3VLConfig& c, const torch::TensorOptions& o) {
  auto model = group(*this, "model");
  visual = model->register_module("visual", VisionTower(c.vision, o));
  language_model = model->register_module("language_model", TextModel(c.text, o));
  if (!c.tie_word_embeddings)
    lm_head = register_module("lm_head", WeightBias(std::vector<int64_t>{c.text.vocab_size, c.text.hidden_size}, false, o));
}

const torch::Tensor& Qwen3VLModuleImpl::lm_head_weight() const {
  return lm_head ? lm_head->weight : language_model->embed_tokens->weight;
}

}  // namespace coordexp::model
