// `coordexp-train infer --model DIR --data VAL.jsonl --out PRED.jsonl [--config FILE.yaml --set ...]`:
// batched rollouts (rollout.*, greedy by default) over every record of a JSONL, one prediction line
// per record in input order: images, width, height, the generated text, parse status, drop reasons,
// finish reason, token count and objects [{desc, bbox_2d in pixels, score}] (infer.coord_readout:
// discrete bins or CoordExp expectation). Resumable (records whose images[0] already has a line are
// skipped), progress with ETA, torchrun-style sharding (rank r takes records r, r+W, ... into
// PRED.jsonl.rank<r>; rank 0 merges in input order). A bad record or image gives an "error" line.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/config_cli.h"
#include "coordexp/config/run_config.h"
#include "coordexp/config/schema.h"
#include "coordexp/data/jsonl.h"
#include "coordexp/data/prompt.h"
#include "coordexp/dist/launch_env.h"
#include "coordexp/dist/process_group.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/model/vision_preprocess.h"
#include "coordexp/protocol/coords.h"
#include "coordexp/protocol/parse.h"
#include "coordexp/rollout/coordjson_constraint.h"
#include "coordexp/rollout/generator.h"
#include "coordexp/rollout/scoring.h"
#include "coordexp/tokenizer/tokenizer.h"
#include "coordexp/train/progress.h"
#include "coordexp/util/error.h"

namespace coordexp::apps {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

struct InferArgs {
  std::string model_dir, data, out;
  ConfigArgs config;
};

config::RunConfig resolve_run_config(const InferArgs& a, const GlobalFlags& flags) {
  config::RunConfig cfg;
  if (!a.config.path.empty()) {
    cfg = config::read_options<config::RunConfig>(resolve_config_tree(a.config, flags));
  } else if (!a.config.sets.empty()) {
    throw ConfigError("--set needs --config", "infer --set", "add --config run.yaml");
  }
  if (!a.model_dir.empty()) cfg.model.path = a.model_dir;
  if (cfg.model.path.empty())
    throw ConfigError("no model", "infer --model", "pass --model DIR (or model.path in --config)");
  cfg.model.validate();
  cfg.data.validate();
  cfg.protocol.validate();
  cfg.rollout.validate();
  cfg.infer.validate();
  cfg.coord.validate();
  cfg.dist.validate();
  return cfg;
}

// One input record: its position, raw line and the key that identifies it in PRED.jsonl.
struct InputRecord {
  int64_t index = 0;  // among the non-blank lines
  int64_t line = 0;   // 1-based line number
  std::string text;
  std::string key;    // images[0] as written; "line:N" when the line has none
  json images = json::array();
};

std::string key_of(const json& j, int64_t line) {
  if (j.is_object() && j.contains("images") && j["images"].is_array() && !j["images"].empty() &&
      j["images"][0].is_string())
    return j["images"][0].get<std::string>();
  if (j.is_object() && j.contains("line") && j["line"].is_number_integer())
    return "line:" + std::to_string(j["line"].get<int64_t>());
  return "line:" + std::to_string(line);
}

std::vector<InputRecord> read_inputs(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError("cannot read the input JSONL", path, "check --data");
  std::vector<InputRecord> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    InputRecord r;
    r.index = static_cast<int64_t>(out.size());
    r.line = n;
    r.text = line;
    const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    r.key = key_of(j, n);
    if (!j.is_discarded() && j.is_object() && j.contains("images") && j["images"].is_array()) r.images = j["images"];
    out.push_back(std::move(r));
  }
  return out;
}

// Prediction lines already in `path`, by key. A last line cut off by an interrupted run (no
// newline, not JSON) is truncated away so appending continues on a clean line.
std::map<std::string, std::string> read_done(const std::string& path) {
  std::map<std::string, std::string> done;
  if (!fs::exists(path)) return done;
  std::string content;
  {
    std::ifstream in(path, std::ios::binary);
    content.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t last_nl = content.rfind('\n');
  const size_t complete = last_nl == std::string::npos ? 0 : last_nl + 1;
  if (complete < content.size()) {
    spdlog::warn("{}: dropping an incomplete last line ({} bytes) left by an interrupted run", path,
                 content.size() - complete);
    fs::resize_file(path, complete);
    content.resize(complete);
  }
  size_t begin = 0;
  int64_t n = 0;
  while (begin < content.size()) {
    const size_t end = content.find('\n', begin);
    const std::string line = content.substr(begin, end - begin);
    begin = end + 1;
    ++n;
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      spdlog::warn("{}:{}: not a JSON object; that record will be predicted again", path, n);
      continue;
    }
    done[key_of(j, n)] = line;
  }
  return done;
}

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

