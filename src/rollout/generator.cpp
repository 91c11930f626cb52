// Batched autoregressive generation with the KV cache (see generator.h): image assignment to rows,
// chunking, right-padded prefill, per-step token choice and the stop/length bookkeeping.
#include "coordexp/rollout/generator.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "coordexp/util/error.h"

namespace coordexp::rollout {

using torch::indexing::Slice;

const char* finish_reason_name(FinishReason reason) {
  return reason == FinishReason::kEos ? "eos" : "max_new_tokens";
}

GenerationOptions GenerationOptions::from_config(const config::RolloutOptions& o, const tokenizer::Tokenizer& tok) {
  o.validate();
  GenerationOptions g;
  g.mode = o.decoding == "sample" ? DecodingMode::kSample : DecodingMode::kGreedy;
  g.sampling = {o.temperature, o.top_k, o.top_p};
  g.max_new_tokens = o.max_new_tokens;
  g.batch_size = o.batch_size;
  g.seed = static_cast<uint64_t>(o.seed);
  for (const auto& name : o.stop_tokens) {
    const auto id = tok.token_to_id(name);
    if (!id)
      throw ConfigError("the tokenizer has no token '" + name + "'", "key rollout.stop_tokens",
                        "name added tokens by their content, e.g. <|im_end|>");
    g.stop_ids.push_back(*id);
  }
  g.pad_id = tok.endoftext_id();
  return g;
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Which images (rows of image_grid_thw) and patches (rows of pixel_values) each prompt row owns:
// images are consumed in order, each taking t*h*w / merge^2 of the row's <|image_pad|> ids.
struct RowImages {
  int64_t first_image = 0, num_images = 0;
  int64_t first_patch = 0, num_patches = 0;
};

std::vector<RowImages> assign_images(const GenerationRequest& req, int64_t image_token_id, int64_t merge) {
  const int64_t num_images = req.image_grid_thw.defined() ? req.image_grid_thw.size(0) : 0;
  const auto grid = num_images > 0 ? req.image_grid_thw.to(torch::kCPU, torch::kLong).contiguous() : torch::Tensor();
  std::vector<RowImages> out;
  int64_t image = 0, patch = 0;
  for (size_t r = 0; r < req.prompts.size(); ++r) {
    const int64_t pads = std::count(req.prompts[r].begin(), req.prompts[r].end(), image_token_id);
    RowImages ri{image, 0, patch, 0};
    int64_t covered = 0;
    while (covered < pads && image < num_images) {
      const int64_t patches = grid[image].prod().item<int64_t>();
      covered += patches / (merge * merge);
      ri.num_patches += patches;
      ++ri.num_images;
      ++image;
    }
    if (covered != pads)
      throw DataError("row " + std::to_string(r) + " has " + std::to_string(pads) +
                          " <|image_pad|> ids but the remaining images of image_grid_thw give " + std::to_string(covered),
                      "generation request", "give every row's images in row order, each with grid_t*grid_h*grid_w / merge^2 pads");
    patch += ri.num_patches;
    out.push_back(ri);
  }
  if (image != num_images)
    throw DataError(std::to_string(num_images - image) + " image(s) of image_grid_thw belong to no row's <|image_pad|> ids",
                    "generation request");
  if (num_images > 0 && (!req.pixel_values.defined() || req.pixel_values.size(0) != patch))
    throw DataError("pixel_values must have " + std::to_string(patch) + " rows (the patches of image_grid_thw)",
                    "generation request");
  return out;
}

// Per-row decoding state of one chunk.
struct RowState {
  std::vector<int64_t>* ids = nullptr;
  FinishReason* finish = nullptr;
  RowRng rng{0};
  bool active = true;
};

// Chooses the next token of every active row from logits_BV and records it; returns how many rows
// received a token.
int64_t choose_tokens(const torch::Tensor& logits_BV, std::vector<RowState>& rows, const GenerationOptions& options) {
  torch::Tensor greedy;
  if (options.mode == DecodingMode::kGreedy) greedy = logits_BV.argmax(1).to(torch::kCPU);
  const auto logits_cpu = options.mode == DecodingMode::kSample ? logits_BV.to(torch::kCPU) : torch::Tensor();
  int64_t produced = 0;
  for (size_t b = 0; b < rows.size(); ++b) {
    auto& row = rows[b];
    if (!row.active) continue;
    const int64_t b64 = static_cast<int64_t>(b);
    const int64_t token = options.mode == DecodingMode::kGreedy
                              ? greedy[b64].item<int64_t>()
                              : draw_from(sampling_distribution(logits_cpu[b64], options.sampling), row.rng.uniform());
    row.ids->push_back(token);
    ++produced;
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), token) != options.stop_ids.end()) {
      *row.finish = FinishReason::kEos;
      row.active = false;
    } else if (static_cast<int64_t>(row.ids->size()) >= options.max_new_tokens) {
      *row.finish = FinishReason::kMaxNewTokens;
      row.active = false;
    }
  }
  return produced;
}

