// Test helper: runs the built coordexp-train binary in a child process (`COORDEXP_TRAIN_BIN`, set
// by tests/CMakeLists.txt) and captures stdout + stderr together with its exit code. For tests that
// need a real process (exit codes, signals, memory of the child); tests/common/cli_capture.h runs
// the CLI in-process instead. Not a test itself.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace coordexp::testing {

struct CommandResult {
  int code = -1;       // exit status; -1 when the child did not exit normally
  std::string output;  // stdout and stderr, interleaved
};

// `env` is prepended to the command line (e.g. "OMP_NUM_THREADS=1").
inline CommandResult run_binary(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + (env.empty() ? "" : " ") + std::string(COORDEXP_TRAIN_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  CommandResult r;
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) r.output += buf;
  const int status = p ? ::pclose(p) : -1;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace coordexp::testing