struct Context {
  config::RunConfig cfg;
  std::shared_ptr<tokenizer::Tokenizer> tok;
  std::optional<model::ImagePreprocessor> preprocessor;
  data::PromptSpec spec;
  data::JsonlOptions jsonl;
  protocol::CoordConvention convention;
  rollout::GenerationOptions gen;
  std::string jsonl_dir;
  std::string data_path;
  bool expectation = false;
};

// Validates the record and loads its images; an error message instead when anything fails.
std::variant<Prepared, std::string> prepare(const Context& c, const InputRecord& in) {
  try {
    std::string line = in.text;
    // Prediction inputs need no GT: a record without "objects" is read as having none.
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && !j.contains("objects")) {
      j["objects"] = json::array();
      line = j.dump();
    }
    const auto v = data::validate_record(line, {c.data_path, in.line, c.jsonl_dir}, c.jsonl);
    if (!v.record) return v.error ? v.error->message() : std::string("invalid record");
    Prepared p;
    p.input = &in;
    p.record = *v.record;
    std::vector<torch::Tensor> rgb;
    for (const auto& path : p.record.images) rgb.push_back(model::load_rgb_image(path));
    p.images = (*c.preprocessor)(rgb, p.record.images);
    std::vector<int> pads;
    for (const auto& g : p.images.images) pads.push_back(static_cast<int>(g.num_image_tokens));
    const auto chat = tokenizer::build_chat_prompt(*c.tok, data::detection_chat_prompt(c.spec, pads));
    p.prompt.assign(chat.ids.begin(), chat.ids.end());
    return p;
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
}

json prediction_line(const Context& c, const Prepared& p, const rollout::GeneratedRow& row) {
  const std::vector<tokenizer::TokenId> ids(row.ids.begin(), row.ids.end());
  std::vector<tokenizer::TokenId> answer = ids;
  if (row.finish == rollout::FinishReason::kEos && !answer.empty()) answer.pop_back();
  const protocol::ParseResult parsed = protocol::parse_ids(ids, *c.tok);
  const auto scores = rollout::object_scores(parsed, row.raw_logprobs);
  std::vector<std::vector<double>> expect;
  if (c.expectation)
    expect = rollout::expectation_coords(parsed, row.ids, row.coord_logits_K,
                                         {static_cast<int64_t>(c.tok->coord_vocab().first_id)}, c.cfg.coord.decode_tau);
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
      norm.push_back(c.expectation ? expect[i][k] : protocol::bin_to_norm(e.object.bins[k]));
    std::array<double, 4> box{1.0, 1.0, 0.0, 0.0};  // x1, y1, x2, y2 (a polygon: its bounding box)
    for (size_t k = 0; k < norm.size(); ++k) {
      const size_t axis = k % 2;
      box[axis] = std::min(box[axis], norm[k]);
      box[axis + 2] = std::max(box[axis + 2], norm[k]);
    }
    if (e.object.kind == protocol::GeometryKind::kBbox) box = {norm[0], norm[1], norm[2], norm[3]};
    const auto px = protocol::norm_box_to_pixels(box, p.record.width, p.record.height, c.convention);
    json o;
    o["desc"] = e.object.desc;
    o["bbox_2d"] = {px[0], px[1], px[2], px[3]};
    if (e.object.kind == protocol::GeometryKind::kPoly) {
      json poly = json::array();
      for (size_t k = 0; k < norm.size(); ++k)
        poly.push_back(protocol::norm_to_pixel(std::clamp(norm[k], 0.0, 1.0), k % 2 == 0 ? p.record.width : p.record.height,
                                               c.convention.pixel_extent));
      o["poly"] = poly;
    }
    o["score"] = scores[i];
    objects.push_back(o);
  }
  json j;
  j["images"] = p.input->images;
  j["width"] = p.record.width;
  j["height"] = p.record.height;
  j["text"] = c.tok->decode(answer);
  j["parse_status"] = protocol::rollout_status_name(parsed.status);
  j["drop_reasons"] = drops;
  j["finish_reason"] = rollout::finish_reason_name(row.finish);
  j["num_generated_tokens"] = static_cast<int64_t>(row.ids.size());
  j["objects"] = objects;
  return j;
}

