// LoRA / DoRA adapters on the linear maps of Qwen3-VL and the coord-offset table, as PEFT defines
// them (peft/tuners/lora/layer.py, dora.py, variants.py): the math as pure functions, the state of one
// adapted linear map (LinearAdapter, held by the WeightBias it adapts, its tensors registered there
// under PEFT's names), target resolution and attaching to a model. The file layout is adapter_files.h;
// merging adapters into the base weights is adapter_merge.h. No optimizer or checkpoint policy here.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "coordexp/config/sections/adapter.h"
#include "coordexp/model/adapter_files.h"
#include "coordexp/model/config.h"

namespace coordexp::model {

class Qwen3VL;

// ------------------------------------------------------------------------------------ math
// x [..., in]; W [out, in] and bias [out] (or undefined) already in x's dtype; A [r, in], B [out, r];
// s = alpha / r. Dropout, where it applies, is the caller's: x_lora is the (possibly dropped) input of
// the A branch, x the input of the base term.

// s * B(A(x_lora)) in PEFT's order: lora_B(lora_A(x)) * scaling.
torch::Tensor lora_delta(const torch::Tensor& x_lora, const torch::Tensor& A, const torch::Tensor& B, double s);
// LoRA: x W^T + bias + s * x_lora A^T B^T (the base term first, like PEFT: result + delta).
torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& x_lora, const torch::Tensor& W,
                          const torch::Tensor& bias, const torch::Tensor& A, const torch::Tensor& B, double s);
// ||W + s * B A||_2 of every output row [out], computed in W's dtype and DETACHED (DoRA paper 4.3:
// the norm is a constant for the gradient). The initial DoRA magnitude is this norm with B = 0.
torch::Tensor dora_row_norm(const torch::Tensor& W, const torch::Tensor& A, const torch::Tensor& B, double s);
// DoRA exactly as PEFT computes it: with g = m / ||W + s B A||_row (detached norm),
//   result = x W^T + bias;  base = x_lora W^T (= result - bias when x_lora is x, i.e. no dropout)
//   y = result + (g - 1) * base + g * s * x_lora A^T B^T
// which is bias + g * (x W^T + s x A^T B^T) without dropout, and exactly `result` while B = 0 and m
// holds the row norms of W (step 0 equals the base model bit for bit).
torch::Tensor dora_linear(const torch::Tensor& x, const torch::Tensor& x_lora, const torch::Tensor& W,
                          const torch::Tensor& bias, const torch::Tensor& A, const torch::Tensor& B,
                          const torch::Tensor& m, double s);

// The state of one adapted linear map. The tensors are parameters registered on the WeightBias they
// adapt ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector"), so the module tree (gradient
// checkpointing, devices) sees them; Qwen3VL::named_parameters() leaves them out (base keys only).
struct LinearAdapter {
  AdapterKind kind = AdapterKind::kLora;
  double scale = 2.0;    // alpha / r
  double dropout = 0.0;  // on the A branch's input, in training forwards only
  torch::Tensor lora_A;     // [r, in]
  torch::Tensor lora_B;     // [out, r]
  torch::Tensor magnitude;  // [out], DoRA only
};

// The adapted map y = f(x) for base weights W / bias (any dtype; cast to x's like linear()).
// `training`: dropout applies (the module is in training mode and autograd records).
torch::Tensor adapted_linear(const torch::Tensor& x, const torch::Tensor& W, const torch::Tensor& bias,
                             const LinearAdapter& adapter, bool training);

// Coord offset: rows of `table` [1000, H] for the coord ids among `ids` (id - first_id), zero rows
// for every other id: [..., H] in the table's dtype, added to the token embeddings.
torch::Tensor coord_offset_embedding(const torch::Tensor& table, const torch::Tensor& ids, int64_t first_id);
// W [V, H] with `table` added to rows [first_id, first_id + 1000) (a new tensor; W is not changed).
torch::Tensor add_coord_rows(const torch::Tensor& W, const torch::Tensor& table, int64_t first_id);

// ------------------------------------------------------------------------------------ targets

// Hugging Face module paths of every linear map of the model, sorted: the ViT blocks' attn.qkv /
// attn.proj / mlp.linear_fc1 / linear_fc2, the mergers' linear_fc1 / fc2 and the decoder's q/k/v/o and
// gate/up/down projections. Like PEFT's "all-linear": not lm_head; the patch embedding is a Conv3d.
std::vector<std::string> linear_module_paths(const Qwen3VLConfig& config);
// "vision" | "merger" | "language_model": the part of the model a module path belongs to.
std::string model_part_of(const std::string& module_path);
// The module paths adapter.targets selects (all-linear, or `*` patterns matched against the whole
// path or a dotted suffix), minus the frozen parts. Throws ConfigError naming adapter.targets for a
// pattern that matches no linear map, and when nothing is selected.
std::vector<std::string> resolve_adapter_targets(const Qwen3VLConfig& config, const config::AdapterOptions& options);
// The spec a run with these options trains (concrete modules, coord rows at coord_first_id).
AdapterSpec adapter_spec_from_options(const config::AdapterOptions& options, const Qwen3VLConfig& config,
                                      int64_t coord_first_id, const std::string& base_model_path);
// Whether two specs describe the same trainable structure (kind, rank, alpha, dropout, modules,
// offset); `difference` gets the first mismatch in words.
bool same_adapter_structure(const AdapterSpec& a, const AdapterSpec& b, std::string* difference);

// ------------------------------------------------------------------------------------ model

// Attaches `spec` to `model`: LoRA/DoRA on spec.target_modules (A ~ U(-1/sqrt(in), 1/sqrt(in)), PEFT's
// kaiming_uniform_(a=sqrt(5)), drawn from a CPU generator seeded with `seed` in module order; B = 0;
// DoRA m = row norms of W) and zero coord-offset table(s). Adapter tensors are float32 (float64 for a
// float64 model) on the model's device; every base parameter gets requires_grad(false). Throws
// InternalError when adapters are already attached or a module is not a linear map.
void attach_adapters(Qwen3VL& model, const AdapterSpec& spec, uint64_t seed);
// The attached tensors (the live parameters, not copies) in adapter_files.h's layout.
AdapterTensors adapter_tensors(const Qwen3VL& model);
// Copies `tensors` into the attached adapters. Throws FormatError naming `where` and the tensor for
// a missing, extra or mis-shaped tensor.
void load_adapter_tensors(Qwen3VL& model, const AdapterTensors& tensors, const std::string& where);

// Names of the adapter parameters in Qwen3VL::adapter_parameters(): "<module>.lora_A.weight",
// "<module>.lora_B.weight", "<module>.lora_magnitude_vector" (PEFT's keys without "base_model.model."),
// "coord_offset.embed_tokens" and (untied) "coord_offset.lm_head".
inline constexpr const char* kCoordOffsetEmbedKey = "coord_offset.embed_tokens";
inline constexpr const char* kCoordOffsetHeadKey = "coord_offset.lm_head";
bool is_adapter_parameter_key(const std::string& key);

}  // namespace coordexp::model
