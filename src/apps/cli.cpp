// CLI driver: builds the CLI11 app from the command table, parses, runs the chosen subcommand and
// turns exceptions into one clear line plus an exit code (see include/coordexp/apps/cli.h).
#include "coordexp/apps/cli.h"

#include <spdlog/spdlog.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "apps/commands.h"
#include "coordexp/util/error.h"
#include "coordexp/util/heap.h"
#include "coordexp/util/log.h"
#include "coordexp/util/threads.h"

namespace coordexp::apps {
namespace {

const CommandFactory kCommands[] = {
    &add_version_info_command,
    &add_print_config_command,
    &add_config_docs_command,
    &add_train_command,
    &add_preprocess_command,
    &add_check_data_command,
    &add_debug_forward_command,
    &add_make_tiny_command,
    &add_tokenize_command,
    &add_expand_vocab_command,
    &add_make_synthetic_data_command,
    &add_generate_command,
    &add_inspect_b_command,
    &add_eval_command,
    &add_visualize_command,
    &add_report_command,
    &add_derive_tokenizer_command,
    &add_make_demo_data_command,
    &add_infer_command,
    &add_export_command,
};

// Debian's LibTorch starts with one intra-op thread (omp_get_max_threads() reports 1 here), which
// halves CPU throughput on these 2-core machines. Use the cores (shared among the processes that
// torchrun starts on this node) unless OMP_NUM_THREADS says otherwise.
// Every hardware thread for this process's share of the node (LibTorch + BLAS), unless the user
// chose with OMP_NUM_THREADS (which both LibTorch and BLIS honour).
// Generation-only commands (generate, infer) use one thread: KV-cache decode is a stream of tiny
// ops (rollout.decode_threads already runs it on one thread), and their prefill is short, so extra
// threads buy little while on a loaded machine 2 threads ran decode 10-80x slower than 1
// (docs/performance.md). OMP_NUM_THREADS / BLIS_NUM_THREADS still choose.
void configure_threads(const std::string& subcommand) {
  if (std::getenv("OMP_NUM_THREADS")) return;
  const bool generation_only = subcommand == "generate" || subcommand == "infer";
  util::set_compute_threads(generation_only ? 1 : util::default_compute_threads());
}

}  // namespace

int run_cli(int argc, const char* const* argv) {
  CLI::App app{"coordexp-train: teach Qwen3-VL to detect objects with coordinate tokens (CoordExp)",
               "coordexp-train"};
  app.set_version_flag("--version", std::string("coordexp-train ") + COORDEXP_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global flags may also follow the subcommand: `train --config x --seed 3`
  GlobalFlags flags;
  app.add_option("--log-level", flags.log_level, "trace|debug|info|warn|error|off (default: info on rank 0, warn elsewhere)");
  app.add_option("--seed", flags.seed, "Override the config's random seed");

  std::vector<CommandRegistration> regs;
  for (CommandFactory f : kCommands) regs.push_back(f(app, flags));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help/--version are "successes" (exit 0); anything else is a usage error (exit 2).
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    util::init_logging({flags.log_level, util::rank_from_env(), ""});
    for (auto& r : regs)  // training only: before its first large tensor (util/heap.h)
      if (r.sub && r.sub->parsed() && r.sub->get_name() == "train") spdlog::debug("{}", util::configure_heap());
    for (auto& r : regs)
      if (r.sub && r.sub->parsed()) configure_threads(r.sub->get_name());
    for (auto& r : regs)
      if (r.sub && r.sub->parsed()) return r.run();
    std::cerr << "error: no subcommand given (see --help)\n";
    return 2;
  } catch (const ConfigError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace coordexp::apps