// Generates for a batch of prepared records; a batch that fails is retried record by record so
// only the failing record gets an error line. Returns one line per prepared record, in order.
std::vector<json> run_batch(Context& c, model::Qwen3VL& model, const std::vector<Prepared>& batch) {
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
  std::vector<json> out;
  try {
    const auto res = generate(0, batch.size());
    for (size_t i = 0; i < batch.size(); ++i) out.push_back(prediction_line(c, batch[i], res.rows[i]));
    return out;
  } catch (const std::exception& e) {
    if (batch.size() == 1) return {error_line(*batch[0].input, e.what())};
    spdlog::warn("a batch of {} records failed ({}); retrying them one by one", batch.size(), e.what());
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    try {
      out.push_back(prediction_line(c, batch[i], generate(i, i + 1).rows[0]));
    } catch (const std::exception& e) {
      out.push_back(error_line(*batch[i].input, e.what()));
    }
  }
  return out;
}

std::string rank_path(const std::string& out, int rank) { return out + ".rank" + std::to_string(rank); }

// Rank 0, after every rank finished: PRED.jsonl holds one line per input record (when predicted)
// in input order, from the lines already in it and the rank files, which are then removed.
void merge_outputs(const std::string& out, int world_size, const std::vector<InputRecord>& inputs) {
  std::map<std::string, std::string> lines = read_done(out);
  for (int r = 0; r < world_size; ++r)
    for (auto& [key, line] : read_done(rank_path(out, r))) lines[key] = line;
  const std::string tmp = out + ".merging";
  {
    std::ofstream o(tmp, std::ios::trunc);
    for (const auto& in : inputs)
      if (auto it = lines.find(in.key); it != lines.end()) o << it->second << "\n";
    if (!o) throw DataError("cannot write the merged predictions", tmp);
  }
  fs::rename(tmp, out);
  for (int r = 0; r < world_size; ++r) fs::remove(rank_path(out, r));
}

dist::GroupOptions group_options(const config::DistOptions& d) {
  dist::GroupOptions o;
  o.backend = d.backend;
  o.timeout_s = d.timeout_s;
  o.bucket_bytes = int64_t{d.bucket_mb} << 20;
  return o;
}

