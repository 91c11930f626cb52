// print-config, config-docs and train as users run them: print-config prints the resolved YAML,
// config errors exit 2 with the "did you mean" line, train prepares output_dir (config.yaml,
// train.log) and then exits 1 because the Stage-1 trainer is not in this build yet.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "common/cli_capture.h"
#include "coordexp/apps/cli.h"
#include "coordexp/config/run_config.h"
#include "coordexp/config/schema.h"
#include "coordexp/util/log.h"

namespace {

namespace fs = std::filesystem;
using coordexp::config::ConfigTree;
using coordexp::config::RunConfig;

const std::string kSource = COORDEXP_SOURCE_DIR;
const std::string kTiny = kSource + "/configs/stage1/tiny_debug.yaml";

using coordexp::testing::CliResult;

// Runs the CLI in-process, capturing what it prints.
CliResult run_in_process(const std::vector<std::string>& args) { return coordexp::testing::run_cli_captured(args); }

// Runs the real binary through the shell; returns (exit code, stdout + stderr).
// `env` is prepended to the command line (e.g. "RANK=1").
std::pair<int, std::string> run_binary(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + " " + COORDEXP_TRAIN_BIN + " " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

TEST(PrintConfig, PrintsTheResolvedConfigThatReloadsToTheSameValues) {
  const CliResult r = run_in_process({"print-config", "--config", kTiny.c_str(), "--set",
                                      "optim.lr=5e-4", "--set", "optim.vision.freeze=true"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.rfind("train:\n  stage: stage1\n  output_dir: runs/stage1_tiny_debug\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\n  lr: 0.0005\n"), std::string::npos) << r.out;

  const std::string dir = temp_dir("coordexp_print_config");
  std::ofstream(dir + "/printed.yaml") << r.out;
  const RunConfig printed =
      coordexp::config::read_options<RunConfig>(ConfigTree::load_file(dir + "/printed.yaml"));
  EXPECT_EQ(printed.optim.lr, 5e-4);                   // --set
  EXPECT_TRUE(printed.optim.vision.freeze);            // --set
  EXPECT_EQ(printed.optim.vision.lr_mult, 0.1);        // base.yaml
  EXPECT_EQ(printed.train.grad_accum_steps, 2);        // tiny_debug.yaml
  EXPECT_EQ(printed.optim.eps, 1e-8);                  // default

  // Global flags may follow the subcommand; --show-sources says where each value was set.
  const CliResult a =
      run_in_process({"print-config", "--config", kTiny.c_str(), "--show-sources", "--seed", "5"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_NE(a.out.find("  seed: 5  # --seed\n"), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("  max_steps: 20  # " + kTiny + ":"), std::string::npos) << a.out;
  fs::remove_all(dir);
}

TEST(PrintConfig, ConfigErrorsExitTwoWithOneClearLine) {
  // The real binary, as a user runs it: exit code 2 and exactly one line.
  const auto [rc, out] = run_binary("print-config --config " + kTiny + " --set train.lrr=1");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_EQ(out, "error: --set train.lrr=1: unknown key `train.lrr` (hint: did you mean `optim.lr`? "
                 "every key is listed in docs/config.md)\n");

  const std::string dir = temp_dir("coordexp_bad_key");
  const std::string bad = dir + "/bad.yaml";
  std::ofstream(bad) << "extends: " << kTiny << "\noptim:\n  warmup_step: 3\n";
  CliResult r = run_in_process({"print-config", "--config", bad.c_str()});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "error: " + bad + ":3: unknown key `optim.warmup_step` (hint: did you mean "
                   "`optim.warmup_steps`? every key is listed in docs/config.md)\n");
  EXPECT_TRUE(r.out.empty());

  const std::string missing = dir + "/missing.yaml";
  r = run_in_process({"print-config", "--config", missing.c_str()});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "error: config file not found: " + missing + " (hint: check the --config path)\n");

  r = run_in_process({"print-config", "--config", kTiny.c_str(), "--set", "train.epochs=0"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err, "error: --set train.epochs=0: `train.epochs` = 0 is out of range; allowed range "
                   "is >= 1 (hint: choose a value >= 1)\n");
  EXPECT_EQ(run_in_process({"print-config"}).rc, 2);  // --config is required
  fs::remove_all(dir);
}

TEST(ConfigDocs, PrintsTheCommittedReference) {
  const CliResult r = run_in_process({"config-docs"});
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(r.out, coordexp::config::config_reference_markdown());
  EXPECT_EQ(r.out, read_text(kSource + "/docs/config.md"))
      << "regenerate with ./build/coordexp-train config-docs > docs/config.md";
}

TEST(Train, PreparesTheRunDirectoryThenHandsOverToTheTrainer) {
  const std::string dir = temp_dir("coordexp_train_cmd");
  const std::string out_dir = dir + "/run";
  const auto [rc, out] = run_binary("train --config " + kTiny + " --set train.output_dir=" + out_dir +
                                    " --set model.path=" + dir + "/no-model --resume --seed 11");
  EXPECT_EQ(rc, 2) << out;  // the trainer's first check: the model directory
  EXPECT_NE(out.find("error: key model.path: '" + dir + "/no-model' is not a model directory"), std::string::npos)
      << out;

  const RunConfig written =
      coordexp::config::read_options<RunConfig>(ConfigTree::load_file(out_dir + "/config.yaml"));
  EXPECT_EQ(written.train.output_dir, out_dir);
  EXPECT_EQ(written.train.seed, 11);             // global --seed
  EXPECT_EQ(written.checkpoint.resume, "auto");  // --resume
  EXPECT_EQ(written.train.max_steps, 20);
  EXPECT_NE(read_text(out_dir + "/config.yaml").find("seed: 11  # --seed"), std::string::npos);
  EXPECT_NE(read_text(out_dir + "/train.log").find("run directory " + out_dir), std::string::npos);

  // A config error stops before anything is written.
  const std::string never = "train.output_dir=" + dir + "/never";
  CliResult r = run_in_process({"train", "--config", kTiny.c_str(), "--set", never.c_str(), "--set",
                                "optim.schedule=cosin"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("did you mean `cosine`?"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/never"));

  // Non-zero ranks log to their own file and leave config.yaml to rank 0.
  const std::string rank1 = "train.output_dir=" + dir + "/rank1";
  ::setenv("RANK", "1", 1);
  const std::string no_model = "model.path=" + dir + "/no-model";
  r = run_in_process({"train", "--config", kTiny.c_str(), "--set", rank1.c_str(), "--set", no_model.c_str()});
  ::unsetenv("RANK");
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(read_text(dir + "/rank1/train.rank1.log").find("[rank 1]"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/rank1/config.yaml"));
  EXPECT_FALSE(fs::exists(dir + "/rank1/train.log"));

  ::setenv("RANK", "one", 1);
  r = run_in_process({"train", "--config", kTiny.c_str()});
  ::unsetenv("RANK");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("RANK='one' is not a valid process rank"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

}  // namespace
