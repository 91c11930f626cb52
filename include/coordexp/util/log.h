// Logging setup on top of spdlog: rank-aware console level (rank 0 logs at info, other ranks at
// warn unless the user asks otherwise) and an optional per-run log file in output_dir.
// Modules log through spdlog's default logger (spdlog::info(...)); only apps/ calls init.
#pragma once

#include <string>

namespace coordexp::util {

struct LogSetup {
  std::string level;     // "" = default for the rank; else trace|debug|info|warn|error|off
  int rank = 0;          // from RANK (torchrun); non-zero ranks default to warn
  std::string log_file;  // "" = console only; else appended to (all levels >= the console level)
};

// This process's rank from the RANK environment variable (torchrun); 0 when unset. Throws
// ConfigError when RANK is set but not a non-negative integer.
int rank_from_env();

// Parses a level name; throws ConfigError naming the allowed values.
int parse_log_level(const std::string& name);

// Installs the default logger. Safe to call again (replaces sinks), e.g. once output_dir is known.
void init_logging(const LogSetup& setup);

}  // namespace coordexp::util
