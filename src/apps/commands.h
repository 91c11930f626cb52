// Registry of subcommand factories (one per src/apps/cmd_<name>.cpp). Add a line here and in
// kCommands (cli.cpp) for each new subcommand.
#pragma once

#include "coordexp/apps/cli.h"

namespace coordexp::apps {

CommandRegistration add_version_info_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_print_config_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_config_docs_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_train_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_preprocess_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_check_data_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_debug_forward_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_make_tiny_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_tokenize_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_expand_vocab_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_make_synthetic_data_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_generate_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_inspect_b_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_eval_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_visualize_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_report_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_derive_tokenizer_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_make_demo_data_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_infer_command(CLI::App& app, const GlobalFlags& flags);
CommandRegistration add_export_command(CLI::App& app, const GlobalFlags& flags);

}  // namespace coordexp::apps
