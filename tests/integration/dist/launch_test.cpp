// The two launchers users run: scripts/launch.sh (no Python) and the real torchrun
// (/usr/bin/python3 -m torch.distributed.run from Debian's python3-torch; skipped when it is not
// installed), each running a short 2-rank stage2 job (Channel-A and Channel-B steps). launch.sh also:
// a failing rank stops the others and its exit code is launch.sh's; SIGINT reaches every rank once,
// they save a checkpoint and stop, and launch.sh exits 0.
#include <gtest/gtest.h>

#include <iostream>

#include <nlohmann/json.hpp>

#include "coordexp/train/checkpoint.h"
#include "integration/dist/spawn.h"
#include "integration/train/fixture.h"

namespace coordexp::dist {
namespace {
namespace fs = std::filesystem;
namespace dt = coordexp::dist::testing;
using train::testing::Assets;
using train::testing::fresh_dir;
using train::testing::metrics_with;

const std::string kLaunch = std::string(COORDEXP_SOURCE_DIR) + "/scripts/launch.sh";

// A stage2 job (b_ratio 0.5: steps 2, 4, ... are Channel-B) of `max_steps` steps on the tiny model.
std::string stage2_config(const std::string& dir, int64_t max_steps) {
  const Assets& a = Assets::get();
  fs::create_directories(dir);
  const std::string path = dir + ".yaml";
  std::ofstream(path) << "model: {path: " + a.model_dir + "}\n" + "data: {train_jsonl: [" + a.train_jsonl +
                             "], num_workers: 1}\n" + "preprocess: {min_pixels: 4096, max_pixels: 4096}\n" +
                             "train: {stage: stage2, output_dir: " + dir +
                             ", device: cpu, precision: fp32, seed: 3, num_threads: 1, log_every: 1, "
                             "micro_batch_size: 1, grad_accum_steps: 1, max_steps: " + std::to_string(max_steps) + "}\n" +
                             "stage2: {b_ratio: 0.5}\nrollout: {max_new_tokens: 12}\nloss: {geo: {weight: 1.0}}\n" +
                             "optim: {lr: 1.0e-3, warmup_steps: 1}\n" + "checkpoint: {every: 0, keep_last: 0}\n" +
                             "log: {progress: off, level: info}\n" + "dist: {timeout_s: 60}\n";
  return path;
}

std::vector<std::string> step_kinds(const std::string& dir) {
  std::vector<std::string> kinds;
  for (const auto& r : metrics_with(dir, "step_kind")) kinds.push_back(r["step_kind"]);
  return kinds;
}

// Both ranks ran the job: rank 0's metrics (A, B), both rank logs, rank 1 joined as rank 1 of 2.
void expect_both_ranks_ran(const std::string& dir) {
  EXPECT_EQ(step_kinds(dir), (std::vector<std::string>{"A", "B"}));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "checkpoint-2" / train::kCheckpointMarker));
  ASSERT_TRUE(fs::exists(fs::path(dir) / "train.rank1.log"));
  const std::string rank1 = dt::read_text((fs::path(dir) / "train.rank1.log").string());
  EXPECT_NE(rank1.find("dist: rank 1 of 2"), std::string::npos) << rank1;
  EXPECT_NE(rank1.find("step 2: Channel-B:"), std::string::npos) << rank1;
}

TEST(LaunchScript, RunsAStage2JobOnTwoRanksWithPrefixedOutput) {
  const std::string dir = fresh_dir("launch_sh_stage2");
  const std::string cfg = stage2_config(dir, 2);
  const std::string out = dir + ".out";
  const pid_t pid = dt::spawn({"/bin/bash", kLaunch, "--nproc", "2", "--master-port", std::to_string(dt::free_port()),
                               "--", "train", "--config", cfg},
                              out, {std::string("COORDEXP_TRAIN=") + COORDEXP_TRAIN_BIN});
  const int code = dt::wait_for(pid, 120);
  if (code == -1) dt::kill_and_reap(pid);
  const std::string text = dt::read_text(out);
  ASSERT_EQ(code, 0) << text;
  EXPECT_NE(text.find("[rank 0] "), std::string::npos) << text;
  EXPECT_NE(text.find("[rank 1] "), std::string::npos) << text;
  expect_both_ranks_ran(dir);
}

