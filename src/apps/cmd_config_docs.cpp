// `coordexp-train config-docs`: prints the Markdown reference of every config key; the output is
// committed as docs/config.md (a unit test fails when the two differ).
#include <iostream>

#include "apps/commands.h"
#include "coordexp/config/run_config.h"

namespace coordexp::apps {

CommandRegistration add_config_docs_command(CLI::App& app, const GlobalFlags&) {
  auto* sub = app.add_subcommand(
      "config-docs", "Print the Markdown reference of every config key (docs/config.md)");
  return {sub, [] {
            std::cout << config::config_reference_markdown();
            return 0;
          }};
}

}  // namespace coordexp::apps