int run_infer(const InferArgs& a, const GlobalFlags& flags) {
  Context c;
  c.cfg = resolve_run_config(a, flags);
  const auto& cfg = c.cfg;
  const dist::LaunchEnv env = dist::launch_env_from_environment();
  std::unique_ptr<dist::ProcessGroup> group;
  if (env.distributed()) group = dist::ProcessGroup::connect(env, group_options(cfg.dist), /*training_on_cuda=*/false);

  const std::string tok_dir = cfg.tokenizer.path.empty() ? cfg.model.path : cfg.tokenizer.path;
  c.tok = tokenizer::Tokenizer::from_dir(tok_dir);
  if (cfg.tokenizer.add_coord_tokens) c.tok->ensure_coord_tokens();
  c.gen = rollout::GenerationOptions::from_config(cfg.rollout, *c.tok);
  c.expectation = cfg.infer.coord_readout == "expectation";
  if (c.expectation) {
    if (!c.tok->coord_vocab().valid())
      throw ConfigError("the tokenizer has no coord tokens", "key infer.coord_readout",
                        "use a model with coord tokens (expand-vocab) or infer.coord_readout: discrete");
    c.gen.keep_coord_logits = true;
    c.gen.first_coord_id = c.tok->coord_vocab().first_id;
  }
  c.preprocessor.emplace(model::ImagePreprocessor::from_model_dir(cfg.model.path, cfg.preprocess));
  c.spec = data::PromptSpec::from_config(cfg.data, cfg.protocol);
  c.jsonl = data::JsonlOptions::from_config(cfg.data, cfg.protocol);
  c.convention = protocol::coord_convention(cfg.protocol);
  c.data_path = a.data;
  c.jsonl_dir = fs::path(a.data).parent_path().string();

  const std::vector<InputRecord> inputs = read_inputs(a.data);
  const std::string my_out = env.distributed() ? rank_path(a.out, env.rank) : a.out;
  std::map<std::string, std::string> done = read_done(my_out);
  if (env.distributed())
    for (auto& [key, line] : read_done(a.out)) done.emplace(key, line);
  std::vector<const InputRecord*> todo;
  int64_t mine = 0;
  for (const auto& in : inputs) {
    if (in.index % env.world_size != env.rank) continue;
    ++mine;
    if (!done.count(in.key)) todo.push_back(&in);
  }
  spdlog::info("infer: {} record(s) in {}; rank {}/{} takes {}, {} already in {}, {} to predict", inputs.size(), a.data,
               env.rank, env.world_size, mine, mine - static_cast<int64_t>(todo.size()), my_out, todo.size());

  auto model = model::Qwen3VL::load(cfg.model.path, model::ModelRuntime::from_options(cfg.model));
  model.module()->eval();
  // rollout.constrained: the CoordJSON grammar masks every step (rollout/coordjson_constraint.h).
  std::unique_ptr<rollout::ConstraintFactory> constraint;
  if (cfg.rollout.constrained) {
    constraint = rollout::make_coordjson_constraint(
        *c.tok, rollout::CoordJsonConstraintOptions::from_config(cfg.protocol, cfg.data, model.config().text.vocab_size));
    c.gen.constraint = constraint.get();
  }
  std::ofstream out(my_out, std::ios::app);
  if (!out) throw DataError("cannot open the output for appending", my_out, "check --out");

  const auto t0 = Clock::now();
  auto last_report = t0;
  int64_t written = 0, errors = 0, objects = 0, generated_tokens = 0;
  auto report = [&](bool final) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    const double rate = elapsed > 0 ? static_cast<double>(written) / elapsed : 0.0;
    const double eta = rate > 0 ? static_cast<double>(todo.size() - written) / rate : -1.0;
    spdlog::info("infer{}: {}/{} records | {:.2f} images/s | {:.0f} tok/s | {} object(s) | {} error(s) | {} {}",
                 final ? " done" : "", written, todo.size(), rate, elapsed > 0 ? generated_tokens / elapsed : 0.0,
                 objects, errors, final ? "elapsed" : "ETA", train::format_duration(final ? elapsed : eta));
  };
  const size_t batch_size = static_cast<size_t>(cfg.rollout.batch_size);
  for (size_t begin = 0; begin < todo.size(); begin += batch_size) {
    const size_t end = std::min(todo.size(), begin + batch_size);
    std::vector<Prepared> batch;
    std::vector<std::optional<json>> lines(end - begin);
    std::vector<size_t> slot_of_batch;
    for (size_t i = begin; i < end; ++i) {
      auto p = prepare(c, *todo[i]);
      if (auto* err = std::get_if<std::string>(&p)) {
        lines[i - begin] = error_line(*todo[i], *err);
      } else {
        batch.push_back(std::move(std::get<Prepared>(p)));
        slot_of_batch.push_back(i - begin);
      }
    }
    if (!batch.empty()) {
      auto predicted = run_batch(c, model, batch);
      for (size_t k = 0; k < predicted.size(); ++k) lines[slot_of_batch[k]] = std::move(predicted[k]);
    }
    for (auto& l : lines) {
      if (l->contains("error")) {
        ++errors;
        spdlog::warn("infer: {}", (*l)["error"].get<std::string>());
      } else {
        objects += static_cast<int64_t>((*l)["objects"].size());
        generated_tokens += (*l)["num_generated_tokens"].get<int64_t>();
      }
      out << l->dump() << "\n";
      ++written;
    }
    out.flush();
    const double since = std::chrono::duration<double>(Clock::now() - last_report).count();
    if (cfg.infer.progress_every_s > 0 && since >= cfg.infer.progress_every_s && end < todo.size()) {
      report(false);
      last_report = Clock::now();
    }
  }
  out.close();
  report(true);
  if (errors > 0) spdlog::warn("infer: {} record(s) could not be predicted; their lines carry an \"error\" field", errors);
  if (group) {
    group->barrier();
    if (env.rank == 0) {
      merge_outputs(a.out, env.world_size, inputs);
      spdlog::info("infer: merged {} rank file(s) into {}", env.world_size, a.out);
    }
    group->barrier();
  }
  return 0;
}

}  // namespace

CommandRegistration add_infer_command(CLI::App& app, const GlobalFlags& flags) {
  auto args = std::make_shared<InferArgs>();
  auto* sub = app.add_subcommand("infer", "Predict boxes for every record of a JSONL: batched rollouts (rollout.*), "
                                          "one prediction line per record (resumable, multi-rank)");
  sub->add_option("--model", args->model_dir, "Hugging Face model directory (default: model.path of --config)");
  sub->add_option("--data", args->data, "input JSONL (the data contract; objects optional)")->required();
  sub->add_option("--out", args->out, "predictions JSONL (appended; records already in it are skipped)")->required();
  sub->add_option("--config", args->config.path, "run config YAML (model, tokenizer, data prompt, preprocess, rollout, infer)");
  sub->add_option("--set", args->config.sets, "Override a config key: --set infer.coord_readout=expectation (repeatable)");
  return {sub, [args, &flags] { return run_infer(*args, flags); }};
}

}  // namespace coordexp::apps
