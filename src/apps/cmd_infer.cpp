// `coordexp-train infer --model DIR --data VAL.jsonl --out PRED.jsonl [--config FILE.yaml --set ...]`:
// batched rollouts (rollout.*, greedy by default) over every record of a JSONL, one prediction line
// per record in input order: images, width, height, the generated text, parse status, drop reasons,
// finish reason, token count and objects [{desc, bbox_2d in pixels, score}] (infer.coord_readout:
// discrete bins or CoordExp expectation). Resumable (records whose images[0] already has a line are
// skipped), progress with ETA, torchrun-style sharding (rank r takes records r, r+W, ... into
// PRED.jsonl.rank<r>; rank 0 merges in input order). A bad record or image gives an "error" line
// and exit status 3 (the other records are still predicted).
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
#include "coordexp/eval/predict.h"
#include "coordexp/dist/launch_env.h"
#include "coordexp/dist/process_group.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/progress.h"
#include "coordexp/util/error.h"

namespace coordexp::apps {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// Exit status when some records got an "error" line in this run (the same value `eval` uses for
// skipped input): the output is complete and resumable, but not every record was predicted.
constexpr int kExitSomeRecordsFailed = 3;

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
    done[eval::record_key(j, n)] = line;
  }
  return done;
}

std::string rank_path(const std::string& out, int rank) { return out + ".rank" + std::to_string(rank); }

// Rank 0, after every rank finished: PRED.jsonl holds one line per input record (when predicted)
// in input order, from the lines already in it and the rank files, which are then removed.
void merge_outputs(const std::string& out, int world_size, const std::vector<eval::InputRecord>& inputs) {
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

int run_infer(const InferArgs& a, const GlobalFlags& flags) {
  const config::RunConfig cfg = resolve_run_config(a, flags);
  const dist::LaunchEnv env = dist::launch_env_from_environment();
  std::unique_ptr<dist::ProcessGroup> group;
  if (env.distributed()) group = dist::ProcessGroup::connect(env, group_options(cfg.dist), /*training_on_cuda=*/false);

  eval::Predictor predictor(cfg, cfg.model.path);
  const std::vector<eval::InputRecord> inputs = eval::read_input_records(a.data);
  const std::string my_out = env.distributed() ? rank_path(a.out, env.rank) : a.out;
  std::map<std::string, std::string> done = read_done(my_out);
  if (env.distributed())
    for (auto& [key, line] : read_done(a.out)) done.emplace(key, line);
  std::vector<const eval::InputRecord*> todo;
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
  if (cfg.rollout.constrained) predictor.enable_constraint(model.config().text.vocab_size);
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
  const size_t batch_size = static_cast<size_t>(predictor.batch_size());
  for (size_t begin = 0; begin < todo.size(); begin += batch_size) {
    const size_t end = std::min(todo.size(), begin + batch_size);
    const std::vector<const eval::InputRecord*> batch(todo.begin() + static_cast<std::ptrdiff_t>(begin),
                                                      todo.begin() + static_cast<std::ptrdiff_t>(end));
    for (const auto& l : predictor.predict(model, batch)) {
      if (eval::is_error_line(l)) {
        ++errors;
        spdlog::warn("infer: {}", l["error"].get<std::string>());
      } else {
        objects += static_cast<int64_t>(l["objects"].size());
        generated_tokens += l["num_generated_tokens"].get<int64_t>();
      }
      out << l.dump() << "\n";
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
  if (errors > 0)
    spdlog::warn("infer: {} record(s) could not be predicted; their lines carry an \"error\" field (exit status {})",
                 errors, kExitSomeRecordsFailed);
  if (group) {
    group->barrier();
    if (env.rank == 0) {
      merge_outputs(a.out, env.world_size, inputs);
      spdlog::info("infer: merged {} rank file(s) into {}", env.world_size, a.out);
    }
    group->barrier();
  }
  return errors > 0 ? kExitSomeRecordsFailed : 0;
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
