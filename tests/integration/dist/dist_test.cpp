// Two real processes over Gloo on localhost: (1) this test binary re-run as 2 ranks checks
// all_reduce (int64, double, bucketed tensors incl. non-contiguous views), broadcast and barrier
// against hand-computed values; (2) the coordexp-train binary as 2 ranks with micro_batch_size 1
// trains to the same parameters (1e-5) as one process with micro_batch_size 2 on the same data
// order, only rank 0 writes, and a 2-rank resume from a mid-run checkpoint continues bit-exactly.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <thread>

#include "coordexp/dist/launch_env.h"
#include "coordexp/dist/process_group.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/checkpoint.h"
#include "coordexp/train/trainer.h"
#include "coordexp/util/fs.h"
#include "integration/dist/spawn.h"
#include "integration/train/fixture.h"

namespace coordexp::dist {
namespace {
namespace fs = std::filesystem;
using train::testing::Assets;
using train::testing::base_config;
using train::testing::fresh_dir;
using train::testing::metrics_with;
using coordexp::dist::testing::logs_of;
using coordexp::dist::testing::run_ranks;

const char* const kWorkerEnv = "COORDEXP_DIST_TEST_WORKER";

// ---------------------------------------------------------------------------------------------
// (1) Collectives. The worker body runs only inside the ranks spawned by the test below.

TEST(DistWorker, DISABLED_Collectives) {
  ASSERT_NE(std::getenv(kWorkerEnv), nullptr) << "run by DistGloo.CollectivesMatchHandComputedValues";
  const LaunchEnv env = launch_env_from_environment();
  GroupOptions o;
  o.timeout_s = 30;
  o.bucket_bytes = int64_t{1} << 20;
  auto pg = ProcessGroup::connect(env, o, false);
  ASSERT_EQ(pg->backend(), "gloo");
  const int r = pg->rank();
  ASSERT_EQ(pg->world_size(), 2);

  std::vector<int64_t> ints = {r + 1, 10 * (r + 1), -r, int64_t{1} << 40};
  pg->all_reduce_sum(ints);
  EXPECT_EQ(ints, (std::vector<int64_t>{3, 30, -1, int64_t{2} << 40}));
  std::vector<double> doubles = {0.5 * (r + 1), 1e-300, r == 0 ? 1e16 : 1.0};
  pg->all_reduce_sum(doubles);
  EXPECT_EQ(doubles[0], 1.5);
  EXPECT_EQ(doubles[1], 2e-300);
  EXPECT_EQ(doubles[2], 1e16 + 1.0);  // exact in float64, lost in float32: no narrowing on the way

  // Gradients: two small floats (one a non-contiguous view) share a bucket, a 1.2 MB tensor is its
  // own bucket (1 MiB buckets), a double tensor another: 3 collectives. Rank r holds (r+1) * base.
  const auto base = [](int64_t n, torch::ScalarType t) { return torch::arange(n, torch::TensorOptions().dtype(t)); };
  torch::Tensor a = base(12, torch::kFloat).view({3, 4}) * (r + 1);
  torch::Tensor b_storage = base(20, torch::kFloat).view({4, 5}) * (r + 1);
  torch::Tensor b = b_storage.t();  // non-contiguous
  torch::Tensor big = base(300000, torch::kFloat) * (r + 1);
  torch::Tensor d = base(7, torch::kDouble) * (r + 1) + 0.25;
  const std::vector<torch::Tensor> grads = {a, b, big, d};
  EXPECT_EQ(plan_buckets(grads, int64_t{1} << 20).size(), 3u);
  const int64_t before = pg->num_collectives();
  pg->all_reduce_sum(grads);
  EXPECT_EQ(pg->num_collectives() - before, 3);
  EXPECT_TRUE(torch::equal(a, base(12, torch::kFloat).view({3, 4}) * 3));
  EXPECT_TRUE(torch::equal(b_storage, base(20, torch::kFloat).view({4, 5}) * 3));  // reached the storage
  EXPECT_TRUE(torch::equal(big, base(300000, torch::kFloat) * 3));
  EXPECT_TRUE(torch::equal(d, base(7, torch::kDouble) * 3 + 0.5));

  EXPECT_EQ(pg->broadcast(int64_t{r == 0 ? 42 : 7}), 42);
  EXPECT_EQ(pg->broadcast(std::string(r == 0 ? "checkpoint-12 \xc3\xbc" : "mine")), "checkpoint-12 \xc3\xbc");
  EXPECT_EQ(pg->broadcast(std::string(r == 0 ? "" : "not empty")), "");
  pg->barrier();
}

TEST(DistGloo, CollectivesMatchHandComputedValues) {
  const std::string prefix = (fs::temp_directory_path() / ("coordexp_dist_it_" + std::to_string(::getpid()))).string();
  const std::vector<std::string> argv = {fs::read_symlink("/proc/self/exe").string(),  // this test binary
                                         "--gtest_filter=DistWorker.DISABLED_Collectives",
                                         "--gtest_also_run_disabled_tests"};
  const auto codes = run_ranks(2, argv, prefix, 60, {std::string(kWorkerEnv) + "=1"});
  const std::string logs = logs_of(prefix, 2);
  EXPECT_EQ(codes, (std::vector<int>{0, 0})) << logs;
  EXPECT_NE(logs.find("[  PASSED  ] 1 test"), std::string::npos) << logs;  // the worker ran, not skipped
  for (int r = 0; r < 2; ++r) fs::remove(prefix + ".rank" + std::to_string(r) + ".log");
}

// ---------------------------------------------------------------------------------------------
// (2) Training.

std::map<std::string, torch::Tensor> parameters_of(model::Qwen3VL m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, p] : m.named_parameters()) out[k] = p.detach().clone();
  return out;
}

