// Prediction over JSONL records (eval/predict.h): validate the record (objects optional), load and
// preprocess its images, build the training prompt, generate in batches, parse the answer and
// write the prediction line with pixel boxes and object scores.
#include "coordexp/eval/predict.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <variant>

#include "coordexp/protocol/parse.h"
#include "coordexp/rollout/coordjson_constraint.h"
#include "coordexp/rollout/scoring.h"
#include "coordexp/tokenizer/chat_format.h"
#include "coordexp/util/error.h"

namespace coordexp::eval {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// A validated record with its prompt and preprocessed images, ready to generate.
struct Prepared {
  const InputRecord* input = nullptr;
  data::Record record;
  std::vector<int64_t> prompt;
  model::PreprocessedImages images;
};

json error_line(const InputRecord& in, const std::string& error) {
  json j;
  j["images"] = in.images;
  j["line"] = in.line;
  j["error"] = error;
  return j;
}

}  // namespace

std::string record_key(const json& j, int64_t line_no) {
  if (j.is_object() && j.contains("images") && j["images"].is_array() && !j["images"].empty() &&
      j["images"][0].is_string())
    return j["images"][0].get<std::string>();
  if (j.is_object() && j.contains("line") && j["line"].is_number_integer())
    return "line:" + std::to_string(j["line"].get<int64_t>());
  return "line:" + std::to_string(line_no);
}

std::vector<InputRecord> read_input_records(const std::string& path, int64_t max_records) {
  std::ifstream in(path);
  if (!in) throw DataError("cannot read the input JSONL", path, "check the path (a file of the JSONL data contract)");
  std::vector<InputRecord> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (max_records > 0 && static_cast<int64_t>(out.size()) >= max_records) break;
    InputRecord r;
    r.file = path;
    r.index = static_cast<int64_t>(out.size());
    r.line = n;
    r.text = line;
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    r.key = record_key(j, n);
    if (!j.is_discarded() && j.is_object() && j.contains("images") && j["images"].is_array()) r.images = j["images"];
    out.push_back(std::move(r));
  }
  return out;
}

bool is_error_line(const json& line) { return line.is_object() && line.contains("error"); }

struct Predictor::Impl {
  config::RunConfig cfg;
  std::shared_ptr<const tokenizer::Tokenizer> tok;
  std::optional<model::ImagePreprocessor> preprocessor;
  data::PromptSpec spec;
  data::JsonlOptions jsonl;
  protocol::CoordConvention convention;
  rollout::GenerationOptions gen;
  std::unique_ptr<rollout::ConstraintFactory> constraint;
  bool expectation = false;

  std::variant<Prepared, std::string> prepare(const InputRecord& in) const;
  json prediction_line(const Prepared& p, const rollout::GeneratedRow& row) const;
};

Predictor::Predictor(const config::RunConfig& cfg, const std::string& model_dir)
    : Predictor(cfg, model_dir, [&] {
        auto tok = tokenizer::Tokenizer::from_dir(cfg.tokenizer.path.empty() ? model_dir : cfg.tokenizer.path);
        if (cfg.tokenizer.add_coord_tokens) tok->ensure_coord_tokens();
        return std::shared_ptr<const tokenizer::Tokenizer>(tok);
      }()) {}

Predictor::Predictor(const config::RunConfig& cfg, const std::string& model_dir,
                     std::shared_ptr<const tokenizer::Tokenizer> tok)
    : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  c.cfg = cfg;
  c.tok = std::move(tok);
  c.gen = rollout::GenerationOptions::from_config(cfg.rollout, *c.tok);
  c.expectation = cfg.infer.coord_readout == "expectation";
  if (c.expectation) {
    if (!c.tok->coord_vocab().valid())
      throw ConfigError("the tokenizer has no coord tokens", "key infer.coord_readout",
                        "use a model with coord tokens (expand-vocab) or infer.coord_readout: discrete");
    c.gen.keep_coord_logits = true;
    c.gen.first_coord_id = c.tok->coord_vocab().first_id;
  }
  c.preprocessor.emplace(model::ImagePreprocessor::from_model_dir(model_dir, cfg.preprocess));
  c.spec = data::PromptSpec::from_config(cfg.data, cfg.protocol);
  c.jsonl = data::JsonlOptions::from_config(cfg.data, cfg.protocol);
  c.convention = protocol::coord_convention(cfg.protocol);
}

Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;

void Predictor::enable_constraint(int64_t vocab_size) {
  impl_->constraint = rollout::make_coordjson_constraint(
      *impl_->tok, rollout::CoordJsonConstraintOptions::from_config(impl_->cfg.protocol, impl_->cfg.data, vocab_size));
  impl_->gen.constraint = impl_->constraint.get();
}

const rollout::GenerationOptions& Predictor::generation() const { return impl_->gen; }
int64_t Predictor::batch_size() const { return std::max<int64_t>(1, impl_->cfg.rollout.batch_size); }

// Validates the record and loads its images; an error message instead when anything fails.
std::variant<Prepared, std::string> Predictor::Impl::prepare(const InputRecord& in) const {
  try {
    std::string line = in.text;
    // Prediction inputs need no GT: a record without "objects" is read as having none.
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && !j.contains("objects")) {
      j["objects"] = json::array();
      line = j.dump();
    }
    const auto v = data::validate_record(line, {in.file, in.line, fs::path(in.file).parent_path().string()}, jsonl);
    if (!v.record) return v.error ? v.error->message() : std::string("invalid record");
    Prepared p;
    p.input = &in;
    p.record = *v.record;
    std::vector<torch::Tensor> rgb;
    for (const auto& path : p.record.images) rgb.push_back(model::load_rgb_image(path));
    p.images = (*preprocessor)(rgb, p.record.images);
    std::vector<int> pads;
    for (const auto& g : p.images.images) pads.push_back(static_cast<int>(g.num_image_tokens));
    const auto chat = tokenizer::build_chat_prompt(*tok, data::detection_chat_prompt(spec, pads));
    p.prompt.assign(chat.ids.begin(), chat.ids.end());
    return p;
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
}

