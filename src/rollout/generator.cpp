// Batched autoregressive generation with the KV cache (see generator.h): image assignment to rows,
// chunking, right-padded prefill, per-step token processing (constraint mask, repetition penalty),
// greedy / sampled / beam choice with log-probabilities, and the stop/length bookkeeping that
// removes finished sequences from the batch and its KV cache.
#include "coordexp/rollout/generator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "coordexp/util/error.h"
#include "coordexp/util/threads.h"

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
  g.repetition_penalty = o.repetition_penalty;
  g.num_beams = o.num_beams;
  g.length_penalty = o.length_penalty;
  g.decode_threads = o.decode_threads;
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

// One sequence being decoded, i.e. one row of the chunk's KV cache: a request row's only sequence,
// or one of its beams.
struct Slot {
  size_t row = 0;  // request row
  std::vector<int64_t> ids;
  std::vector<float> logprobs, raw_logprobs;
  std::vector<torch::Tensor> coord_logits;  // [1000] each, keep_coord_logits only
  std::unique_ptr<RowConstraint> constraint;
  RowRng rng{0};
  double sum_logprob = 0.0;
};

bool is_stop(const GenerationOptions& o, int64_t id) {
  return std::find(o.stop_ids.begin(), o.stop_ids.end(), id) != o.stop_ids.end();
}

bool is_coord(const GenerationOptions& o, int64_t id) {
  return o.keep_coord_logits && id >= o.first_coord_id && id < o.first_coord_id + 1000;
}

// A copy of `parent`; its constraint is rebuilt by replaying the ids (RowConstraint has no copy),
// unless the copy is a finished beam that never chooses again.
Slot copy_slot(const Slot& parent, const GenerationOptions& o, bool with_constraint = true) {
  Slot s;
  s.row = parent.row;
  s.ids = parent.ids;
  s.logprobs = parent.logprobs;
  s.raw_logprobs = parent.raw_logprobs;
  s.coord_logits = parent.coord_logits;
  s.rng = parent.rng;
  s.sum_logprob = parent.sum_logprob;
  if (o.constraint && with_constraint) {
    s.constraint = o.constraint->make_row();
    for (int64_t id : parent.ids) s.constraint->advance(id);
  }
  return s;
}

// Appends one chosen token (logits_V: the model's raw logits of that step) to a slot.
void push_token(Slot& s, int64_t id, float logprob, float raw_logprob, const torch::Tensor& logits_V,
                const GenerationOptions& o) {
  s.ids.push_back(id);
  s.logprobs.push_back(logprob);
  s.raw_logprobs.push_back(raw_logprob);
  s.sum_logprob += logprob;
  if (s.constraint) s.constraint->advance(id);
  if (is_coord(o, id))
    s.coord_logits.push_back(
        logits_V.slice(0, o.first_coord_id, o.first_coord_id + 1000).to(torch::kCPU, torch::kFloat).clone());
}

void finish_row(Slot&& s, FinishReason reason, double score, GeneratedRow& out) {
  out.ids = std::move(s.ids);
  out.logprobs = std::move(s.logprobs);
  out.raw_logprobs = std::move(s.raw_logprobs);
  out.finish = reason;
  out.score = score;
  out.coord_logits_K = s.coord_logits.empty() ? torch::Tensor() : torch::stack(s.coord_logits);
}

double beam_score(double sum_logprob, size_t length, double length_penalty) {
  return sum_logprob / std::pow(static_cast<double>(length), length_penalty);
}

// The decoding state of one chunk: its slots (one per KV-cache row, in cache order, a row's beams
// adjacent), the ids seen per slot for the repetition penalty, and the finished beams per row.
class ChunkDecoder {
 public:
  ChunkDecoder(const GenerationRequest& req, const GenerationOptions& o, size_t begin, size_t end,
               GenerationResult& result, model::KvCache& cache, torch::Device device, int64_t vocab)
      : o_(o), result_(result), cache_(cache), vocab_(vocab), begin_(begin), finished_(end - begin) {
    for (size_t r = begin; r < end; ++r) {
      Slot s;
      s.row = r;
      s.rng = RowRng(req.row_seeds.empty() ? row_seed(o.seed, r) : req.row_seeds[r]);
      if (o.constraint) s.constraint = o.constraint->make_row();
      slots_.push_back(std::move(s));
    }
    if (o.repetition_penalty != 1.0) {
      // HF penalizes every id of input_ids, and for a decoder-only model that holds the prompt too.
      presence_ = torch::zeros({static_cast<int64_t>(slots_.size()), vocab}, torch::kBool);
      for (size_t i = 0; i < slots_.size(); ++i)
        presence_[static_cast<int64_t>(i)].index_put_({torch::tensor(req.prompts[slots_[i].row], torch::kLong)}, true);
      presence_ = presence_.to(device);
    }
  }