// The binary's YAML for base_config's settings with micro_batch_size 1, Adam eps 1e-3, no clipping.
std::string yaml_for(const std::string& output_dir, int64_t max_steps, int64_t checkpoint_every,
                     const std::string& resume = "off") {
  const Assets& a = Assets::get();
  return "model: {path: " + a.model_dir + "}\n" + "data: {train_jsonl: [" + a.train_jsonl + "], num_workers: 1}\n" +
         "preprocess: {min_pixels: 4096, max_pixels: 4096}\n" +
         "train: {output_dir: " + output_dir + ", device: cpu, precision: fp32, seed: 3, num_threads: 1, "
         "log_every: 1, micro_batch_size: 1, grad_accum_steps: 1, max_steps: " + std::to_string(max_steps) + "}\n" +
         "optim: {lr: 1.0e-3, warmup_steps: 1, eps: 1.0e-3, grad_clip: 0.0}\n" +
         "checkpoint: {every: " + std::to_string(checkpoint_every) + ", keep_last: 0, resume: " + resume + "}\n" +
         "log: {progress: off}\n" + "dist: {timeout_s: 60}\n";
}

// Two ranks of `coordexp-train train` on `yaml`; expects both to exit 0.
void train_two_ranks(const std::string& dir, const std::string& yaml) {
  fs::create_directories(dir);
  const std::string config = dir + ".yaml";
  std::ofstream(config) << yaml;
  const auto codes = run_ranks(2, {COORDEXP_TRAIN_BIN, "train", "--config", config}, dir, 120);
  ASSERT_EQ(codes, (std::vector<int>{0, 0})) << logs_of(dir, 2);
}

