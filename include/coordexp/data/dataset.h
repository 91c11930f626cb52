// The detection dataset: JSONL records (jsonl.h) -> training samples. A sample holds the
// preprocessed images (pixel_values, grids, <|image_pad|> counts), the full token ids = detection
// prompt + CoordJSON answer + <|im_end|>, labels (-100 before the answer), answer token types,
// per-object spans and coord positions (full-sequence positions taken from the renderer's layout,
// never found by searching ids) and GT geometry (bins + continuous c_gt). Applies data.on_invalid at
// load time and reports why a sample cannot be built. No batching, threads or shuffling (loader.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coordexp/config/sections/data.h"
#include "coordexp/config/sections/protocol.h"
#include "coordexp/coord/masks.h"
#include "coordexp/data/jsonl.h"
#include "coordexp/data/prompt.h"
#include "coordexp/model/vision_preprocess.h"
#include "coordexp/protocol/coordjson.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::data {

// Label of a position that is not supervised (HF convention).
inline constexpr int32_t kIgnoreLabel = -100;

// Reason name -> count. Load-time reasons are the JSONL rules (record_rule_name) plus
// geometry_not_in_prompt, image_unusable and too_long; build-time reasons are kSkipReasons.
using ReasonCounts = std::map<std::string, int64_t>;

// Why a sample could not be built from a valid record (snake_case names used in logs and metrics).
inline constexpr const char* kReasonImageUnreadable = "image_unreadable";      // missing / corrupt file
inline constexpr const char* kReasonImageSizeMismatch = "image_size_mismatch"; // decoded != width x height
inline constexpr const char* kReasonImageUnusable = "image_unusable";          // smart_resize refuses it
inline constexpr const char* kReasonTooLong = "too_long";                      // > data.max_length tokens
inline constexpr const char* kReasonGeometryNotInPrompt = "geometry_not_in_prompt";

// One GT object of a sample, in sequence order.
struct SampleObject {
  size_t record_object = 0;             // index into Record::objects (file order)
  std::string desc;
  protocol::GeometryKind kind = protocol::GeometryKind::kBbox;
  std::vector<int> bins;                // flat x, y, x, y, ...: the rendered coord tokens' values
  std::vector<double> c_gt;             // continuous normalized [0, 1] values, same length
  protocol::TokenRange record;          // full-sequence positions of the record's tokens
  protocol::TokenRange desc_tokens;     // full-sequence positions of the desc content tokens
  std::vector<int64_t> coord_positions; // full-sequence input positions of its coord tokens, in order
};

struct Sample {
  int64_t index = -1;   // dataset index
  int64_t epoch = 0;    // epoch the object order was drawn for
  std::string source;   // "file.jsonl:17"

  torch::Tensor pixel_values;                // float32 [num_patches, patch_dim], images concatenated
  torch::Tensor image_grid_thw;              // int64 [num_images, 3]
  std::vector<int64_t> image_token_counts;   // <|image_pad|> tokens per image

  std::vector<tokenizer::TokenId> input_ids;  // prompt + answer + <|im_end|>
  std::vector<int32_t> labels;                // kIgnoreLabel on [0, answer_begin), else input_ids
  int64_t answer_begin = 0;                   // = prompt length; the answer is [answer_begin, size)
  std::vector<protocol::TokenType> answer_types;  // one per answer token
  std::vector<SampleObject> objects;              // in sequence order
  int64_t array_close = -1;  // full-sequence position of the token holding the top-level `]`
  int64_t outer_close = -1;  // ... of the token holding the outermost `}`
  int64_t eos = -1;          // ... of the final <|im_end|>

  int64_t length() const { return static_cast<int64_t>(input_ids.size()); }
  int64_t answer_length() const { return length() - answer_begin; }
  // The answer's layout for the mask / loss builders (context gt): positions relative to
  // answer_begin, every object kMatched with gt_box = its bbox c_gt (zeros for polygons).
  protocol::ResponseLayout response_layout() const;
};

// Everything the dataset needs, resolved from the config sections.
struct DatasetOptions {
  JsonlOptions jsonl;
  ObjectOrder object_order = ObjectOrder::kSorted;
  protocol::FieldOrder field_order = protocol::FieldOrder::kDescFirst;
  PromptSpec prompt;
  int64_t max_length = 8192;  // prompt + answer tokens, image tokens included
  int num_threads = 1;        // threads that compute sequence lengths while loading

