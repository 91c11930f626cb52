// Shared by the subcommands that take a config (print-config, train): the --config/--set options
// and their resolution into a ConfigTree (extends:, --set in order, then the global --seed).
// Typed reading stays in src/config (read_options).
#pragma once

#include <string>
#include <vector>

#include "coordexp/apps/cli.h"
#include "coordexp/config/sections/dist.h"
#include "coordexp/config/tree.h"
#include "coordexp/dist/process_group.h"

namespace coordexp::apps {

// The process-group options of a config's `dist:` section (train and infer join groups alike).
dist::GroupOptions group_options(const config::DistOptions& d);

struct ConfigArgs {
  std::string path;               // --config FILE.yaml
  std::vector<std::string> sets;  // --set a.b.c=VALUE, in command-line order
};

// Registers --config (required) and --set (repeatable) on `sub`, filling `args`.
void add_config_options(CLI::App* sub, ConfigArgs& args);

// Loads args.path with its extends:, applies each --set, then `--seed` (as train.seed, origin
// "--seed"). Throws ConfigError naming file/line or the override.
config::ConfigTree resolve_config_tree(const ConfigArgs& args, const GlobalFlags& flags);

}  // namespace coordexp::apps
