// Qwen3VL owner: loading/saving, random init, image encoding and the decoder forward with
// embedding scatter, embedding overrides, position ids, attention planning (padding / KV cache)
// and selective logits (see qwen3vl.h); a forward can capture its prefix keys/values or reuse them
// and compute only the tail.
#include "coordexp/model/qwen3vl.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <optional>

#include "coordexp/model/adapter.h"
#include "coordexp/model/autocast.h"
#include "coordexp/model/rope.h"
#include "coordexp/util/device_copy.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "coordexp/util/torch_compat.h"

namespace coordexp::model {
namespace {

// The autocast a forward runs under: bf16 on CUDA (cuda_autocast), bf16 on CPU only when the C++
// API asks for it (cpu_autocast), otherwise none (the scope then leaves the thread's state alone).
std::optional<AutocastState> forward_autocast(const ModelRuntime& r) {
  AutocastState s = AutocastState::current();
  if (r.device.is_cuda() && r.cuda_autocast) {
    s.cuda_enabled = true;
    s.cuda_dtype = torch::kBFloat16;
  } else if (r.device.is_cpu() && r.cpu_autocast) {
    s.cpu_enabled = true;
    s.cpu_dtype = torch::kBFloat16;
  } else {
    return std::nullopt;
  }
  return s;
}

// A reused prefix must fit the forward: no cache, a non-empty tail, one [B, nkv, P, hd] pair per layer.
void check_prefix(const PrefixKv& p, const ForwardInputs& in, int64_t B, int64_t T, const TextConfig& t) {
  if (in.cache) throw DataError("a forward with a KV cache cannot reuse prefix keys/values", "prefix");
  if (p.length < 1 || p.length >= T)
    throw DataError("prefix length " + std::to_string(p.length) + " is outside [1, T) for T = " + std::to_string(T),
                    "prefix", "a prefix leaves at least one position to compute");
  if (static_cast<int64_t>(p.keys.size()) != t.num_hidden_layers ||
      static_cast<int64_t>(p.values.size()) != t.num_hidden_layers)
    throw DataError("prefix holds keys/values of " + std::to_string(p.keys.size()) + " layers, the model has " +
                        std::to_string(t.num_hidden_layers), "prefix");
  const std::vector<int64_t> want{B, t.num_key_value_heads, p.length, t.head_dim};
  for (size_t l = 0; l < p.keys.size(); ++l)
    if (!p.keys[l].defined() || !p.values[l].defined() || p.keys[l].sizes() != want || p.values[l].sizes() != want)
      throw DataError("prefix keys/values of layer " + std::to_string(l) + " are not " + c10::str(c10::IntArrayRef(want)),
                      "prefix", "capture them with a forward over the same batch (capture_prefix)");
}

// Decode steps of a KV cache (a few query rows) keep the dense bias whatever the configured kind:
// it is small there ([B, 1, T, K] for T of a few tokens) and decoding stays exactly what it was.
constexpr int64_t kDenseCacheRows = 16;

AttentionKind attention_for_block(AttentionKind configured, bool with_cache, int64_t num_queries) {
  if (configured == AttentionKind::kChunked && with_cache && num_queries < kDenseCacheRows) return AttentionKind::kEager;
  return configured;
}

// What the input-id checks need: the id range and the <|image_pad|> count.
struct IdScan {
  bool known = false;  // false: not checked (a decode step whose ids are already on the device)
  int64_t min = 0, max = 0, num_pads = 0;
};

// Host ids (what the generator and the data loader pass) are scanned on the host: no device op, no
// read back. Ids already on the device are reduced there (three reads back, each a device sync)
// unless reduce_on_device is false.
IdScan scan_ids(const torch::Tensor& ids_BT, int64_t image_token_id, bool reduce_on_device) {
  IdScan s;
  if (ids_BT.numel() == 0) return s;
  if (ids_BT.device().is_cpu()) {
    const auto ids = ids_BT.contiguous();
    const int64_t* p = ids.data_ptr<int64_t>();
    s.known = true;
    s.min = s.max = p[0];
    for (int64_t i = 0, n = ids.numel(); i < n; ++i) {
      s.min = std::min(s.min, p[i]);
      s.max = std::max(s.max, p[i]);
      s.num_pads += p[i] == image_token_id;
    }
  } else if (reduce_on_device) {
    s.known = true;
    s.min = ids_BT.min().item<int64_t>();
    s.max = ids_BT.max().item<int64_t>();
    s.num_pads = ids_BT.eq(image_token_id).sum().item<int64_t>();
  }
  return s;
}

// Rope positions of a decode block, continued from the cache on the host: a real token of row b
// gets next[b], next[b] + 1, ...; padding gets 1 (as the full forward's HF index does). real_BT:
// bool CPU [B, T]. Returns int64 CPU [3, B, T].
torch::Tensor continued_positions(const torch::Tensor& real_BT, const std::vector<int64_t>& next) {
  const int64_t B = real_BT.size(0), T = real_BT.size(1);
  auto p = torch::empty({B, T}, torch::kLong);
  const auto real = real_BT.accessor<bool, 2>();
  auto at = p.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t pos = next[b];
    for (int64_t t = 0; t < T; ++t) at[b][t] = real[b][t] ? pos++ : 1;
  }
  return p.unsqueeze(0).expand({3, B, T}).contiguous();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

ModelRuntime ModelRuntime::from_options(const config::ModelOptions& o) {
  o.validate();
  ModelRuntime r;
  r.param_dtype = o.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat;
  r.device = compat::select_device(o.device, "model.device");
  r.cuda_autocast = o.cuda_autocast;
  r.attention = parse_attention_kind(o.attn_implementation, "model.attn_implementation");
  r.checkpoint_text_layers = o.gradient_checkpointing_text;
  r.checkpoint_vision_blocks = o.gradient_checkpointing_vision;
  return r;
}

Qwen3VL::Qwen3VL(Qwen3VLConfig config, ModelRuntime runtime, Qwen3VLModule module)
    : config_(std::move(config)), runtime_(runtime), module_(std::move(module)) {
  inv_freq_ = rope_inv_freq(config_.text.head_dim, config_.text.rope_theta).to(runtime_.device);
  set_gradient_checkpointing(runtime_.checkpoint_text_layers, runtime_.checkpoint_vision_blocks);
  // The vision tower has no fused path: sdpa keeps its eager per-frame softmax.
  module_->visual->attention =
      runtime_.attention == AttentionKind::kChunked ? AttentionKind::kChunked : AttentionKind::kEager;
}

Qwen3VL::Qwen3VL(Qwen3VL&&) noexcept = default;
Qwen3VL& Qwen3VL::operator=(Qwen3VL&&) noexcept = default;
Qwen3VL::~Qwen3VL() = default;

Qwen3VL Qwen3VL::create(const Qwen3VLConfig& config, const ModelRuntime& runtime) {
  auto options = torch::TensorOptions().dtype(runtime.param_dtype).device(runtime.device);
  return Qwen3VL(config, runtime, Qwen3VLModule(config, options));
}

Qwen3VL Qwen3VL::load(const std::string& dir, const ModelRuntime& runtime) {
  Qwen3VL m = create(Qwen3VLConfig::from_dir(dir), runtime);
  m.layout_ = load_weights(dir, weight_table(m.config_), m.named_parameters());
  m.has_layout_ = true;
  spdlog::info("loaded Qwen3-VL from {} ({} tensors in {} file(s), params {} on {})", dir, m.layout_.tensors.size(),
               m.layout_.files.size(), c10::toString(runtime.param_dtype), runtime.device.str());
  return m;
}

std::map<std::string, torch::Tensor> Qwen3VL::named_parameters() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : module_->named_parameters(/*recurse=*/true))
    if (!is_adapter_parameter_key(item.key())) out[item.key()] = item.value();
  return out;
}