  static DatasetOptions from_config(const config::DataOptions& data, const config::ProtocolOptions& protocol);
};

// What happened while reading the JSONL files.
struct LoadReport {
  std::vector<std::string> files;
  int64_t num_lines = 0;        // non-blank lines read
  int64_t num_samples = 0;      // records kept
  int64_t num_objects = 0;      // objects of the kept records
  ReasonCounts invalid;         // records dropped by reason (on_invalid=skip)
  std::vector<std::string> first_errors;  // up to JsonlSummary::kMaxListedErrors messages
  RecordFixes fixes;            // repairs made while reading (records valid per the JSONL contract)
};

// A sample, or why it could not be built (on_invalid decides what the caller does with it).
struct SampleResult {
  std::optional<Sample> sample;
  std::string reason;   // set when !sample: one of the kReason* names
  std::string message;  // "file.jsonl:17: image 1 is 640x480 but the record says ... (hint: ...)"
};

// Immutable after construction: try_get/get may run on several threads at once.
class DetectionDataset {
 public:
  // Reads and validates `jsonl_files` in order. Records that are invalid, announce a geometry the
  // prompt does not (geometry_not_in_prompt), are refused by smart_resize (image_unusable) or are
  // longer than max_length (too_long, measured with epoch 0's object order) throw DataError naming
  // file:line and the reason (on_invalid=error) or are dropped and counted (skip). Throws
  // ConfigError when the tokenizer lacks the coord tokens.
  DetectionDataset(const std::vector<std::string>& jsonl_files, DatasetOptions options,
                   std::shared_ptr<const tokenizer::Tokenizer> tokenizer,
                   std::shared_ptr<const model::ImagePreprocessor> preprocessor);

  int64_t size() const { return static_cast<int64_t>(records_.size()); }
  const Record& record(int64_t index) const;
  // Tokens of the sample (prompt incl. image tokens + answer + <|im_end|>) with epoch 0's object
  // order, computed from the record's width/height without decoding images. Exact for every epoch
  // unless object_order=random (then it may differ by a few tokens).
  int64_t sequence_length(int64_t index) const;
  const std::vector<int64_t>& sequence_lengths() const { return lengths_; }

  // Builds sample `index` with epoch `epoch`'s object order: decodes and preprocesses the images,
  // renders the prompt and answer. Problems with the data (unreadable image, size mismatch,
  // too long) come back as a reason; bugs throw.
  SampleResult try_get(int64_t index, int64_t epoch) const;
  // try_get without decoding the images: the same tokens, labels, layout and image grids, planned
  // from the record's width/height (as at load); pixel_values is an empty [0, 0] tensor. Cheap: what
  // the trainer counts supervised items from before loading pixels. Reasons that need the decoded
  // image (image_unreadable, image_size_mismatch) are not seen here.
  SampleResult try_get_tokens(int64_t index, int64_t epoch) const;
  // try_get, throwing DataError ("file:line: ...") instead of returning a reason.
  Sample get(int64_t index, int64_t epoch) const;

  const DatasetOptions& options() const { return options_; }
  const LoadReport& load_report() const { return report_; }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  tokenizer::TokenId pad_id() const { return pad_id_; }  // <|endoftext|>

 private:
  // Prompt tokens for `pads` (image token counts): built once per image count, then shifted by the
  // pad counts (each <|image_pad|> is one added token).
  int64_t prompt_length(const std::vector<int>& pads) const;
  // The token part of try_get / try_get_tokens for images of the given geometries.
  SampleResult build_tokens(int64_t index, int64_t epoch, const std::vector<model::ImageGeometry>& images) const;

  DatasetOptions options_;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  std::shared_ptr<const model::ImagePreprocessor> preprocessor_;
  std::vector<Record> records_;
  std::vector<int64_t> lengths_;
  std::map<size_t, int64_t> prompt_base_length_;  // image count -> prompt tokens with one pad each
  LoadReport report_;
  tokenizer::TokenId pad_id_ = -1;
};

}  // namespace coordexp::data
