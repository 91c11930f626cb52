// `coordexp-train eval --gt GT.jsonl --pred PRED.jsonl [--out metrics.json] [--config run.yaml
// [--set k=v ...]]`: COCO bbox metrics with pycocotools' rules plus score-free metrics of a
// prediction file (written by `infer`) against GT of the JSONL data contract (eval/evaluate.h,
// docs/evaluation.md). Prints a summary; writes metrics.json when asked. A config only supplies
// the data/protocol sections (data.coords, data.image_root, protocol.pixel_extent, ...).
// Exit 0: everything evaluated; 3: something was skipped (listed); 1: a file cannot be read;
// 2: bad command line or config.
#include <filesystem>
#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "apps/config_cli.h"
#include "coordexp/config/run_config.h"
#include "coordexp/config/schema.h"
#include "coordexp/eval/evaluate.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::apps {
namespace {

struct EvalArgs {
  std::string gt, pred, out;
  ConfigArgs config;
};

int run_eval(const EvalArgs& a, const GlobalFlags& flags) {
  config::RunConfig cfg;
  if (!a.config.path.empty()) {
    cfg = config::read_options<config::RunConfig>(resolve_config_tree(a.config, flags));
  } else if (!a.config.sets.empty()) {
    throw ConfigError("--set needs --config", "eval --set", "add --config run.yaml");
  }
  cfg.data.validate();
  cfg.protocol.validate();
  const data::JsonlOptions options = data::JsonlOptions::from_config(cfg.data, cfg.protocol);

  const eval::GroundTruth gt = eval::read_ground_truth(a.gt, options);
  const eval::PredictionSet preds = eval::read_predictions(a.pred);
  const eval::EvalResult result = eval::evaluate(gt, preds);
  std::cout << eval::format_summary(result);
  if (!a.out.empty()) {
    const std::filesystem::path out(a.out);
    if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
    util::write_file_atomic(a.out, eval::to_json(result).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    std::cout << "metrics: " << a.out << "\n";
  }
  const int rc = eval::exit_code(result);
  if (rc != 0)
    std::cout << "eval: some input was skipped (see problems above); exit " << rc << "\n";
  return rc;
}

}  // namespace

CommandRegistration add_eval_command(CLI::App& app, const GlobalFlags& flags) {
  auto args = std::make_shared<EvalArgs>();
  auto* sub = app.add_subcommand("eval", "Score predictions (from infer) against GT: COCO bbox AP/AR with "
                                         "pycocotools' rules and score-free precision/recall/F1 (docs/evaluation.md)");
  sub->add_option("--gt", args->gt, "GT JSONL (the data contract, docs/data/JSONL_CONTRACT.md)")->required();
  sub->add_option("--pred", args->pred, "prediction JSONL written by `coordexp-train infer`")->required();
  sub->add_option("--out", args->out, "write metrics.json here");
  sub->add_option("--config", args->config.path, "run config YAML (only its data and protocol sections apply)");
  sub->add_option("--set", args->config.sets, "Override a config key, e.g. --set protocol.pixel_extent=size_minus_one");
  return {sub, [args, &flags] { return run_eval(*args, flags); }};
}

}  // namespace coordexp::apps