std::map<std::string, torch::Tensor> Qwen3VL::adapter_parameters() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : module_->named_parameters(/*recurse=*/true))
    if (is_adapter_parameter_key(item.key())) out[item.key()] = item.value();
  if (coord_offset_.embed.defined()) out[kCoordOffsetEmbedKey] = coord_offset_.embed;
  if (coord_offset_.lm_head.defined() && !coord_offset_.lm_head.is_same(coord_offset_.embed))
    out[kCoordOffsetHeadKey] = coord_offset_.lm_head;
  return out;
}

void Qwen3VL::set_adapters(AdapterSpec spec, CoordOffsetTables tables) {
  adapter_spec_ = std::move(spec);
  coord_offset_ = std::move(tables);
}

torch::Tensor Qwen3VL::lm_head_weight() const {
  const torch::Tensor& W = module_->lm_head_weight();
  if (!coord_offset_.lm_head.defined()) return W;
  return add_coord_rows(W, coord_offset_.lm_head, adapter_spec_.coord_first_id);
}

torch::Tensor Qwen3VL::coord_embedding_rows(int64_t coord_first_id) const {
  const torch::Tensor E = module_->language_model->embed_tokens->weight.narrow(0, coord_first_id, kCoordOffsetRows);
  if (!coord_offset_.embed.defined()) return E;
  COORDEXP_CHECK(coord_first_id == adapter_spec_.coord_first_id, "coord rows asked at " << coord_first_id
                 << " but the coord offset was attached at " << adapter_spec_.coord_first_id);
  return E + coord_offset_.embed.to(E.scalar_type());
}