// 2 ranks x micro-batch 1 == 1 rank x micro-batch 2: rank r's k-th sample is sample 2k+r of the
// shuffled epoch, the one-process batch k holds samples 2k and 2k+1. Same per-step loss and grad
// norm (normalization by the global counts), parameters within 1e-5 (the accumulation test's
// tolerance and its large Adam eps, so float noise in tiny gradients cannot flip an update).
// Then: resuming the 2-rank run from its step-2 checkpoint ends bit-exactly where it ended.
TEST(DistTrain, TwoRanksEqualOneRankWithBothBatchesAndResumeBitExactly) {
  constexpr int64_t kSteps = 4;
  const std::string dir1 = fresh_dir("dist_one_rank");
  auto c = base_config(dir1);
  c.train.max_steps = kSteps;
  c.train.micro_batch_size = 2;
  c.optim.eps = 1e-3;
  c.optim.grad_clip = 0.0;
  std::map<std::string, torch::Tensor> one_rank;
  {
    train::Trainer t(c);
    t.run();
    for (const auto& [k, p] : t.model().named_parameters()) one_rank[k] = p.detach().clone();
  }
  const auto recs1 = metrics_with(dir1, "loss");

  const std::string dir2 = fresh_dir("dist_two_ranks");
  train_two_ranks(dir2, yaml_for(dir2, kSteps, 2));
  const auto recs2 = metrics_with(dir2, "loss");
  ASSERT_EQ(recs1.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(recs2.size(), static_cast<size_t>(kSteps));  // rank 0 alone wrote metrics, once per step
  for (size_t s = 0; s < recs1.size(); ++s) {
    EXPECT_EQ(recs1[s]["num_samples"], recs2[s]["num_samples"]);
    EXPECT_NEAR(recs2[s]["loss"].get<double>(), recs1[s]["loss"].get<double>(), 1e-5 * recs1[s]["loss"].get<double>());
    EXPECT_NEAR(recs2[s]["grad_norm"].get<double>(), recs1[s]["grad_norm"].get<double>(),
                1e-4 * recs1[s]["grad_norm"].get<double>());
  }
  const std::string final2 = (fs::path(dir2) / ("checkpoint-" + std::to_string(kSteps))).string();
  ASSERT_TRUE(fs::exists(fs::path(final2) / train::kCheckpointMarker));
  EXPECT_TRUE(fs::exists(fs::path(dir2) / "train.log"));
  EXPECT_TRUE(fs::exists(fs::path(dir2) / "train.rank1.log"));
  const auto two_ranks = parameters_of(model::Qwen3VL::load(final2));
  const auto initial = parameters_of(model::Qwen3VL::load(Assets::get().model_dir));
  double max_diff = 0.0, max_move = 0.0;
  for (const auto& [k, p] : one_rank) {
    max_diff = std::max(max_diff, (p - two_ranks.at(k)).abs().max().item<double>());
    max_move = std::max(max_move, (p - initial.at(k)).abs().max().item<double>());
  }
  std::cout << "max |2 ranks - 1 rank| = " << max_diff << ", max |trained - initial| = " << max_move << std::endl;
  EXPECT_LT(max_diff, 1e-5);
  EXPECT_GT(max_move, 1e-3);  // training moved the parameters: the comparison is not vacuous

  // Resume: a fresh run directory holding only checkpoint-2, both ranks resume (auto) from it.
  const std::string dir3 = fresh_dir("dist_two_ranks_resumed");
  fs::create_directories(dir3);
  fs::copy(fs::path(dir2) / "checkpoint-2", fs::path(dir3) / "checkpoint-2", fs::copy_options::recursive);
  train_two_ranks(dir3, yaml_for(dir3, kSteps, 2, "auto"));
  const auto recs3 = metrics_with(dir3, "loss");
  ASSERT_EQ(recs3.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(recs3[i]["step"].get<int64_t>(), static_cast<int64_t>(i + 3));
    EXPECT_EQ(recs3[i]["loss"].get<double>(), recs2[i + 2]["loss"].get<double>()) << "step " << i + 3;
  }
  const auto resumed = parameters_of(model::Qwen3VL::load((fs::path(dir3) / "checkpoint-4").string()));
  // (Had rank 1 not resumed, it would take 4 steps to rank 0's 2 and the collectives would fail.)
  for (const auto& [k, p] : two_ranks) EXPECT_TRUE(torch::equal(p, resumed.at(k))) << k;
}

// Stage-2 with b_ratio 0.5 on 2 ranks: rank 0 decides each step's kind and broadcasts it, so both
// ranks run A, B, A, B (rank 1's log lines for B steps are compared with rank 0's metrics).
TEST(DistTrain, TwoRanksTakeTheSameStepKinds) {
  const std::string dir = fresh_dir("dist_stage2_kinds");
  std::string yaml = yaml_for(dir, 4, 0);
  const std::string train_key = "train: {";
  yaml.replace(yaml.find(train_key), train_key.size(), "train: {stage: stage2, ");
  yaml += "stage2: {b_ratio: 0.5}\nrollout: {max_new_tokens: 12}\nloss: {geo: {weight: 1.0}}\n";
  const std::string log_key = "log: {progress: off}";  // info on every rank: rank 1 logs its B steps too
  yaml.replace(yaml.find(log_key), log_key.size(), "log: {progress: off, level: info}");
  train_two_ranks(dir, yaml);
  const auto recs = metrics_with(dir, "step_kind");
  ASSERT_EQ(recs.size(), 4u);
  std::vector<int64_t> b_steps;
  for (const auto& r : recs)
    if (r["step_kind"] == "B") {
      b_steps.push_back(r["step"].get<int64_t>());
      EXPECT_EQ(r["b_num_rollouts"], 2);  // one rollout per rank, summed
    }
  EXPECT_EQ(b_steps, (std::vector<int64_t>{2, 4}));
  for (const char* log : {"train.log", "train.rank1.log"}) {
    const std::string text = util::read_file((fs::path(dir) / log).string());
    std::vector<int64_t> logged;
    for (int64_t s = 1; s <= 4; ++s)
      if (text.find("step " + std::to_string(s) + ": Channel-B:") != std::string::npos) logged.push_back(s);
    EXPECT_EQ(logged, b_steps) << log;
  }
}

}  // namespace
}  // namespace coordexp::dist
