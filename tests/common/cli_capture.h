// Test helper: runs the coordexp-train CLI in-process (apps::run_cli) and captures what it prints
// on stdout and stderr. Shared by the test binaries that exercise subcommands; not a test itself.
#pragma once

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "coordexp/apps/cli.h"
#include "coordexp/util/log.h"

namespace coordexp::testing {

struct CliResult {
  int rc = -1;
  std::string out, err;
};

inline CliResult run_cli_captured(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"coordexp-train"};
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  std::streambuf* old_out = std::cout.rdbuf(out.rdbuf());
  std::streambuf* old_err = std::cerr.rdbuf(err.rdbuf());
  const int rc = apps::run_cli(static_cast<int>(argv.size()), argv.data());
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  util::init_logging({});  // close any run log file the command opened
  return {rc, out.str(), err.str()};
}

}  // namespace coordexp::testing
