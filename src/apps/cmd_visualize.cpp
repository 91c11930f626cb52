// `coordexp-train visualize --gt GT.jsonl --pred PRED.jsonl --out DIR [--num N] [--max-images M]`:
// draws GT (green) and predictions (red, with desc and score) on the GT images with OpenCV: one PNG
// per image (the first M, default all) and DIR/contact_sheet.png with the first N (default 16).
// Exit 0 (1 when a file cannot be read or written, 2 for a bad command line).
#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "apps/config_cli.h"
#include "coordexp/config/run_config.h"
#include "coordexp/config/schema.h"
#include "coordexp/eval/visualize.h"
#include "coordexp/util/error.h"

namespace coordexp::apps {
namespace {

struct VisualizeArgs {
  std::string gt, pred, out;
  int num = 16;
  int max_images = 0;
  ConfigArgs config;
};

int run_visualize(const VisualizeArgs& a, const GlobalFlags& flags) {
  if (a.num < 1) throw ConfigError("must be >= 1, got " + std::to_string(a.num), "visualize --num");
  if (a.max_images < 0) throw ConfigError("must be >= 0 (0 = all), got " + std::to_string(a.max_images), "visualize --max-images");
  config::RunConfig cfg;
  if (!a.config.path.empty()) {
    cfg = config::read_options<config::RunConfig>(resolve_config_tree(a.config, flags));
  } else if (!a.config.sets.empty()) {
    throw ConfigError("--set needs --config", "visualize --set", "add --config run.yaml");
  }
  cfg.data.validate();
  cfg.protocol.validate();
  const eval::GroundTruth gt = eval::read_ground_truth(a.gt, data::JsonlOptions::from_config(cfg.data, cfg.protocol));
  const eval::PredictionSet preds = eval::read_predictions(a.pred);
  eval::VisualizeOptions options;
  options.sheet_images = a.num;
  options.max_images = a.max_images;
  const eval::VisualizeResult r = eval::visualize(gt, preds, a.out, options);
  std::cout << "visualize: " << r.written.size() << " picture(s) in " << a.out << "\n";
  if (!r.contact_sheet.empty()) std::cout << "contact sheet: " << r.contact_sheet << "\n";
  if (r.missing_image_files > 0) {
    std::cout << "images not found: " << r.missing_image_files << " (drawn on grey), e.g.";
    for (const auto& p : r.missing_examples) std::cout << " " << p;
    std::cout << "\n";
  }
  for (const auto& [name, k] : r.problems.kinds())
    std::cout << "  " << eval::severity_name(k.severity) << " " << name << ": " << k.count
              << (k.examples.empty() ? "" : " (e.g. " + k.examples.front() + ")") << "\n";
  return 0;
}

}  // namespace

CommandRegistration add_visualize_command(CLI::App& app, const GlobalFlags& flags) {
  auto args = std::make_shared<VisualizeArgs>();
  auto* sub = app.add_subcommand("visualize", "Draw GT (green) and predictions (red) on the images: one PNG "
                                              "per image and a contact sheet");
  sub->add_option("--gt", args->gt, "GT JSONL (the data contract)")->required();
  sub->add_option("--pred", args->pred, "prediction JSONL written by `coordexp-train infer`")->required();
  sub->add_option("--out", args->out, "output folder")->required();
  sub->add_option("--num", args->num, "images on the contact sheet (default 16)");
  sub->add_option("--max-images", args->max_images, "per-image PNGs for the first M GT images (default 0 = all)");
  sub->add_option("--config", args->config.path, "run config YAML (its data and protocol sections apply)");
  sub->add_option("--set", args->config.sets, "Override a config key (repeatable)");
  return {sub, [args, &flags] { return run_visualize(*args, flags); }};
}

}  // namespace coordexp::apps
