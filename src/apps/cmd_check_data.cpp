// `coordexp-train check-data [FILE.jsonl...] [--config run.yaml [--set k=v ...]] [--decode-images]`:
// validates JSONL files against the data contract (docs/data/JSONL_CONTRACT.md) without training
// and prints one summary per file. Every line is checked whatever data.on_invalid says. With a
// config (resolved like `train`: extends:, --set), its data/protocol sections apply, the files
// default to data.train_jsonl + data.val_jsonl, and when the tokenizer and image preprocessor of
// the model are found the pipeline checks run too (geometry_not_in_prompt, image_unusable,
// too_long; with --decode-images also image_unreadable / image_size_mismatch).
// Exit 0 when every record is valid, 1 when any record is invalid or a file is unreadable, 2 for a
// bad config or command line.
#include <filesystem>
#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "apps/config_cli.h"
#include "coordexp/config/run_config.h"
#include "coordexp/config/schema.h"
#include "coordexp/data/dataset.h"
#include "coordexp/data/jsonl.h"
#include "coordexp/tokenizer/tokenizer.h"
#include "coordexp/util/error.h"

namespace coordexp::apps {
namespace {

struct CheckDataArgs {
  std::vector<std::string> files;
  ConfigArgs config;
  bool no_image_check = false;
  bool decode_images = false;
};

// Contract checks of one file (every line, whatever on_invalid says). False when anything is wrong.
bool check_contract(const std::string& file, const data::JsonlOptions& options, bool stop_at_first) {
  try {
    const data::JsonlFile f = data::read_jsonl(file, options);
    std::cout << f.summary.format();
    if (f.summary.num_invalid == 0) return true;
    if (stop_at_first)
      std::cout << "note: with data.on_invalid=error, training stops at the first invalid "
                   "record; with skip it drops and counts them\n";
  } catch (const DataError& e) {
    std::cout << "file: " << file << "\nerror: " << e.what() << "\n";
  }
  return false;
}

// Directory holding tokenizer.json for the run (tokenizer.path, else model.path), or "" when the
// config names none that exists.
std::string tokenizer_dir_of(const config::RunConfig& cfg) {
  const std::string dir = cfg.tokenizer.path.empty() ? cfg.model.path : cfg.tokenizer.path;
  if (dir.empty() || !std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json")) return "";
  return dir;
}

// The training pipeline's own checks over the files that passed the contract: builds the dataset
// exactly as `train` does (on_invalid=skip, so everything is counted) and, when asked, every sample.
bool check_pipeline(const std::vector<std::string>& files, const config::RunConfig& cfg, bool decode_images) {
  const std::string tok_dir = tokenizer_dir_of(cfg);
  if (tok_dir.empty() || cfg.model.path.empty()) {
    std::cout << "pipeline checks: skipped (no tokenizer.json under tokenizer.path / model.path); "
                 "geometry_not_in_prompt, image_unusable and too_long were not checked\n";
    return true;
  }
  auto tok = tokenizer::Tokenizer::from_dir(tok_dir);
  if (cfg.tokenizer.add_coord_tokens) tok->ensure_coord_tokens();
  auto preprocessor = std::make_shared<const model::ImagePreprocessor>(
      model::ImagePreprocessor::from_model_dir(cfg.model.path, cfg.preprocess));
  config::DataOptions data = cfg.data;
  data.on_invalid = "skip";
  const data::DatasetOptions dopts = data::DatasetOptions::from_config(data, cfg.protocol);
  const data::DetectionDataset set(files, dopts, tok, preprocessor);
  const data::LoadReport& r = set.load_report();
  // The contract's own reasons were reported per file above; keep the pipeline's.
  data::ReasonCounts dropped;
  for (const auto& reason : {data::kReasonGeometryNotInPrompt, data::kReasonImageUnusable, data::kReasonTooLong})
    if (const auto it = r.invalid.find(reason); it != r.invalid.end()) dropped[reason] = it->second;
  std::vector<std::string> messages;
  for (const auto& m : r.first_errors)
    if (m.find(" [reason ") != std::string::npos) messages.push_back(m);
  int64_t unbuildable = 0;
  if (decode_images) {
    for (int64_t i = 0; i < set.size(); ++i) {
      const data::SampleResult s = set.try_get(i, 0);
      if (s.sample) continue;
      ++unbuildable;
      ++dropped[s.reason];
      if (messages.size() < data::JsonlSummary::kMaxListedErrors) messages.push_back(s.message);
    }
  }
  std::cout << "pipeline checks (tokenizer " << tok_dir << ", max_length " << cfg.data.max_length
            << (decode_images ? ", images decoded" : "") << "):\n"
            << "  usable samples: " << set.size() - unbuildable << "\n";
  for (const auto& [reason, count] : dropped) std::cout << "  " << reason << ": " << count << "\n";
  for (const auto& m : messages) std::cout << "  " << m << "\n";
  return dropped.empty();
}

int run_check_data(CheckDataArgs args, const GlobalFlags& flags) {
  config::RunConfig cfg;
  const bool have_config = !args.config.path.empty();
  if (have_config) {
    cfg = config::read_options<config::RunConfig>(resolve_config_tree(args.config, flags));
  } else if (!args.config.sets.empty()) {
    throw ConfigError("--set needs --config", "check-data --set", "add --config run.yaml");
  }
  cfg.data.validate();
  cfg.protocol.validate();
  if (args.files.empty()) {
    args.files = cfg.data.train_jsonl;
    args.files.insert(args.files.end(), cfg.data.val_jsonl.begin(), cfg.data.val_jsonl.end());
  }
  if (args.files.empty())
    throw ConfigError("no JSONL files to check", "check-data",
                      "name the files, or give --config with data.train_jsonl set");

  data::JsonlOptions options = data::JsonlOptions::from_config(cfg.data, cfg.protocol);
  const bool stop_at_first = options.on_invalid == data::InvalidPolicy::kError;
  options.on_invalid = data::InvalidPolicy::kSkip;  // report everything
  options.check_images = !args.no_image_check;

  bool all_valid = true;
  std::vector<std::string> readable;
  for (const auto& file : args.files) {
    const bool ok = check_contract(file, options, stop_at_first);
    all_valid = all_valid && ok;
    if (ok || std::filesystem::exists(file)) readable.push_back(file);
    std::cout << "\n";
  }
  if (have_config && !readable.empty() && !args.no_image_check)
    all_valid = check_pipeline(readable, cfg, args.decode_images) && all_valid;
  std::cout << (all_valid ? "check-data: all records valid\n" : "check-data: INVALID records found\n");
  return all_valid ? 0 : 1;
}

}  // namespace

CommandRegistration add_check_data_command(CLI::App& app, const GlobalFlags& flags) {
  auto* sub = app.add_subcommand(
      "check-data", "Validate JSONL files against the data contract and, with --config, the "
                    "training pipeline's checks; print a summary (exit 0: all valid, 1: invalid "
                    "records or unreadable file)");
  auto args = std::make_shared<CheckDataArgs>();
  sub->add_option("files", args->files, "JSONL files (default with --config: data.train_jsonl + data.val_jsonl)");
  sub->add_option("--config", args->config.path,
                  "run config YAML (extends: and --set as for train); its data, protocol, "
                  "tokenizer, model and preprocess sections are used");
  sub->add_option("--set", args->config.sets, "Override a config key: --set data.max_length=4096 (repeatable)");
  sub->add_flag("--no-image-check", args->no_image_check,
                "do not check that image files exist (also skips the pipeline checks)");
  sub->add_flag("--decode-images", args->decode_images,
                "with --config: decode and preprocess every image (finds unreadable or mis-sized images)");
  return {sub, [args, &flags] { return run_check_data(*args, flags); }};
}

}  // namespace coordexp::apps
