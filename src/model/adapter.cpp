// LoRA / DoRA math and state on Qwen3-VL's linear maps, the coord-offset helpers, target resolution
// and attaching adapters to a model (adapter.h). Mirrors PEFT's LoraLayer / DoraLinearLayer forward
// (the order of operations included, so step 0 is the base model bit for bit). File I/O is
// adapter_files.cpp.
#include "coordexp/model/adapter.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "coordexp/model/modules.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/util/error.h"

namespace coordexp::model {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// A same-dtype view or cast of an adapter tensor for the input (autocast casts by itself).
torch::Tensor as_input_dtype(const torch::Tensor& t, const torch::Tensor& x) { return cast_weight(t, x); }

// `*` matches any run of characters (dots included); everything else is literal. The pattern
// matches the whole path or a suffix that starts after a dot.
std::regex glob_regex(const std::string& pattern) {
  std::string re = "(^|.*\\.)";
  for (char c : pattern) {
    if (c == '*') re += ".*";
    else if (std::string("\\^$.|?+()[]{}").find(c) != std::string::npos) re += std::string("\\") + c;
    else re += c;
  }
  return std::regex(re + "$");
}

const char* const kAllLinear = "all-linear";

// The WeightBias at `path` in the module tree (null when there is none).
std::shared_ptr<WeightBiasImpl> find_linear(const Qwen3VLModule& module, const std::string& path) {
  for (const auto& item : module->named_modules("", /*include_self=*/false))
    if (item.key() == path) return std::dynamic_pointer_cast<WeightBiasImpl>(item.value());
  return nullptr;
}

}  // namespace

// ------------------------------------------------------------------------------------ math

torch::Tensor lora_delta(const torch::Tensor& x_lora, const torch::Tensor& A, const torch::Tensor& B, double s) {
  return torch::linear(torch::linear(x_lora, A), B) * s;
}

torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& x_lora, const torch::Tensor& W,
                          const torch::Tensor& bias, const torch::Tensor& A, const torch::Tensor& B, double s) {
  return torch::linear(x, W, bias) + lora_delta(x_lora, A, B, s);
}

torch::Tensor dora_row_norm(const torch::Tensor& W, const torch::Tensor& A, const torch::Tensor& B, double s) {
  torch::NoGradGuard no_grad;  // PEFT detaches the norm (and the lora weight inside it)
  const torch::Tensor lora_weight = torch::matmul(B, A).to(W.scalar_type());
  return at::linalg_vector_norm(W + s * lora_weight, 2, c10::IntArrayRef{1}, false, c10::nullopt)
      .to(W.scalar_type());
}

torch::Tensor dora_linear(const torch::Tensor& x, const torch::Tensor& x_lora, const torch::Tensor& W,
                          const torch::Tensor& bias, const torch::Tensor& A, const torch::Tensor& B,
                          const torch::Tensor& m, double s) {
  const torch::Tensor result = torch::linear(x, W, bias);
  const torch::Tensor norm = dora_row_norm(W, A, B, s);
  const torch::Tensor g = (m / norm).view({1, -1});
  // PEFT: without dropout the base term is `result - bias` (no second matmul); with dropout it is
  // the dropped input through W.
  torch::Tensor base;
  if (x_lora.is_same(x)) base = bias.defined() ? result - bias : result;
  else base = torch::linear(x_lora, W);
  const torch::Tensor lora_result = torch::linear(torch::linear(x_lora, A), B);
  return result + ((g - 1) * base + g * lora_result * s);
}

torch::Tensor adapted_linear(const torch::Tensor& x, const torch::Tensor& W_param, const torch::Tensor& bias_param,
                             const LinearAdapter& a, bool training) {
  const torch::Tensor W = cast_weight(W_param, x), bias = cast_weight(bias_param, x);
  const torch::Tensor A = as_input_dtype(a.lora_A, x), B = as_input_dtype(a.lora_B, x);
  const torch::Tensor x_lora = training && a.dropout > 0.0 ? torch::dropout(x, a.dropout, /*train=*/true) : x;
  if (a.kind == AdapterKind::kDora)
    return dora_linear(x, x_lora, W, bias, A, B, as_input_dtype(a.magnitude, x), a.scale);
  return lora_linear(x, x_lora, W, bias, A, B, a.scale);
}

