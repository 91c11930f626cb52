// The coordexp-train command line: CLI11 subcommands, global flags, error -> exit-code mapping.
// Exit codes: 0 success, 2 usage/config error, 1 runtime error. Each subcommand lives in its own
// src/apps/cmd_<name>.cpp and is registered in src/apps/cli.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace coordexp::apps {

// Global flags shared by every subcommand.
struct GlobalFlags {
  std::string log_level;  // "" = rank default
  long long seed = -1;    // -1 = take the config's seed
};

// Runs the CLI in-process (tests call this); returns the exit code. Never throws.
int run_cli(int argc, const char* const* argv);

// A subcommand registers its options and callback on `app`; the callback runs after parsing and
// returns the exit code. `flags` is filled in before any callback runs.
using CommandRunner = std::function<int()>;
struct CommandRegistration {
  CLI::App* sub = nullptr;
  CommandRunner run;
};
using CommandFactory = CommandRegistration (*)(CLI::App& app, const GlobalFlags& flags);

}  // namespace coordexp::apps