  bool done() const { return slots_.empty(); }
  int64_t num_slots() const { return static_cast<int64_t>(slots_.size()); }
  int64_t last_id(int64_t slot) const { return slots_[slot].ids.back(); }

  // Chooses the next token of every slot from logits_SV (one row per slot, in slot order); finished
  // sequences leave the batch and the cache. Returns how many tokens were chosen.
  int64_t step(const torch::Tensor& logits_SV) {
    const auto logits = logits_SV.to(torch::kFloat);
    const auto raw_logp = torch::log_softmax(logits, 1);
    const auto processed = process(logits);
    return o_.num_beams > 1 ? beam_step(logits, raw_logp, processed) : single_step(logits, raw_logp, processed);
  }

 private:
  struct Child {
    int64_t parent = 0, id = 0;
    double sum = 0.0;  // parent's sum + the child's log-probability
  };
  struct Finished {
    Slot slot;
    FinishReason reason = FinishReason::kEos;
    double score = 0.0;
  };

  // The constraint mask, then the repetition penalty (HF applies logits processors before the
  // temperature / top-k / top-p warpers; the mask comes first so -inf stays -inf).
  torch::Tensor process(const torch::Tensor& logits) {
    torch::Tensor out = logits;
    if (o_.constraint) {
      const int64_t S = num_slots();
      auto allowed = torch::empty({S, vocab_}, torch::kUInt8);
      std::vector<uint8_t> buf(static_cast<size_t>(vocab_));
      for (int64_t i = 0; i < S; ++i) {
        std::fill(buf.begin(), buf.end(), uint8_t{1});
        slots_[i].constraint->allowed(buf);
        COORDEXP_CHECK(buf.size() == static_cast<size_t>(vocab_), "the token constraint resized allowed_V");
        COORDEXP_CHECK(std::any_of(buf.begin(), buf.end(), [](uint8_t a) { return a != 0; }),
                       "the token constraint allows no id (row " << slots_[i].row << ")");
        std::memcpy(allowed[i].data_ptr<uint8_t>(), buf.data(), buf.size());
      }
      out = out.masked_fill(allowed.to(out.device()).eq(0), -std::numeric_limits<float>::infinity());
    }
    if (o_.repetition_penalty != 1.0) {
      const double p = o_.repetition_penalty;
      out = torch::where(presence_, torch::where(out < 0, out * p, out / p), out);
    }
    return out;
  }

  // Keeps slots `keep` (old indices; repeats allowed) in that order, with their cache rows.
  void select(const std::vector<int64_t>& keep, std::vector<Slot>&& next) {
    bool identity = keep.size() == slots_.size();
    for (size_t i = 0; identity && i < keep.size(); ++i) identity = keep[i] == static_cast<int64_t>(i);
    if (!keep.empty() && !identity) {
      cache_.select_rows(keep);
      if (presence_.defined())
        presence_ = presence_.index_select(0, torch::tensor(keep, torch::kLong).to(presence_.device()));
    }
    slots_ = std::move(next);
  }

  void mark_present(const std::vector<int64_t>& ids) {
    if (!presence_.defined() || ids.empty()) return;
    presence_.scatter_(1, torch::tensor(ids, torch::kLong).view({-1, 1}).to(presence_.device()), true);
  }