TEST(LaunchScript, AFailingRankStopsTheOthersAndGivesItsExitCode) {
  const std::string dir = fresh_dir("launch_sh_fail");
  const std::string cfg = stage2_config(dir, 10000);
  // Rank 1 fails at once; rank 0 (the real trainer) would wait at the rendezvous for dist.timeout_s.
  const std::string wrapper = dir + ".wrapper.sh";
  std::ofstream(wrapper) << "#!/bin/sh\nif [ \"$RANK\" = 1 ]; then echo 'rank 1 fails on purpose' >&2; exit 3; fi\n"
                            "exec " << COORDEXP_TRAIN_BIN << " \"$@\"\n";
  fs::permissions(wrapper, fs::perms::owner_all);
  const std::string out = dir + ".out";
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = dt::spawn({"/bin/bash", kLaunch, "--nproc", "2", "--master-port", std::to_string(dt::free_port()),
                               "--grace", "5", "--", "train", "--config", cfg},
                              out, {"COORDEXP_TRAIN=" + wrapper});
  const int code = dt::wait_for(pid, 60);
  const double seconds = dt::seconds_since(t0);
  if (code == -1) dt::kill_and_reap(pid);
  const std::string text = dt::read_text(out);
  std::cout << "launch.sh with a failing rank: exit code " << code << " after " << seconds << " s" << std::endl;
  EXPECT_EQ(code, 3) << text;
  EXPECT_LT(seconds, 30.0) << text;  // not dist.timeout_s (60 s): rank 0 was stopped
  EXPECT_NE(text.find("[rank 1] rank 1 fails on purpose"), std::string::npos) << text;
  EXPECT_NE(text.find("launch.sh: rank 1 exited with code 3; stopping the other ranks"), std::string::npos) << text;
  EXPECT_NE(text.find("first failure: rank 1, exit code 3"), std::string::npos) << text;
}

TEST(LaunchScript, ForwardsSigintToEveryRankWhichSaveAndExitZero) {
  const std::string dir = fresh_dir("launch_sh_sigint");
  const std::string cfg = stage2_config(dir, 10000);
  const std::string out = dir + ".out";
  const pid_t pid = dt::spawn({"/bin/bash", kLaunch, "--nproc", "2", "--master-port", std::to_string(dt::free_port()),
                               "--", "train", "--config", cfg},
                              out, {std::string("COORDEXP_TRAIN=") + COORDEXP_TRAIN_BIN});
  const bool running = dt::poll_until([&] { return !metrics_with(dir, "loss").empty(); }, 120);
  if (running) ::kill(pid, SIGINT);
  const int code = running ? dt::wait_for(pid, 60) : -1;
  if (code == -1) dt::kill_and_reap(pid);
  const std::string text = dt::read_text(out);
  ASSERT_TRUE(running) << text;
  EXPECT_EQ(code, 0) << text;
  EXPECT_NE(text.find("launch.sh: SIGINT received, forwarding it to the ranks"), std::string::npos) << text;
  for (const char* log : {"train.log", "train.rank1.log"}) {
    const std::string t = dt::read_text((fs::path(dir) / log).string());
    EXPECT_NE(t.find("signal 2 received: saving a checkpoint"), std::string::npos) << log << ":\n" << t;
    EXPECT_EQ(t.find("second signal"), std::string::npos) << log << " got the signal twice:\n" << t;
  }
  const auto recs = metrics_with(dir, "loss");
  ASSERT_FALSE(recs.empty());
  const int64_t last = recs.back()["step"];
  EXPECT_TRUE(fs::exists(fs::path(dir) / ("checkpoint-" + std::to_string(last)) / train::kCheckpointMarker)) << text;
}

TEST(Torchrun, RunsAStage2JobOnTwoRanks) {
  if (std::system("/usr/bin/python3 -c 'import torch.distributed.run' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch.distributed.run (Debian package python3-torch)";
  const std::string dir = fresh_dir("torchrun_stage2");
  const std::string cfg = stage2_config(dir, 2);
  const std::string out = dir + ".out";
  // 1.13's torchrun spells its flags with underscores (2.x takes both). On Python >= 3.11 its
  // default --redirects/--tee of 0 fail to parse (Std.from_str returns None: a 0-valued IntFlag is
  // not iterated any more; AttributeError 'NoneType' object has no attribute 'get'), so name one.
  const pid_t pid = dt::spawn({"/usr/bin/python3", "-m", "torch.distributed.run", "--no_python", "--nproc_per_node", "2",
                               "--master_port", std::to_string(dt::free_port()), "--redirects", "2", "--tee", "2",
                               COORDEXP_TRAIN_BIN, "train", "--config", cfg},
                              out);
  const int code = dt::wait_for(pid, 120);
  if (code == -1) dt::kill_and_reap(pid);
  const std::string text = dt::read_text(out);
  ASSERT_EQ(code, 0) << text;
  expect_both_ranks_ran(dir);
}

}  // namespace
}  // namespace coordexp::dist
