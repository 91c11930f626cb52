// Autoregressive generation from Qwen3-VL (seed 7.2 step B0, section 9): prompts (ids with their
// <|image_pad|> runs) + images -> new token ids per row, greedy, sampled or by beam search, until a
// stop token or max_new_tokens, with each token's log-probability (chosen-from and raw model), an
// optional per-row token constraint (constraint.h), the Hugging Face repetition penalty, and
// optionally the coord logits of every generated coord token. Rows are processed in chunks of
// batch_size: the chunk's images are encoded once, the right-padded prompts are prefilled into a KV
// cache, then one token per unfinished sequence and step is decoded; finished rows leave the batch
// (their KV-cache rows are dropped), so they cost nothing afterwards. No gradients. Does not build
// prompts (data/prompt.h) or parse answers (protocol/parse.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "coordexp/config/sections/rollout.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/rollout/constraint.h"
#include "coordexp/rollout/sampling.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::rollout {

enum class DecodingMode : uint8_t { kGreedy, kSample };

struct GenerationOptions {
  DecodingMode mode = DecodingMode::kGreedy;
  SamplingParams sampling;       // kSample only
  int64_t max_new_tokens = 1024; // per row, the stop token included
  int64_t batch_size = 8;        // rows per chunk (prefill + decode together)
  uint64_t seed = 0;             // kSample: row r of a request uses row_seed(seed, r) unless row_seeds says
  std::vector<int64_t> stop_ids; // a row ends at the first of these (kept as its last id); empty: never
  int64_t pad_id = 0;            // id at padded (masked, never attended) slots; not an image token
  // Hugging Face RepetitionPenaltyLogitsProcessor: before each choice, every id present in the
  // row's prompt or its tokens so far gets logit / p (logit > 0) or logit * p (logit < 0). 1 = off.
  double repetition_penalty = 1.0;
  // > 1: beam search (kGreedy only). Each step keeps the num_beams best continuations by summed
  // log-probability (log_softmax of the constrained, penalized logits); a beam that picks a stop id
  // is finished with score sum / (its generated tokens, stop included)^length_penalty; a row stops
  // when num_beams beams are finished and no running beam can still beat the worst of them (exact
  // bound, since log-probabilities are <= 0), or at max_new_tokens (running beams finish there).
  // The best finished beam is returned.
  int64_t num_beams = 1;
  double length_penalty = 1.0;   // Hugging Face's default: the mean log-probability per token
  // Per-row token constraint (nullptr = none): the ids it forbids are set to -inf before the
  // repetition penalty, temperature, top-k/top-p, argmax and beam selection. Not owned.
  const ConstraintFactory* constraint = nullptr;
  // Keep the 1000 raw model logits of ids first_coord_id .. first_coord_id + 999 at every step whose
  // chosen id is a coord token (GeneratedRow::coord_logits_K), for expectation readout.
  bool keep_coord_logits = false;
  int64_t first_coord_id = -1;
  // Compute threads during the decode steps, restored afterwards (util::ScopedComputeThreads); 0 =
  // keep the process's setting. Covers LibTorch's intra-op pool, and BLIS only where it exports its
  // run-time thread API (Debian's OpenMP BLIS does not: its count is fixed at its first call, which
  // is why `generate` / `infer` start with one thread, see docs/performance.md).
  int decode_threads = 1;

  // From a validated config section; stop_tokens are looked up in `tok` (ConfigError naming
  // rollout.stop_tokens for a token the tokenizer does not have).
  // rollout.constrained is not resolved here (the caller owns the constraint factory).
  static GenerationOptions from_config(const config::RolloutOptions& options, const tokenizer::Tokenizer& tok);
};

struct GenerationRequest {
  // Per row: the prompt ids (e.g. the chat prompt ending with "<|im_start|>assistant\n"), each
  // image as its run of <|image_pad|> ids. Rows may differ in length.
  std::vector<std::vector<int64_t>> prompts;
  // The images of all rows in row order (a row's images in the order of its pad runs): float32
  // [sum of patches, patch_dim] and int64 [num_images, 3]. Undefined when no row has images.
  torch::Tensor pixel_values;
  torch::Tensor image_grid_thw;
  // kSample: one seed per row (e.g. derived from a sample index, so a sample draws the same tokens
  // whatever request it is part of). Empty: row_seed(options.seed, r) for row r.
  std::vector<uint64_t> row_seeds;
};

enum class FinishReason : uint8_t { kEos, kMaxNewTokens };
const char* finish_reason_name(FinishReason reason);  // "eos" | "max_new_tokens"

struct GeneratedRow {
  std::vector<int64_t> ids;  // new tokens only; ends with the stop id when finish == kEos
  FinishReason finish = FinishReason::kMaxNewTokens;
  // One per id: its log-probability under the distribution it was chosen from (after the
  // constraint mask, repetition penalty, temperature, top-k/top-p; greedy and beams: the softmax
  // of the masked, penalized logits) ...
  std::vector<float> logprobs;
  // ... and under the raw model: log_softmax of the model's logits at that step, which equals a
  // teacher-forced forward over prompt + ids (float32: within 1e-4).
  std::vector<float> raw_logprobs;
  // keep_coord_logits: float32 [number of coord ids in `ids`, 1000], the raw model logits of the
  // 1000 coord ids at the steps that chose a coord id, in order. Undefined otherwise.
  torch::Tensor coord_logits_K;
  // Beams: the returned beam's score (sum of logprobs / len^length_penalty); otherwise the sum of logprobs.
  double score = 0.0;
};

struct GenerationStats {
  int64_t num_rows = 0;
  int64_t num_chunks = 0;
  int64_t prefill_tokens = 0;    // real (unpadded) prompt tokens, image pads included
  int64_t decode_steps = 0;      // forwards after the prefills (one token per unfinished row each)
  int64_t generated_tokens = 0;  // all new tokens (each prefill yields the first token of its rows)
  int64_t decode_tokens = 0;     // new tokens yielded by decode steps (beams: every beam's token)
  int64_t decode_row_steps = 0;  // sum over decode forwards of the sequences they computed (finished
                                 // rows leave the batch, so this is < rows * decode_steps when rows end early)
  double vision_seconds = 0.0;   // encode_images
  double prefill_seconds = 0.0;  // prefill forwards + first-token choice
  double decode_seconds = 0.0;   // decode forwards + token choice
  double decode_tokens_per_second() const { return decode_seconds > 0 ? decode_tokens / decode_seconds : 0.0; }
  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0.0; }
};

struct GenerationResult {
  std::vector<GeneratedRow> rows;  // one per request row, same order
  GenerationStats stats;
};

// Generates for every row of `request`. Padding is exact: a row's tokens are those it gets when
// generated alone, up to float rounding of batched matmuls (greedy ties within ~1e-6 could flip);
// the same holds when other rows finish earlier and leave the batch.
// kSample draws one uniform per new token from the row's own SplitMix64 stream, so fixed seeds
// reproduce the same ids, and a row's ids do not depend on the other rows or on batch_size (with
// the same rounding caveat). Throws DataError for an empty prompt, pad runs that do not match
// image_grid_thw, or ids outside the vocabulary; InternalError (COORDEXP_CHECK) when a
// constraint forbids every id or num_beams > 1 is asked with kSample.
GenerationResult generate(model::Qwen3VL& model, const GenerationRequest& request, const GenerationOptions& options);

}  // namespace coordexp::rollout