  // Greedy or sampled: one token per slot.
  int64_t single_step(const torch::Tensor& logits, const torch::Tensor& raw_logp, const torch::Tensor& processed) {
    const int64_t S = num_slots();
    std::vector<int64_t> chosen(static_cast<size_t>(S));
    std::vector<float> logprob(static_cast<size_t>(S)), raw_logprob(static_cast<size_t>(S));
    if (o_.mode == DecodingMode::kGreedy) {
      // One read back per step: ids, log-probabilities and raw log-probabilities packed as float64
      // [3, S] (exact for ids < 2^53 and for float32 values).
      const auto ids = processed.argmax(1).view({-1, 1});
      const bool unprocessed = !o_.constraint && o_.repetition_penalty == 1.0;
      const auto used_logp = unprocessed ? raw_logp : torch::log_softmax(processed, 1);
      const auto packed = torch::stack({ids.view({-1}).to(torch::kDouble), used_logp.gather(1, ids).view({-1}).to(torch::kDouble),
                                        raw_logp.gather(1, ids).view({-1}).to(torch::kDouble)})
                              .to(torch::kCPU)
                              .contiguous();
      const auto at = packed.accessor<double, 2>();
      for (int64_t i = 0; i < S; ++i) {
        chosen[i] = static_cast<int64_t>(at[0][i]);
        logprob[i] = static_cast<float>(at[1][i]);
        raw_logprob[i] = static_cast<float>(at[2][i]);
      }
    } else {
      const auto cpu = processed.to(torch::kCPU);
      for (int64_t i = 0; i < S; ++i) {
        const auto probs = sampling_distribution(cpu[i], o_.sampling);
        chosen[i] = draw_from(probs, slots_[i].rng.uniform());
        logprob[i] = static_cast<float>(std::log(probs.data_ptr<double>()[chosen[i]]));
      }
      const auto raw = raw_logp.gather(1, torch::tensor(chosen, torch::kLong).view({-1, 1}).to(raw_logp.device()))
                           .view({-1}).to(torch::kCPU).contiguous();
      for (int64_t i = 0; i < S; ++i) raw_logprob[i] = raw.data_ptr<float>()[i];
    }
    mark_present(chosen);
    std::vector<int64_t> keep;
    std::vector<Slot> kept;
    for (int64_t i = 0; i < S; ++i) {
      Slot& s = slots_[i];
      push_token(s, chosen[i], logprob[i], raw_logprob[i], logits[i], o_);
      const bool stop = is_stop(o_, chosen[i]);
      if (stop || static_cast<int64_t>(s.ids.size()) >= o_.max_new_tokens) {
        const size_t row = s.row;
        const double score = s.sum_logprob;
        finish_row(std::move(s), stop ? FinishReason::kEos : FinishReason::kMaxNewTokens, score, result_.rows[row]);
      } else {
        keep.push_back(i);
        kept.push_back(std::move(s));
      }
    }
    select(keep, std::move(kept));
    return S;
  }

  // A finished beam: the parent's sequence plus the child's token; the row keeps its num_beams best.
  void add_finished(std::vector<Finished>& fin, const Child& c, FinishReason reason, const torch::Tensor& logits,
                    const torch::Tensor& raw_logp, const torch::Tensor& logp) {
    Finished f;
    f.slot = copy_slot(slots_[c.parent], o_, /*with_constraint=*/false);
    push_token(f.slot, c.id, logp[c.parent][c.id].item<float>(), raw_logp[c.parent][c.id].item<float>(),
               logits[c.parent], o_);
    f.slot.sum_logprob = c.sum;
    f.reason = reason;
    f.score = beam_score(c.sum, f.slot.ids.size(), o_.length_penalty);
    auto at = std::find_if(fin.begin(), fin.end(), [&](const Finished& g) { return g.score < f.score; });
    fin.insert(at, std::move(f));
    if (static_cast<int64_t>(fin.size()) > o_.num_beams) fin.pop_back();
  }

