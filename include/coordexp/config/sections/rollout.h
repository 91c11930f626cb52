// `rollout:` section — autoregressive generation (greedy, temperature / top-k / top-p sampling or
// beam search; repetition penalty; optional CoordJSON-constrained decoding), used by
// `coordexp-train generate`, `coordexp-train infer` and Channel-B's rollouts. Plain data + validation; the rollout
// module resolves it (stop token names -> ids) in coordexp/rollout/generator.h. No YAML here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct RolloutOptions {
  std::string decoding = "greedy";  // greedy (argmax) | sample (temperature, top_k, top_p)
  int max_new_tokens = 1024;        // generated tokens per row at most (the stop token included)
  double temperature = 1.0;         // sample: logits are divided by it (> 0); greedy ignores it
  int top_k = 0;                    // sample: keep the k most likely tokens (0 = all)
  double top_p = 1.0;               // sample: keep the smallest most-likely set with mass >= top_p (1 = all)
  int batch_size = 8;               // rows generated together (prompts of different lengths are padded)
  int64_t seed = 0;                 // sample: row r draws from a generator seeded by (seed, r)
  std::vector<std::string> stop_tokens{"<|im_end|>", "<|endoftext|>"};  // a row ends at the first of these
  double repetition_penalty = 1.0;  // HF semantics: ids seen in prompt + output get logit/p (>0) or logit*p (<0)
  int num_beams = 1;                // > 1: beam search (greedy decoding only); the best beam is returned
  double length_penalty = 1.0;      // beams: a finished beam scores sum log-prob / (generated tokens)^length_penalty
  bool constrained = false;         // CoordJSON grammar mask on every token choice (never for Channel-B)
  int decode_threads = 1;           // compute threads during decode steps (0 = the process's setting)

  void validate() const {
    if (decoding != "greedy" && decoding != "sample")
      throw ConfigError("invalid value '" + decoding + "'", "key rollout.decoding", "allowed: greedy | sample");
    if (max_new_tokens < 1)
      throw ConfigError("must be >= 1, got " + std::to_string(max_new_tokens), "key rollout.max_new_tokens");
    if (!(temperature > 0.0))
      throw ConfigError("must be > 0, got " + std::to_string(temperature), "key rollout.temperature",
                        "use rollout.decoding: greedy for argmax decoding");
    if (top_k < 0) throw ConfigError("must be >= 0 (0 = off), got " + std::to_string(top_k), "key rollout.top_k");
    if (!(top_p > 0.0 && top_p <= 1.0))
      throw ConfigError("must be in (0, 1], got " + std::to_string(top_p), "key rollout.top_p", "1 turns top-p off");
    if (batch_size < 1) throw ConfigError("must be >= 1, got " + std::to_string(batch_size), "key rollout.batch_size");
    if (seed < 0) throw ConfigError("must be >= 0, got " + std::to_string(seed), "key rollout.seed");
    if (stop_tokens.empty())
      throw ConfigError("needs at least one token", "key rollout.stop_tokens", "the default is [<|im_end|>, <|endoftext|>]");
    if (!(repetition_penalty > 0.0 && repetition_penalty <= 10.0))
      throw ConfigError("must be in (0, 10], got " + std::to_string(repetition_penalty), "key rollout.repetition_penalty",
                        "1.0 turns it off; 1.05 is a typical value against duplicate loops");
    if (num_beams < 1 || num_beams > 64)
      throw ConfigError("must be in [1, 64], got " + std::to_string(num_beams), "key rollout.num_beams", "1 turns beam search off");
    if (num_beams > 1 && decoding != "greedy")
      throw ConfigError("beam search needs rollout.decoding: greedy, got '" + decoding + "'", "key rollout.num_beams",
                        "set rollout.num_beams: 1 to sample");
    if (decode_threads < 0)
      throw ConfigError("must be >= 0, got " + std::to_string(decode_threads), "key rollout.decode_threads",
                        "0 keeps the process's thread count; 1 (default) is fastest on a loaded machine");
    if (!(length_penalty >= -10.0 && length_penalty <= 10.0))
      throw ConfigError("must be in [-10, 10], got " + std::to_string(length_penalty), "key rollout.length_penalty",
                        "1.0 (Hugging Face's default) averages the log-probability per token; 0 sums it");
  }
};

template <class V>
void visit_fields(V& v, RolloutOptions& o) {
  v.field(Field("decoding", "greedy: argmax each step; sample: draw from softmax(logits / temperature) "
                            "restricted by top_k, then top_p")
              .choices({"greedy", "sample"}), o.decoding);
  v.field(Field("max_new_tokens", "generated tokens per row at most (the stop token included)").min(1),
          o.max_new_tokens);
  v.field(Field("temperature", "sample: logits are divided by it; greedy ignores it").min(1e-6), o.temperature);
  v.field(Field("top_k", "sample: keep only the k most likely tokens (0 = off)").min(0), o.top_k);
  v.field(Field("top_p", "sample: keep the smallest set of most likely tokens whose probability mass "
                         ">= top_p (1 = off)").range(1e-6, 1.0), o.top_p);
  v.field(Field("batch_size", "rows generated together (different prompt lengths are padded exactly)").min(1),
          o.batch_size);
  v.field(Field("seed", "sample: row r of a request draws from a generator seeded by (seed, r), so a row's "
                        "draws do not depend on the other rows or on batch_size").min(0), o.seed);
  v.field(Field("stop_tokens", "token texts that end a row (it is kept as the row's last token)"), o.stop_tokens);
  v.field(Field("repetition_penalty", "Hugging Face repetition penalty: before each choice, the logit of every id "
                                      "present in the prompt or the generated tokens so far is divided by it "
                                      "(positive logit) or multiplied by it (negative); 1 = off")
              .range(1e-6, 10.0), o.repetition_penalty);
  v.field(Field("num_beams", "beam search width (greedy decoding only; the best finished beam is returned); "
                             "1 = off").range(1, 64), o.num_beams);
  v.field(Field("length_penalty", "beam search: a finished beam's score is its summed log-probability / "
                                  "(generated tokens)^length_penalty (1 = mean per token, 0 = plain sum)")
              .range(-10.0, 10.0), o.length_penalty);
  v.field(Field("constrained", "mask every token choice with the CoordJSON grammar (coord tokens only inside "
                               "bbox_2d, structure where the grammar needs it); off for Channel-B, which must see "
                               "real failures"), o.constrained);
  v.field(Field("decode_threads", "compute threads (LibTorch + BLIS) during KV-cache decode steps, restored "
                                  "afterwards; 0 keeps the process's setting. Decode ops are tiny: extra threads "
                                  "mostly wait for each other, and on a loaded machine decode gets many times "
                                  "slower (docs/performance.md)").min(0), o.decode_threads);
}

}  // namespace coordexp::config
