// --config/--set handling shared by print-config and train (see config_cli.h).
#include "apps/config_cli.h"

namespace coordexp::apps {

void add_config_options(CLI::App* sub, ConfigArgs& args) {
  sub->add_option("--config", args.path, "YAML config file (may `extends:` others)")->required();
  sub->add_option("--set", args.sets,
                  "Override a key after all files: --set optim.lr=1e-4 (VALUE is YAML; repeatable)");
}

config::ConfigTree resolve_config_tree(const ConfigArgs& args, const GlobalFlags& flags) {
  config::ConfigTree tree = config::ConfigTree::load_file(args.path);
  for (const auto& assignment : args.sets) tree.apply_override(assignment);
  if (flags.seed != -1) tree.set("train.seed", YAML::Node(flags.seed), "--seed");
  return tree;
}

dist::GroupOptions group_options(const config::DistOptions& d) {
  dist::GroupOptions o;
  o.backend = d.backend;
  o.timeout_s = d.timeout_s;
  o.save_timeout_s = d.save_timeout_s;
  o.bucket_bytes = int64_t{d.bucket_mb} << 20;
  return o;
}

}  // namespace coordexp::apps