  // Beam search: per request row, the best continuations of its running beams (HF's scheme: the
  // top candidates by summed log-probability; a stop id among the first num_beams of them ends a
  // beam, the other candidates fill the running beams).
  int64_t beam_step(const torch::Tensor& logits, const torch::Tensor& raw_logp, const torch::Tensor& processed) {
    const int64_t S = num_slots();
    const int64_t nb = o_.num_beams;
    const auto logp = torch::log_softmax(processed, 1);
    std::vector<double> sums;
    for (const auto& s : slots_) sums.push_back(s.sum_logprob);
    const auto total = logp.to(torch::kDouble) + torch::tensor(sums, torch::kDouble).to(logp.device()).view({-1, 1});
    // Enough candidates that num_beams of them are not stop ids.
    const int64_t num_candidates = nb * (1 + static_cast<int64_t>(o_.stop_ids.size()));
    std::vector<Child> children;  // the next running beams, grouped by row in slot order
    std::vector<size_t> done_rows;
    for (int64_t i0 = 0; i0 < S;) {
      const size_t row = slots_[i0].row;
      int64_t i1 = i0;
      while (i1 < S && slots_[i1].row == row) ++i1;
      const auto flat = total.slice(0, i0, i1).reshape({-1});
      const auto top = flat.topk(std::min<int64_t>(num_candidates, flat.numel()));
      const auto values = std::get<0>(top).to(torch::kCPU).contiguous();
      const auto index = std::get<1>(top).to(torch::kCPU).contiguous();
      auto& fin = finished_[row - begin_];
      const size_t new_len = slots_[i0].ids.size() + 1;
      const bool at_limit = static_cast<int64_t>(new_len) >= o_.max_new_tokens;
      std::vector<Child> running;
      for (int64_t c = 0; c < values.numel() && static_cast<int64_t>(running.size()) < nb; ++c) {
        const double v = values.data_ptr<double>()[c];
        if (!std::isfinite(v)) break;  // forbidden by the constraint (sorted: so are all later ones)
        const int64_t flat_index = index.data_ptr<int64_t>()[c];
        const Child child{i0 + flat_index / vocab_, flat_index % vocab_, v};
        if (is_stop(o_, child.id)) {
          if (c < nb) add_finished(fin, child, FinishReason::kEos, logits, raw_logp, logp);
        } else {
          running.push_back(child);
        }
      }
      if (at_limit)
        for (const auto& child : running) add_finished(fin, child, FinishReason::kMaxNewTokens, logits, raw_logp, logp);
      bool row_done = running.empty() || at_limit;
      if (!row_done && static_cast<int64_t>(fin.size()) >= nb) {
        // The best score a running beam can still reach: its sum only decreases (log-probabilities
        // are <= 0) while its length grows to at most max_new_tokens; the bound is at one end.
        const double best_sum = running.front().sum;
        const double bound = std::max(beam_score(best_sum, new_len, o_.length_penalty),
                                      beam_score(best_sum, static_cast<size_t>(o_.max_new_tokens), o_.length_penalty));
        row_done = bound <= fin.back().score;
      }
      if (row_done) done_rows.push_back(row);
      else children.insert(children.end(), running.begin(), running.end());
      i0 = i1;
    }
    for (size_t row : done_rows) {
      auto& fin = finished_[row - begin_];
      COORDEXP_CHECK(!fin.empty(), "beam search row " << row << " ended without a finished beam");
      finish_row(std::move(fin.front().slot), fin.front().reason, fin.front().score, result_.rows[row]);
      fin.clear();
    }
    // The next slots: a parent's last child takes its slot over, earlier children copy it.
    std::vector<int64_t> remaining(static_cast<size_t>(S), 0);
    for (const auto& c : children) ++remaining[c.parent];
    std::vector<int64_t> parents, new_ids;
    std::vector<Slot> next;
    for (const auto& c : children) {
      Slot s = --remaining[c.parent] == 0 ? std::move(slots_[c.parent]) : copy_slot(slots_[c.parent], o_);
      push_token(s, c.id, logp[c.parent][c.id].item<float>(), raw_logp[c.parent][c.id].item<float>(),
                 logits[c.parent], o_);
      s.sum_logprob = c.sum;  // the sum the candidates were ranked by
      parents.push_back(c.parent);
      new_ids.push_back(c.id);
      next.push_back(std::move(s));
    }
    select(parents, std::move(next));
    mark_present(new_ids);
    return S;
  }

  const GenerationOptions& o_;
  GenerationResult& result_;
  model::KvCache& cache_;
  int64_t vocab_;
  size_t begin_;
  std::vector<Slot> slots_;
  torch::Tensor presence_;  // bool [slots, V] on the model's device; repetition_penalty != 1 only
  std::vector<std::vector<Finished>> finished_;  // beams: per chunk row, best first
};

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
  const auto logits = model.forward(in).logits;
  ChunkDecoder decoder(req, options, begin, end, result, cache, logits.device(), logits.size(1));
  stats.generated_tokens += decoder.step(logits);
  stats.prefill_seconds += seconds_since(t_prefill);

  // Decode: one token per unfinished sequence (the decoder dropped finished ones from the cache).
  const auto t_decode = Clock::now();
  const util::ScopedComputeThreads decode_threads(decoder.done() ? 0 : options.decode_threads);
  while (!decoder.done()) {
    const int64_t S = decoder.num_slots();
    std::vector<int64_t> last(S);
    for (int64_t i = 0; i < S; ++i) last[i] = decoder.last_id(i);
    const auto step_ids = torch::tensor(last, torch::kLong).reshape({S, 1});
    model::ForwardInputs d;
    d.input_ids = step_ids;
    d.cache = &cache;
    d.logits = model::LogitsRequest::last();
    const int64_t produced = decoder.step(model.forward(d).logits);
    ++stats.decode_steps;
    stats.decode_row_steps += S;
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
  COORDEXP_CHECK(options.num_beams >= 1, "num_beams " << options.num_beams);
  COORDEXP_CHECK(options.num_beams == 1 || options.mode == DecodingMode::kGreedy, "beam search needs greedy decoding");
  COORDEXP_CHECK(options.repetition_penalty > 0.0, "repetition_penalty " << options.repetition_penalty);
  COORDEXP_CHECK(!options.keep_coord_logits ||
                     (options.first_coord_id >= 0 && options.first_coord_id + 1000 <= model.config().text.vocab_size),
                 "keep_coord_logits needs first_coord_id with 1000 coord ids inside the vocabulary");
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
