// `coordexp-train train --config FILE [--set k=v ...] [--resume]`: resolves and validates the config,
// prepares the run directory (config.yaml, train.log) and hands the run to the trainer. The Stage-1
// trainer arrives with roadmap step [6]; until then the hand-off reports that as a runtime error.
#include <spdlog/spdlog.h>

#include <memory>
#include <stdexcept>

#include "apps/commands.h"
#include "apps/config_cli.h"
#include "apps/run_dir.h"
#include "coordexp/config/run_config.h"
#include "coordexp/config/schema.h"
#include "coordexp/util/log.h"

namespace coordexp::apps {
namespace {

// The single hand-off point to the training loop (roadmap step [6] replaces the body with the
// Stage-1 trainer call).
int run_training(const config::RunConfig& /*cfg*/, const RunDirectory& run) {
  throw std::runtime_error("the Stage-1 trainer is not part of this build yet (roadmap step [6]); "
                           "the config is valid and the run directory " + run.dir +
                           " holds config.yaml and train.log");
}

}  // namespace

CommandRegistration add_train_command(CLI::App& app, const GlobalFlags& flags) {
  auto* sub = app.add_subcommand("train", "Train (Stage-1 SFT) with a config; writes output_dir/");
  auto args = std::make_shared<ConfigArgs>();
  auto resume = std::make_shared<bool>(false);
  add_config_options(sub, *args);
  sub->add_flag("--resume", *resume,
                "Continue from the latest complete checkpoint in output_dir "
                "(same as --set checkpoint.resume=auto)");
  return {sub, [args, resume, &flags] {
            config::ConfigTree tree = resolve_config_tree(*args, flags);
            if (*resume) tree.set("checkpoint.resume", YAML::Node("auto"), "--resume");
            const auto cfg = config::read_options<config::RunConfig>(tree);
            const RunDirectory run =
                prepare_run_directory(cfg, tree, flags.log_level, util::rank_from_env());
            return run_training(cfg, run);
          }};
}

}  // namespace coordexp::apps