json Predictor::Impl::prediction_line(const Prepared& p, const rollout::GeneratedRow& row) const {
  const std::vector<tokenizer::TokenId> ids(row.ids.begin(), row.ids.end());
  std::vector<tokenizer::TokenId> answer = ids;
  if (row.finish == rollout::FinishReason::kEos && !answer.empty()) answer.pop_back();
  const protocol::ParseResult parsed = protocol::parse_ids(ids, *tok);
  const auto scores = rollout::object_scores(parsed, row.raw_logprobs);
  std::vector<std::vector<double>> expect;
  if (expectation)
    expect = rollout::expectation_coords(parsed, row.ids, row.coord_logits_K,
                                         {static_cast<int64_t>(tok->coord_vocab().first_id)}, cfg.coord.decode_tau);
  json drops = json::object();
  json objects = json::array();
  for (size_t i = 0; i < parsed.entries.size(); ++i) {
    const auto& e = parsed.entries[i];
    if (!e.valid()) {
      const std::string reason = protocol::drop_reason_name(e.reason);
      drops[reason] = drops.value(reason, 0) + 1;
      continue;
    }
    // Normalized coordinates (x, y, ...) of the object: the bins' k/999, or the expectation.
    std::vector<double> norm;
    for (size_t k = 0; k < e.object.bins.size(); ++k)
      norm.push_back(expectation ? expect[i][k] : protocol::bin_to_norm(e.object.bins[k]));
    std::array<double, 4> box{1.0, 1.0, 0.0, 0.0};  // x1, y1, x2, y2 (a polygon: its bounding box)
    for (size_t k = 0; k < norm.size(); ++k) {
      const size_t axis = k % 2;
      box[axis] = std::min(box[axis], norm[k]);
      box[axis + 2] = std::max(box[axis + 2], norm[k]);
    }
    if (e.object.kind == protocol::GeometryKind::kBbox) box = {norm[0], norm[1], norm[2], norm[3]};
    const auto px = protocol::norm_box_to_pixels(box, p.record.width, p.record.height, convention);
    json o;
    o["desc"] = e.object.desc;
    o["bbox_2d"] = {px[0], px[1], px[2], px[3]};
    if (e.object.kind == protocol::GeometryKind::kPoly) {
      json poly = json::array();
      for (size_t k = 0; k < norm.size(); ++k)
        poly.push_back(protocol::norm_to_pixel(std::clamp(norm[k], 0.0, 1.0), k % 2 == 0 ? p.record.width : p.record.height,
                                               convention.pixel_extent));
      o["poly"] = poly;
    }
    o["score"] = scores[i];
    objects.push_back(o);
  }
  json j;
  j["images"] = p.input->images;
  j["width"] = p.record.width;
  j["height"] = p.record.height;
  j["text"] = tok->decode(answer);
  j["parse_status"] = protocol::rollout_status_name(parsed.status);
  j["drop_reasons"] = drops;
  j["finish_reason"] = rollout::finish_reason_name(row.finish);
  j["num_generated_tokens"] = static_cast<int64_t>(row.ids.size());
  j["objects"] = objects;
  return j;
}

std::vector<json> Predictor::predict(model::Qwen3VL& model, const std::vector<const InputRecord*>& records) {
  Impl& c = *impl_;
  std::vector<std::optional<json>> lines(records.size());
  std::vector<Prepared> batch;
  std::vector<size_t> slot_of_batch;
  for (size_t i = 0; i < records.size(); ++i) {
    auto p = c.prepare(*records[i]);
    if (auto* err = std::get_if<std::string>(&p)) {
      lines[i] = error_line(*records[i], *err);
    } else {
      batch.push_back(std::move(std::get<Prepared>(p)));
      slot_of_batch.push_back(i);
    }
  }
  auto generate = [&](size_t begin, size_t end) {
    rollout::GenerationRequest req;
    std::vector<torch::Tensor> px, grid;
    for (size_t i = begin; i < end; ++i) {
      req.prompts.push_back(batch[i].prompt);
      px.push_back(batch[i].images.pixel_values);
      grid.push_back(batch[i].images.image_grid_thw);
    }
    req.pixel_values = torch::cat(px);
    req.image_grid_thw = torch::cat(grid);
    return rollout::generate(model, req, c.gen);
  };
  if (!batch.empty()) {
    bool batch_failed = false;
    try {
      const auto res = generate(0, batch.size());
      for (size_t i = 0; i < batch.size(); ++i) lines[slot_of_batch[i]] = c.prediction_line(batch[i], res.rows[i]);
    } catch (const std::exception& e) {
      if (batch.size() == 1) {
        lines[slot_of_batch[0]] = error_line(*batch[0].input, e.what());
      } else {
        spdlog::warn("a batch of {} records failed ({}); retrying them one by one", batch.size(), e.what());
        batch_failed = true;
      }
    }
    if (batch_failed) {
      for (size_t i = 0; i < batch.size(); ++i) {
        try {
          lines[slot_of_batch[i]] = c.prediction_line(batch[i], generate(i, i + 1).rows[0]);
        } catch (const std::exception& e) {
          lines[slot_of_batch[i]] = error_line(*batch[i].input, e.what());
        }
      }
    }
  }
  std::vector<json> out;
  out.reserve(lines.size());
  for (auto& l : lines) out.push_back(std::move(*l));
  return out;
}

}  // namespace coordexp::eval