void generate_chunk(model::Qwen3VL& model, const GenerationRequest& req, const GenerationOptions& options,
                    const std::vector<RowImages>& images, size_t begin, size_t end, GenerationResult& result) {
  auto& stats = result.stats;
  const int64_t B = static_cast<int64_t>(end - begin);
  int64_t max_len = 0;
  for (size_t r = begin; r < end; ++r) max_len = std::max<int64_t>(max_len, req.prompts[r].size());

  // Vision features of the chunk's images (contiguous in the request).
  const auto t_vision = Clock::now();
  const int64_t first_image = images[begin].first_image, first_patch = images[begin].first_patch;
  const int64_t num_images = images[end - 1].first_image + images[end - 1].num_images - first_image;
  const int64_t num_patches = images[end - 1].first_patch + images[end - 1].num_patches - first_patch;
  model::VisionFeatures vision;
  if (num_images > 0)
    vision = model.encode_images(req.pixel_values.slice(0, first_patch, first_patch + num_patches),
                                 req.image_grid_thw.slice(0, first_image, first_image + num_images).to(torch::kLong));
  stats.vision_seconds += seconds_since(t_vision);

  // Prefill: right-padded prompts; the cache keeps each row's slots contiguous, so a row's decode
  // tokens follow its last real prompt token and padding slots are never attended.
  const auto t_prefill = Clock::now();
  auto ids = torch::full({B, max_len}, options.pad_id, torch::kLong);
  auto mask = torch::zeros({B, max_len}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = req.prompts[begin + b];
    ids[b].slice(0, 0, static_cast<int64_t>(p.size())).copy_(torch::tensor(p, torch::kLong));
    mask[b].slice(0, 0, static_cast<int64_t>(p.size())).fill_(1);
    stats.prefill_tokens += static_cast<int64_t>(p.size());
  }
  // The last new token is never fed back, so prompt + max_new_tokens - 1 slots suffice per row.
  auto cache = model.make_kv_cache(B, max_len + options.max_new_tokens - 1);
  model::ForwardInputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.vision = num_images > 0 ? &vision : nullptr;
  in.cache = &cache;
  in.logits = model::LogitsRequest::last();
  auto logits = model.forward(in).logits;

  std::vector<RowState> rows(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const size_t r = begin + static_cast<size_t>(b);
    rows[b].ids = &result.rows[r].ids;
    rows[b].finish = &result.rows[r].finish;
    rows[b].rng = RowRng(req.row_seeds.empty() ? row_seed(options.seed, r) : req.row_seeds[r]);
  }
  stats.generated_tokens += choose_tokens(logits, rows, options);
  stats.prefill_seconds += seconds_since(t_prefill);

  // Decode: one token per active row; finished rows feed a masked pad (their cache stays as is).
  const auto t_decode = Clock::now();
  auto step_ids = torch::empty({B, 1}, torch::kLong);
  auto step_mask = torch::empty({B, 1}, torch::kLong);
  while (std::any_of(rows.begin(), rows.end(), [](const RowState& s) { return s.active; })) {
    for (int64_t b = 0; b < B; ++b) {
      step_ids[b][0] = rows[b].active ? rows[b].ids->back() : options.pad_id;
      step_mask[b][0] = rows[b].active ? 1 : 0;
    }
    model::ForwardInputs d;
    d.input_ids = step_ids;
    d.attention_mask = step_mask;
    d.cache = &cache;
    d.logits = model::LogitsRequest::last();
    const int64_t produced = choose_tokens(model.forward(d).logits, rows, options);
    ++stats.decode_steps;
    stats.decode_tokens += produced;
    stats.generated_tokens += produced;
  }
  stats.decode_seconds += seconds_since(t_decode);
  ++stats.num_chunks;
}

}  // namespace

GenerationResult generate(model::Qwen3VL& model, const GenerationRequest& request, const GenerationOptions& options) {
  COORDEXP_CHECK(options.max_new_tokens >= 1 && options.batch_size >= 1, "bad generation options");
  COORDEXP_CHECK(options.pad_id != model.config().image_token_id, "pad_id must not be the image token");
  if (!request.row_seeds.empty() && request.row_seeds.size() != request.prompts.size())
    throw DataError("row_seeds has " + std::to_string(request.row_seeds.size()) + " seeds for " +
                        std::to_string(request.prompts.size()) + " rows", "generation request");
  for (size_t r = 0; r < request.prompts.size(); ++r)
    if (request.prompts[r].empty())
      throw DataError("row " + std::to_string(r) + " has an empty prompt", "generation request");
  torch::NoGradGuard no_grad;
  const auto images = assign_images(request, model.config().image_token_id, model.config().vision.spatial_merge_size);
  GenerationResult result;
  result.rows.resize(request.prompts.size());
  result.stats.num_rows = static_cast<int64_t>(request.prompts.size());
  const size_t chunk = static_cast<size_t>(options.batch_size);
  for (size_t begin = 0; begin < request.prompts.size(); begin += chunk)
    generate_chunk(model, request, options, images, begin, std::min(begin + chunk, request.prompts.size()), result);
  return result;
}

}  // namespace coordexp::rollout
