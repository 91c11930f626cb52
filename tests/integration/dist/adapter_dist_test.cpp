// DDP with adapters: the coordexp-train binary as 2 Gloo ranks (micro-batch 1) trains DoRA + coord
// offset to the same adapters (1e-5) as one process with micro-batch 2 on the same data order, and
// each rank all-reduces exactly the adapter gradients (the element count the ranks log equals the
// adapters' size; the frozen base moves no bytes).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "coordexp/model/adapter.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/trainer.h"
#include "integration/dist/spawn.h"
#include "integration/train/fixture.h"

namespace coordexp::dist {
namespace {
namespace fs = std::filesystem;
using coordexp::dist::testing::logs_of;
using coordexp::dist::testing::run_ranks;
using train::testing::Assets;
using train::testing::base_config;
using train::testing::fresh_dir;
using train::testing::metrics_with;

constexpr const char* kAdapterYaml = "adapter: {kind: dora, rank: 4, alpha: 8, coord_offset: true}\n";

std::string two_rank_yaml(const std::string& output_dir, int64_t max_steps) {
  const Assets& a = Assets::get();
  return "model: {path: " + a.model_dir + "}\n" + "data: {train_jsonl: [" + a.train_jsonl + "], num_workers: 1}\n" +
         "preprocess: {min_pixels: 4096, max_pixels: 4096}\n" +
         "train: {output_dir: " + output_dir + ", device: cpu, precision: fp32, seed: 3, num_threads: 1, "
         "log_every: 1, micro_batch_size: 1, grad_accum_steps: 1, max_steps: " + std::to_string(max_steps) + "}\n" +
         "optim: {lr: 1.0e-2, warmup_steps: 1, eps: 1.0e-3, grad_clip: 0.0}\n" +
         "checkpoint: {every: 0, keep_last: 0}\n" + "log: {progress: off}\n" + "dist: {timeout_s: 60}\n" + kAdapterYaml;
}

TEST(DistAdapters, TwoRanksEqualOneRankAndReduceOnlyTheAdapterGradients) {
  constexpr int64_t kSteps = 3;
  const std::string dir1 = fresh_dir("dist_adapter_one_rank");
  auto c = base_config(dir1);
  c.train.max_steps = kSteps;
  c.train.micro_batch_size = 2;
  c.optim.lr = 1e-2;
  c.optim.eps = 1e-3;
  c.optim.grad_clip = 0.0;
  c.adapter.kind = "dora";
  c.adapter.rank = 4;
  c.adapter.alpha = 8;
  c.adapter.coord_offset = true;
  std::map<std::string, torch::Tensor> one_rank;
  int64_t adapter_elements = 0;
  {
    train::Trainer t(c);
    t.run();
    for (const auto& [k, p] : t.model().adapter_parameters()) {
      one_rank[k] = p.detach().clone();
      adapter_elements += p.numel();
    }
  }
  const auto recs1 = metrics_with(dir1, "loss");

  const std::string dir2 = fresh_dir("dist_adapter_two_ranks");
  fs::create_directories(dir2);
  const std::string config = dir2 + ".yaml";
  std::ofstream(config) << two_rank_yaml(dir2, kSteps);
  // --log-level info: ranks > 0 log warnings only by default, and rank 1's all-reduce line is checked.
  const auto codes = run_ranks(2, {COORDEXP_TRAIN_BIN, "--log-level", "info", "train", "--config", config}, dir2, 180);
  ASSERT_EQ(codes, (std::vector<int>{0, 0})) << logs_of(dir2, 2);
  const auto recs2 = metrics_with(dir2, "loss");
  ASSERT_EQ(recs1.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(recs2.size(), static_cast<size_t>(kSteps));
  for (size_t s = 0; s < recs1.size(); ++s)
    EXPECT_NEAR(recs2[s]["loss"].get<double>(), recs1[s]["loss"].get<double>(), 1e-5 * recs1[s]["loss"].get<double>());

  // Rank 0's checkpoint holds the adapters both ranks trained in lockstep.
  const model::AdapterDir d = model::read_adapter_dir((fs::path(dir2) / ("checkpoint-" + std::to_string(kSteps))).string());
  model::Qwen3VL m = model::Qwen3VL::load(Assets::get().model_dir);
  model::attach_adapters(m, d.spec, 0);
  model::load_adapter_tensors(m, d.tensors, "checkpoint");
  double max_diff = 0.0, max_b = 0.0;
  for (const auto& [k, p] : m.adapter_parameters()) {
    max_diff = std::max(max_diff, (p - one_rank.at(k)).abs().max().item<double>());
    if (k.find("lora_B") != std::string::npos) max_b = std::max(max_b, p.abs().max().item<double>());
  }
  std::cout << "max |2 ranks - 1 rank| over the adapters = " << max_diff << ", max |lora_B| = " << max_b << std::endl;
  EXPECT_LT(max_diff, 1e-5);
  EXPECT_GT(max_b, 1e-3);  // training moved the adapters: the comparison is not vacuous

  // What each rank all-reduced: the adapters, nothing of the ~10M-parameter base.
  const std::regex line(R"(gradient all-reduce: (\d+) tensor\(s\), (\d+) element\(s\) per step)");
  for (int r = 0; r < 2; ++r) {
    const std::string log = coordexp::dist::testing::read_text(dir2 + ".rank" + std::to_string(r) + ".log");
    std::smatch mt;
    ASSERT_TRUE(std::regex_search(log, mt, line)) << logs_of(dir2, 2);
    EXPECT_EQ(std::stoll(mt[1].str()), static_cast<int64_t>(one_rank.size())) << "rank " << r;
    EXPECT_EQ(std::stoll(mt[2].str()), adapter_elements) << "rank " << r;
  }
}

}  // namespace
}  // namespace coordexp::dist
