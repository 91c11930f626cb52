// `coordexp-train train --config FILE [--set k=v ...] [--resume]`: resolves and validates the config,
// prepares the run directory (config.yaml, train.log), joins the process group when launched with
// WORLD_SIZE > 1 (torchrun or any launcher setting RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT) and hands
// the run to the trainer (coordexp/train/trainer.h). Exit 0 also after a SIGINT/SIGTERM stop (a
// checkpoint was saved).
#include <spdlog/spdlog.h>

#include <memory>

#include "apps/commands.h"
#include "apps/config_cli.h"
#include "apps/run_dir.h"
#include "coordexp/config/run_config.h"
#include "coordexp/config/schema.h"
#include "coordexp/dist/launch_env.h"
#include "coordexp/dist/process_group.h"
#include "coordexp/train/process_group_reducer.h"
#include "coordexp/train/trainer.h"
#include "coordexp/util/log.h"

namespace coordexp::apps {
namespace {

// The single hand-off point to the training loop; with WORLD_SIZE > 1 every rank joins the process
// group first (all ranks must reach this point within dist.timeout_s).
int run_training(const config::RunConfig& cfg, const RunDirectory& run) {
  spdlog::info("run directory {}", run.dir);
  const dist::LaunchEnv env = dist::launch_env_from_environment();
  std::shared_ptr<train::StepReducer> reducer;
  if (env.distributed())
    reducer = std::make_shared<train::ProcessGroupReducer>(
        dist::ProcessGroup::connect(env, group_options(cfg.dist), train::trains_on_cuda(cfg)));
  train::Trainer trainer(cfg, reducer);
  trainer.run();
  return 0;
}

}  // namespace

CommandRegistration add_train_command(CLI::App& app, const GlobalFlags& flags) {
  auto* sub = app.add_subcommand("train", "Train with a config (train.stage: stage1 SFT, or stage2 Channel-A + Channel-B routed by stage2.b_ratio); writes output_dir/");
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
