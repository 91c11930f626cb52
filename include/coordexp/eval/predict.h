// Prediction over JSONL records: what `coordexp-train infer` writes and what train-time detection
// evaluation (`eval.detection`) scores. A Predictor holds the tokenizer, preprocessor, prompt and
// generation settings of one run config; `predict` turns a batch of input records into one
// prediction line each (docs/rollout.md: images, width, height, text, parse_status, drop_reasons,
// finish_reason, num_generated_tokens, objects [{desc, bbox_2d in pixels, score}]) or an "error"
// line for a record that cannot be read or generated. It never throws on record content.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordexp/config/run_config.h"
#include "coordexp/data/jsonl.h"
#include "coordexp/data/prompt.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/model/vision_preprocess.h"
#include "coordexp/protocol/coords.h"
#include "coordexp/rollout/constraint.h"
#include "coordexp/rollout/generator.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::eval {

// One input record: where it is, its raw line and the key that identifies its prediction line.
struct InputRecord {
  std::string file;    // the JSONL it came from (relative image paths resolve against its folder)
  int64_t index = 0;   // among the non-blank lines of all files read together
  int64_t line = 0;    // 1-based line number in `file`
  std::string text;
  std::string key;     // images[0] as written; "line:N" when the line has none
  nlohmann::ordered_json images = nlohmann::ordered_json::array();
};

// The key of a JSONL line (input or prediction): images[0] as written, else "line:N" from its
// "line" field, else from `line_no`.
std::string record_key(const nlohmann::ordered_json& j, int64_t line_no);

// Every non-blank line of `path`, in order (at most `max_records` when > 0). Throws DataError
// when the file cannot be read; line content is not validated here (predict does it).
std::vector<InputRecord> read_input_records(const std::string& path, int64_t max_records = 0);

class Predictor {
 public:
  // Reads the tokenizer (tokenizer.path, else the model dir), the preprocessor of `model_dir`
  // and cfg's data/protocol/rollout/infer/coord settings. Throws ConfigError for impossible
  // settings (expectation readout without coord tokens).
  Predictor(const config::RunConfig& cfg, const std::string& model_dir);
  // A Predictor for a tokenizer the caller already has (the trainer's).
  Predictor(const config::RunConfig& cfg, const std::string& model_dir, std::shared_ptr<const tokenizer::Tokenizer> tok);
  ~Predictor();
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;

  // rollout.constrained: the CoordJSON grammar masks every decode step. `vocab_size` is the
  // model's (logit rows beyond the tokenizer are never allowed).
  void enable_constraint(int64_t vocab_size);

  // One line per record, in order. Generates with `model` as it is (the caller sets eval mode and
  // no-grad); a failed batch is retried record by record so only the failing record gets an
  // error line ({"images", "line", "error"}).
  std::vector<nlohmann::ordered_json> predict(model::Qwen3VL& model, const std::vector<const InputRecord*>& records);

  const rollout::GenerationOptions& generation() const;
  int64_t batch_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// An error line's marker: predict's output lines for unusable records carry this key.
bool is_error_line(const nlohmann::ordered_json& line);

}  // namespace coordexp::eval