void Qwen3VL::set_gradient_checkpointing(bool text_layers, bool vision_blocks) {
  runtime_.checkpoint_text_layers = text_layers;
  runtime_.checkpoint_vision_blocks = vision_blocks;
  module_->language_model->gradient_checkpointing = text_layers;
  module_->visual->gradient_checkpointing = vision_blocks;
}

torch::ScalarType Qwen3VL::compute_dtype() const {
  if (runtime_.param_dtype == torch::kDouble) return torch::kDouble;  // gradient checks
  return runtime_.device.is_cuda() ? runtime_.param_dtype : torch::kFloat;
}

void Qwen3VL::init_random(uint64_t seed, const InitScales& s) {
  auto gen = at::detail::createCPUGenerator(seed);
  torch::NoGradGuard no_grad;
  for (auto& [key, p] : named_parameters()) {  // sorted keys: the same stream on every machine
    auto noise = torch::randn(p.sizes(), gen, torch::kFloat);
    torch::Tensor v;
    const bool is_norm = key.find("norm") != std::string::npos;
    if (is_norm && ends_with(key, ".bias")) v = torch::zeros_like(noise);
    else if (is_norm) v = 1 + s.norm_noise * noise;
    else if (ends_with(key, ".bias")) v = s.bias_std * noise;
    else if (key.find("embed_tokens") != std::string::npos || key == "lm_head.weight" || key.find("pos_embed") != std::string::npos)
      v = s.embed_std * noise;
    else v = s.linear_std * noise;
    p.copy_(v);
  }
}

void Qwen3VL::save(const std::string& dir, const SaveOptions& options) const {
  std::filesystem::create_directories(dir);
  const auto table = weight_table(config_);
  CheckpointLayout layout =
      has_layout_ ? layout_ : CheckpointLayout::single_file(table, util::st_dtype_from_torch(options.dtype_for_new));
  if (options.max_shard_bytes > 0) layout = reshard_layout(layout, table, options.max_shard_bytes);
  util::write_file_atomic(dir + "/config.json", config_.to_json_text());
  save_weights(dir, layout, table, named_parameters());
}

KvCache Qwen3VL::make_kv_cache(int64_t batch_size, int64_t capacity) const {
  const auto& t = config_.text;
  return KvCache(t.num_hidden_layers, batch_size, t.num_key_value_heads, t.head_dim, capacity,
                 torch::TensorOptions().dtype(compute_dtype()).device(runtime_.device));
}

VisionFeatures Qwen3VL::encode_images(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw, Trace* trace) {
  std::optional<AutocastScope> autocast;
  if (auto target = forward_autocast(runtime_)) autocast.emplace(*target);
  return module_->visual->forward(pixel_values, grid_thw, compute_dtype(), trace);
}