torch::Tensor coord_offset_embedding(const torch::Tensor& table, const torch::Tensor& ids, int64_t first_id) {
  const int64_t n = table.size(0);
  const torch::Tensor rel = ids - first_id;
  const torch::Tensor inside = rel.ge(0).logical_and(rel.lt(n));
  return torch::embedding(table, rel.clamp(0, n - 1)) * inside.unsqueeze(-1).to(table.scalar_type());
}

torch::Tensor add_coord_rows(const torch::Tensor& W, const torch::Tensor& table, int64_t first_id) {
  const int64_t n = table.size(0), V = W.size(0);
  COORDEXP_CHECK(first_id >= 0 && first_id + n <= V, "coord rows " << first_id << "+" << n << " outside " << V << " rows");
  const torch::Tensor rows = W.narrow(0, first_id, n) + table.to(W.scalar_type());
  return torch::cat({W.narrow(0, 0, first_id), rows, W.narrow(0, first_id + n, V - first_id - n)}, 0);
}

// ------------------------------------------------------------------------------------ targets

std::vector<std::string> linear_module_paths(const Qwen3VLConfig& c) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < c.vision.depth; ++i) {
    const std::string b = "model.visual.blocks." + std::to_string(i) + ".";
    for (const char* n : {"attn.qkv", "attn.proj", "mlp.linear_fc1", "mlp.linear_fc2"}) out.push_back(b + n);
  }
  auto merger = [&](const std::string& p) {
    out.push_back(p + "linear_fc1");
    out.push_back(p + "linear_fc2");
  };
  merger("model.visual.merger.");
  for (size_t k = 0; k < c.vision.deepstack_visual_indexes.size(); ++k)
    merger("model.visual.deepstack_merger_list." + std::to_string(k) + ".");
  for (int64_t i = 0; i < c.text.num_hidden_layers; ++i) {
    const std::string l = "model.language_model.layers." + std::to_string(i) + ".";
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
      out.push_back(l + n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string model_part_of(const std::string& path) {
  if (starts_with(path, "model.visual.merger.") || starts_with(path, "model.visual.deepstack_merger_list."))
    return "merger";
  if (starts_with(path, "model.visual.")) return "vision";
  if (starts_with(path, "model.language_model.")) return "language_model";
  COORDEXP_CHECK(false, "module '" << path << "' belongs to no model part");
  return "";
}

std::vector<std::string> resolve_adapter_targets(const Qwen3VLConfig& config, const config::AdapterOptions& o) {
  const std::vector<std::string> all = linear_module_paths(config);
  std::set<std::string> picked;
  for (const auto& pattern : o.targets) {
    if (pattern == kAllLinear) {
      picked.insert(all.begin(), all.end());
      continue;
    }
    const std::regex re = glob_regex(pattern);
    size_t hits = 0;
    for (const auto& path : all)
      if (std::regex_match(path, re)) {
        picked.insert(path);
        ++hits;
      }
    if (hits == 0)
      throw ConfigError("adapter.targets pattern '" + pattern + "' matches no linear map of the model",
                        "adapter.targets",
                        "use all-linear or a module path (pattern) such as language_model.*.q_proj, "
                        "visual.blocks.*.attn.qkv or merger.linear_fc1 (docs/adapters.md lists them)");
  }
  std::vector<std::string> out;
  for (const auto& path : picked) {
    const std::string part = model_part_of(path);
    if ((part == "vision" && o.freeze.vision) || (part == "merger" && o.freeze.merger) ||
        (part == "language_model" && o.freeze.language_model))
      continue;
    out.push_back(path);
  }
  if (out.empty())
    throw ConfigError("adapter.targets select no linear map outside the frozen parts (adapter.freeze)",
                      "adapter.targets", "target a part that is not frozen, or set adapter.kind: none");
  return out;
}

AdapterSpec adapter_spec_from_options(const config::AdapterOptions& o, const Qwen3VLConfig& config,
                                      int64_t coord_first_id, const std::string& base_model_path) {
  o.validate();
  AdapterSpec s;
  s.kind = parse_adapter_kind(o.kind, "adapter.kind");
  if (s.kind != AdapterKind::kNone) {
    s.rank = o.rank;
    s.alpha = o.alpha;
    s.dropout = o.dropout;
    s.target_modules = resolve_adapter_targets(config, o);
  }
  s.coord_offset = o.coord_offset;
  s.coord_offset_tied = o.tie_head;
  if (s.coord_offset) {
    if (coord_first_id < 0 || coord_first_id + kCoordOffsetRows > config.text.vocab_size)
      throw ConfigError("adapter.coord_offset needs the coord rows " + std::to_string(coord_first_id) + ".." +
                            std::to_string(coord_first_id + kCoordOffsetRows - 1) + " in the model's " +
                            std::to_string(config.text.vocab_size) + " token rows",
                        "adapter.coord_offset", "add the coord tokens to the model first (coordexp-train expand-vocab)");
    s.coord_first_id = coord_first_id;
  }
  s.base_model_name_or_path = base_model_path;
  return s;
}

bool same_adapter_structure(const AdapterSpec& a, const AdapterSpec& b, std::string* difference) {
  auto differ = [&](const std::string& what) {
    if (difference) *difference = what;
    return false;
  };
  if (a.kind != b.kind) return differ(std::string("kind ") + to_string(a.kind) + " vs " + to_string(b.kind));
  if (a.kind != AdapterKind::kNone) {
    if (a.rank != b.rank) return differ("rank " + std::to_string(a.rank) + " vs " + std::to_string(b.rank));
    if (a.alpha != b.alpha) return differ("alpha " + std::to_string(a.alpha) + " vs " + std::to_string(b.alpha));
    if (a.dropout != b.dropout) return differ("dropout " + std::to_string(a.dropout) + " vs " + std::to_string(b.dropout));
    if (a.target_modules != b.target_modules)
      return differ(std::to_string(a.target_modules.size()) + " vs " + std::to_string(b.target_modules.size()) +
                    " target modules (or other paths)");
  }
  if (a.coord_offset != b.coord_offset) return differ("coord_offset on in one, off in the other");
  if (a.coord_offset && (a.coord_offset_tied != b.coord_offset_tied || a.coord_first_id != b.coord_first_id))
    return differ("coord offset tied/first id");
  return true;
}

// ------------------------------------------------------------------------------------ model

void attach_adapters(Qwen3VL& model, const AdapterSpec& spec, uint64_t seed) {
  COORDEXP_CHECK(!model.has_adapters(), "adapters are already attached");
  const torch::ScalarType dtype = model.runtime().param_dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto options = torch::TensorOptions().dtype(dtype).device(model.runtime().device);
  for (auto& [key, p] : model.named_parameters()) {
    torch::Tensor t = p;
    t.requires_grad_(false);
  }
  auto gen = at::detail::createCPUGenerator(seed);
  for (const auto& path : spec.target_modules) {
    const std::shared_ptr<WeightBiasImpl> lin = find_linear(model.module(), path);
    COORDEXP_CHECK(lin && lin->weight.dim() == 2, "adapter target '" << path << "' is not a linear map of the model");
    COORDEXP_CHECK(!lin->adapter, "module '" << path << "' already has an adapter");
    const int64_t out = lin->weight.size(0), in = lin->weight.size(1);
    auto a = std::make_shared<LinearAdapter>();
    a->kind = spec.kind;
    a->scale = spec.scale();
    a->dropout = spec.dropout;
    // kaiming_uniform_(a=sqrt(5)) on [r, in]: gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / in) = 1 / sqrt(in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    torch::Tensor A = (torch::rand({spec.rank, in}, gen, torch::kDouble) * (2 * bound) - bound).to(options);
    auto holder_A = lin->register_module("lora_A", std::make_shared<torch::nn::Module>());
    a->lora_A = holder_A->register_parameter("weight", A);
    auto holder_B = lin->register_module("lora_B", std::make_shared<torch::nn::Module>());
    a->lora_B = holder_B->register_parameter("weight", torch::zeros({out, spec.rank}, options));
    if (spec.kind == AdapterKind::kDora) {
      // PEFT: the norm of the base weight (+ s * B A = 0) in the dtype the forward computes it in.
      const torch::Tensor W = lin->weight.detach().to(model.compute_dtype());
      const torch::Tensor m = dora_row_norm(W, a->lora_A.detach().to(W.scalar_type()),
                                            a->lora_B.detach().to(W.scalar_type()), a->scale);
      a->magnitude = lin->register_parameter("lora_magnitude_vector", m.to(options).clone());
    }
    lin->adapter = std::move(a);
  }
  Qwen3VL::CoordOffsetTables tables;
  if (spec.coord_offset) {
    const int64_t H = model.config().text.hidden_size;
    tables.embed = torch::zeros({kCoordOffsetRows, H}, options).requires_grad_(true);
    tables.lm_head = spec.coord_offset_tied ? tables.embed : torch::zeros({kCoordOffsetRows, H}, options).requires_grad_(true);
  }
  model.set_adapters(spec, tables);
}

AdapterTensors adapter_tensors(const Qwen3VL& model) {
  AdapterTensors t;
  for (const auto& path : model.adapter_spec().target_modules) {
    const auto lin = find_linear(model.module(), path);
    COORDEXP_CHECK(lin && lin->adapter, "no adapter on '" << path << "'");
    t.lora_A[path] = lin->adapter->lora_A;
    t.lora_B[path] = lin->adapter->lora_B;
    if (lin->adapter->magnitude.defined()) t.magnitude[path] = lin->adapter->magnitude;
  }
  if (model.adapter_spec().coord_offset) {
    t.coord_offset_embed = model.coord_offset().embed;
    if (!model.adapter_spec().coord_offset_tied) t.coord_offset_lm_head = model.coord_offset().lm_head;
  }
  return t;
}

void load_adapter_tensors(Qwen3VL& model, const AdapterTensors& from, const std::string& where) {
  const AdapterTensors to = adapter_tensors(model);
  torch::NoGradGuard no_grad;
  auto copy_map = [&](const std::map<std::string, torch::Tensor>& dst, const std::map<std::string, torch::Tensor>& src,
                      const char* what) {
    for (const auto& [path, t] : src)
      if (!dst.count(path))
        throw FormatError(std::string(what) + " of '" + path + "' has no adapter in this run", where,
                          "the adapter settings (adapter.targets, adapter.freeze) differ from the ones it was written with");
    for (const auto& [path, t] : dst) {
      const auto it = src.find(path);
      if (it == src.end())
        throw FormatError(std::string(what) + " of '" + path + "' is missing", where,
                          "the adapter settings differ from the ones it was written with, or the files are damaged");
      if (it->second.sizes() != t.sizes())
        throw FormatError(std::string(what) + " of '" + path + "' has shape " + c10::str(it->second.sizes()) +
                              ", expected " + c10::str(t.sizes()), where, "the adapter rank or the base model differ");
      torch::Tensor d = t;
      d.copy_(it->second);
    }
  };
  copy_map(to.lora_A, from.lora_A, "lora_A");
  copy_map(to.lora_B, from.lora_B, "lora_B");
  copy_map(to.magnitude, from.magnitude, "lora_magnitude_vector");
  auto copy_one = [&](torch::Tensor dst, const torch::Tensor& src, const char* what) {
    if (dst.defined() != src.defined())
      throw FormatError(std::string(what) + (src.defined() ? " is not used by this run" : " is missing"), where,
                        "adapter.coord_offset / adapter.tie_head differ from the ones it was written with");
    if (!dst.defined()) return;
    if (src.sizes() != dst.sizes())
      throw FormatError(std::string(what) + " has shape " + c10::str(src.sizes()) + ", expected " + c10::str(dst.sizes()),
                        where, "the base model's hidden size differs");
    dst.copy_(src);
  };
  copy_one(to.coord_offset_embed, from.coord_offset_embed, kCoordOffsetEmbedKey);
  copy_one(to.coord_offset_lm_head, from.coord_offset_lm_head, kCoordOffsetHeadKey);
}

bool is_adapter_parameter_key(const std::string& key) {
  return key.find(".lora_A.") != std::string::npos || key.find(".lora_B.") != std::string::npos ||
         key.find(".lora_magnitude_vector") != std::string::npos || starts_with(key, "coord_offset.");
}

}  // namespace coordexp::model
