// `coordexp-train print-config --config FILE [--set k=v ...] [--show-sources]`: prints the fully
// resolved, validated config as YAML (the same text `train` writes to output_dir/config.yaml).
#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "apps/config_cli.h"
#include "coordexp/config/run_config.h"
#include "coordexp/config/schema.h"

namespace coordexp::apps {

CommandRegistration add_print_config_command(CLI::App& app, const GlobalFlags& flags) {
  auto* sub = app.add_subcommand(
      "print-config", "Print the resolved config (after extends:, --set and --seed) as YAML");
  auto args = std::make_shared<ConfigArgs>();
  auto show_sources = std::make_shared<bool>(false);
  add_config_options(sub, *args);
  sub->add_flag("--show-sources", *show_sources,
                "Comment each value with the file:line or --set that set it");
  return {sub, [args, show_sources, &flags] {
            const config::ConfigTree tree = resolve_config_tree(*args, flags);
            const auto cfg = config::read_options<config::RunConfig>(tree);
            std::cout << config::dump_yaml(cfg, *show_sources ? &tree : nullptr);
            return 0;
          }};
}

}  // namespace coordexp::apps