ForwardOutput Qwen3VL::forward(const ForwardInputs& in) {
  const auto& c = config_;
  if (!in.input_ids.defined() || in.input_ids.dim() != 2 || in.input_ids.scalar_type() != torch::kLong)
    throw DataError("input_ids must be an int64 tensor [B, T]", "input_ids");
  const int64_t B = in.input_ids.size(0), T = in.input_ids.size(1);
  std::optional<torch::NoGradGuard> no_grad;
  if (in.cache) no_grad.emplace();
  std::optional<AutocastScope> autocast;
  if (auto target = forward_autocast(runtime_)) autocast.emplace(*target);
  const auto dev = runtime_.device;
  // A decode step (a KV cache that already holds tokens) reads nothing back from the device: its
  // ids are checked on the host when they come from there (the generator's do), else not at all.
  const bool decode_step = in.cache && !in.cache->empty();
  const IdScan scan = scan_ids(in.input_ids, c.image_token_id, /*reduce_on_device=*/!decode_step);
  if (scan.known && (scan.min < 0 || scan.max >= c.text.vocab_size))
    throw DataError("input_ids hold a token id outside [0, " + std::to_string(c.text.vocab_size) + ")", "input_ids",
                    "the tokenizer and the model's vocab_size disagree (run expand-vocab?)");
  const auto ids = util::host_to_device(in.input_ids, dev);
  torch::Tensor mask;
  if (in.attention_mask.defined()) {
    if (in.attention_mask.sizes() != in.input_ids.sizes())
      throw DataError("attention_mask must have the shape of input_ids [B, T]", "attention_mask");
    mask = util::host_to_device(in.attention_mask, dev).ne(0);
  }
  auto& text = module_->language_model;
  // With a reused prefix only the tail [P, T) is computed; P = 0 is the whole sequence.
  const int64_t P = in.prefix ? in.prefix->length : 0;
  if (in.prefix) check_prefix(*in.prefix, in, B, T, c.text);
  if (in.capture_prefix) {
    if (in.cache || in.prefix)
      throw DataError("a forward with a KV cache or a reused prefix cannot capture prefix keys/values", "capture_prefix");
    if (in.capture_prefix->length < 0 || in.capture_prefix->length > T)
      throw DataError("capture_prefix length " + std::to_string(in.capture_prefix->length) + " is outside [0, " +
                          std::to_string(T) + "]", "capture_prefix");
    if (runtime_.checkpoint_text_layers && torch::GradMode::is_enabled())
      throw DataError("prefix keys/values cannot be captured with text-layer gradient checkpointing on (its layers "
                      "keep no graph)", "capture_prefix", "turn model.gradient_checkpointing_text off for the reuse");
    in.capture_prefix->keys.assign(c.text.num_hidden_layers, torch::Tensor());
    in.capture_prefix->values.assign(c.text.num_hidden_layers, torch::Tensor());
  }

  // 1. Token embeddings, image features at <|image_pad|>, overrides (tail positions only).
  auto h = torch::embedding(text->embed_tokens->weight, P > 0 ? ids.narrow(1, P, T - P) : ids).to(compute_dtype());
  if (coord_offset_.embed.defined())  // adapter.coord_offset: the coord rows' trainable delta
    h = h + coord_offset_embedding(coord_offset_.embed, P > 0 ? ids.narrow(1, P, T - P) : ids, adapter_spec_.coord_first_id)
                .to(h.scalar_type());
  const auto image_mask = in.vision || in.embedding_override ? ids.eq(c.image_token_id) : torch::Tensor();
  const int64_t num_pads = scan.num_pads;
  torch::Tensor visual_mask;
  std::vector<torch::Tensor> tail_deepstack;  // the DeepStack rows of the tail's image pads (P > 0)
  if (in.vision) {
    if (in.cache && !in.cache->empty())
      throw DataError("vision features can only be passed to the first forward (prefill) of a KV cache", "vision");
    if (num_pads != in.vision->num_tokens())
      throw DataError("input_ids contain " + std::to_string(num_pads) + " <|image_pad|> tokens but the vision features have " +
                          std::to_string(in.vision->num_tokens()) + " rows", "input_ids",
                      "each image needs grid_t*grid_h*grid_w / merge^2 pads, in the order of image_grid_thw");
    if (P == 0) {
      visual_mask = image_mask;
      h = h.index_put({visual_mask}, in.vision->image_embeds.to(dev, h.scalar_type()));
    } else {
      // Feature rows follow the pads in row-major [B, T] order: pick those of the tail's pads.
      const auto tail_mask = image_mask.narrow(1, P, T - P);
      if (tail_mask.any().item<bool>()) {
        const auto order = (image_mask.reshape({-1}).to(torch::kLong).cumsum(0) - 1).view({B, T});
        const auto rows = order.narrow(1, P, T - P).masked_select(tail_mask);
        visual_mask = tail_mask;
        h = h.index_put({visual_mask}, in.vision->image_embeds.to(dev).index_select(0, rows).to(h.scalar_type()));
        for (const auto& d : in.vision->deepstack) tail_deepstack.push_back(d.to(dev).index_select(0, rows));
      }
    }
  } else if (num_pads > 0) {
    throw DataError("input_ids contain " + std::to_string(num_pads) + " <|image_pad|> tokens but no vision features were given",
                    "input_ids", "call encode_images and pass the features with the forward");
  }
  if (in.embedding_override) {
    const auto& ov = *in.embedding_override;
    if (ov.positions.dim() != 2 || ov.positions.size(1) != 2 || ov.rows.dim() != 2 ||
        ov.rows.size(0) != ov.positions.size(0) || ov.rows.size(1) != c.text.hidden_size)
      throw DataError("embedding override needs positions int64 [K, 2] and rows [K, " + std::to_string(c.text.hidden_size) + "]",
                      "embedding_override");
    auto pos = ov.positions.to(dev, torch::kLong);
    auto rb = pos.select(1, 0), rt = pos.select(1, 1);
    if (pos.size(0) > 0) {
      if (rb.min().item<int64_t>() < 0 || rb.max().item<int64_t>() >= B || rt.min().item<int64_t>() < 0 ||
          rt.max().item<int64_t>() >= T)
        throw DataError("embedding override position outside [0, B) x [0, T)", "embedding_override");
      if (rt.min().item<int64_t>() < P)
        throw DataError("embedding override at position " + std::to_string(rt.min().item<int64_t>()) +
                            " lies in the reused prefix [0, " + std::to_string(P) + ")", "embedding_override",
                        "start the prefix before the first overridden position");
      if (image_mask.index({rb, rt}).any().item<bool>())
        throw DataError("embedding override targets an <|image_pad|> position", "embedding_override",
                        "image features come only from the vision tower");
    }
    h = h.index_put({rb, rt - P}, ov.rows.to(dev, h.scalar_type()));
  }
  if (in.trace) (*in.trace)["inputs_embeds"] = h.detach();

  // 2. Position ids: given, continued from the cache, or HF get_rope_index. The last two are made
  // on the host and kept there for the cache's bookkeeping (with the host mask), so appending to
  // the cache reads nothing back.
  ForwardOutput out;
  torch::Tensor cache_mask = in.attention_mask, cache_positions;  // what KvCache::append gets
  if (in.position_ids.defined()) {
    if (in.position_ids.dim() != 3 || in.position_ids.size(0) != 3 || in.position_ids.size(1) != B ||
        in.position_ids.size(2) != T)
      throw DataError("position_ids must be int64 [3, B, T]", "position_ids");
    cache_positions = in.position_ids.to(torch::kLong);
    out.position_ids = util::host_to_device(cache_positions, dev);
    out.rope_deltas = torch::zeros({B, 1}, torch::kLong);
  } else if (decode_step) {
    cache_mask = in.attention_mask.defined() ? in.attention_mask.to(torch::kCPU).ne(0) : torch::ones({B, T}, torch::kBool);
    std::vector<int64_t> next(B), delta(B);
    for (int64_t b = 0; b < B; ++b) {
      next[b] = in.cache->next_position(b);
      delta[b] = next[b] - in.cache->length(b);
    }
    cache_positions = continued_positions(cache_mask, next);
    out.position_ids = util::host_to_device(cache_positions, dev);
    out.rope_deltas = torch::tensor(delta, torch::kLong).unsqueeze(1);
  } else {
    RopeIndexSpec spec{c.image_token_id, c.video_token_id, c.vision_start_token_id, c.vision.spatial_merge_size};
    auto ri = compute_rope_index(in.input_ids, in.vision ? in.vision->grid_thw : torch::Tensor(), in.attention_mask, spec);
    cache_positions = ri.position_ids;
    out.position_ids = util::host_to_device(ri.position_ids, dev);
    out.rope_deltas = ri.rope_deltas;
  }
  // The tail's positions are the full sequence's (HF's 3-D mrope index needs the whole row).
  if (P > 0) out.position_ids = out.position_ids.narrow(2, P, T - P);
  auto [cos, sin] = mrope_cos_sin(out.position_ids, inv_freq_, c.text.mrope_section);
  cos = cos.to(h.scalar_type());
  sin = sin.to(h.scalar_type());
  if (in.trace) {
    (*in.trace)["text_rope_cos"] = cos;
    (*in.trace)["text_rope_sin"] = sin;
  }

  // 3. Attention plan: causal + padding, or the cache's slots.
  AttentionPlan plan;
  plan.kind = attention_for_block(runtime_.attention, in.cache != nullptr, T);
  KvCache::Append append;
  if (in.cache) {
    if (in.cache->batch_size() != B || in.cache->num_layers() != c.text.num_hidden_layers)
      throw DataError("KV cache was made for " + std::to_string(in.cache->batch_size()) + " rows and " +
                          std::to_string(in.cache->num_layers()) + " layers", "kv_cache");
    append = in.cache->append(cache_mask, cache_positions, h.scalar_type(), plan.kind != AttentionKind::kChunked);
    plan.cache = in.cache;
    plan.append = &append;
    plan.mask.key_valid = append.key_valid;
    plan.mask.query_offsets = append.offsets;
    plan.bias = append.attn_bias;
  } else {
    // Without padding nothing but the causal order masks, for the whole batch; a tail's queries sit
    // at [P, T) of the same keys (the rows [P, T) of the full forward's mask).
    // Padding check on the host mask the caller passed when it is there (no device read back).
    const auto& host_or_device = in.attention_mask.defined() && in.attention_mask.device().is_cpu() ? in.attention_mask : mask;
    if (mask.defined() && !host_or_device.ne(0).all().item<bool>()) plan.mask.key_valid = mask;
    plan.mask.query_offsets = {P};
    plan.causal_only = !plan.mask.key_valid.defined() && P == 0;
    if (plan.kind != AttentionKind::kChunked)
      plan.bias = dense_attention_bias(plan.mask, T - P, T, h.scalar_type(), dev);
    plan.prefix = in.prefix;
    plan.capture = in.capture_prefix;
  }

  // 4. Decoder, final norm, logits where asked.
  static const std::vector<torch::Tensor> kNoDeepstack;
  const std::vector<torch::Tensor>& deepstack = P > 0 ? tail_deepstack : in.vision ? in.vision->deepstack : kNoDeepstack;
  auto hn = text->forward(h, cos, sin, plan, visual_mask, deepstack, in.trace);
  if (in.trace) (*in.trace)["last_hidden_state"] = hn.detach();
  if (in.return_hidden_states) out.hidden_states = hn;
  // The LM head; with a coord offset its 1000 columns get rows . offset^T (never a [V, H] copy here).
  const torch::Tensor& W = module_->lm_head_weight();
  auto head = [&](const torch::Tensor& rows) {
    torch::Tensor logits = torch::linear(rows, cast_weight(W, rows));
    if (!coord_offset_.lm_head.defined()) return logits;
    const int64_t first = adapter_spec_.coord_first_id, n = kCoordOffsetRows, V = logits.size(-1);
    const torch::Tensor coord = logits.narrow(-1, first, n) + torch::linear(rows, cast_weight(coord_offset_.lm_head, rows));
    return torch::cat({logits.narrow(-1, 0, first), coord, logits.narrow(-1, first + n, V - first - n)}, -1);
  };
  switch (in.logits.kind) {
    case LogitsRequest::Kind::kNone:
      break;
    case LogitsRequest::Kind::kAll:
      out.logits = head(hn);
      break;
    case LogitsRequest::Kind::kLast: {
      auto last = mask.defined()
                      ? (mask.to(torch::kLong) * torch::arange(T, torch::TensorOptions(torch::kLong).device(dev))).argmax(1)
                      : torch::full({B}, T - 1, torch::TensorOptions(torch::kLong).device(dev));
      if (P > 0) {
        if (last.min().item<int64_t>() < P)
          throw DataError("the last real token of a row lies in the reused prefix", "logits", "use a shorter prefix");
        last = last - P;
      }
      auto rows = hn.index({torch::arange(B, torch::TensorOptions(torch::kLong).device(dev)), last});
      out.logits = head(rows);
      break;
    }
    case LogitsRequest::Kind::kMask: {
      if (!in.logits.mask.defined() || in.logits.mask.sizes() != in.input_ids.sizes())
        throw DataError("logits mask must be bool [B, T]", "logits.mask");
      auto want = in.logits.mask.to(dev).ne(0);
      if (P > 0) {
        if (want.narrow(1, 0, P).any().item<bool>())
          throw DataError("logits requested in the reused prefix [0, " + std::to_string(P) + ")", "logits.mask",
                          "start the prefix before the first row that needs logits");
        want = want.narrow(1, P, T - P);
      }
      auto rows = hn.index({want});
      out.logits = head(rows);
      break;
    }
  }
  return out;
}

}  // namespace coordexp::model
