// Parameter precision in the trainer: with model.dtype bfloat16 the optimizer keeps float32 master
// weights, so at a small learning rate (updates below bf16's rounding step) the loss still falls like
// the float32 run's, and a bf16 run resumes from a checkpoint bit-exactly (masters in the state file).
#include <gtest/gtest.h>

#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/trainer.h"
#include "fixture.h"

namespace coordexp::train {
namespace {
using namespace testing;

std::vector<double> losses(const std::string& dir) {
  std::vector<double> v;
  for (const auto& r : metrics_with(dir, "loss")) v.push_back(r.at("loss").get<double>());
  return v;
}

// One record repeated (every step sees the same batch), lr 2e-5 constant after 1 warmup step.
config::RunConfig fixed_batch_config(const std::string& dir, const std::string& dtype) {
  auto c = base_config(dir);
  const std::string one = testing::one_record_jsonl(dir);
  c.data.train_jsonl = {one};
  c.data.shuffle = false;
  c.model.dtype = dtype;
  c.train.max_steps = 30;
  c.optim.lr = 2e-5;
  c.optim.warmup_steps = 1;
  c.optim.schedule = "constant";
  return c;
}

TEST(TrainerPrecision, Bfloat16LossFallsLikeFloat32AtASmallLearningRate) {
  std::vector<double> drop;
  for (const std::string dtype : {"float32", "bfloat16"}) {
    const std::string dir = fresh_dir("precision_" + dtype);
    Trainer t(fixed_batch_config(dir, dtype));
    t.run();
    const auto l = losses(dir);
    ASSERT_EQ(l.size(), 30u) << dtype;
    drop.push_back(l.front() - l.back());
  }
  // Measured: float32 drops 3.74 in 30 steps, bfloat16 with master weights 3.46, bfloat16 without
  // them (each update rounded into the bf16 parameter) 0.73.
  EXPECT_GT(drop[0], 1.0);
  EXPECT_GT(drop[1], 0.75 * drop[0]) << "float32 drop " << drop[0] << ", bfloat16 drop " << drop[1];
}

// A bfloat16 run resumed from its mid-run checkpoint continues bit-exactly: the masters (not the
// rounded bf16 parameters) come back from the optimizer state.
TEST(TrainerPrecision, Bfloat16ResumeContinuesBitExactly) {
  const std::string dir_a = fresh_dir("precision_resume_a");
  auto c = fixed_batch_config(dir_a, "bfloat16");
  c.train.max_steps = 6;
  c.checkpoint.every = 3;
  std::map<std::string, torch::Tensor> final_a;
  {
    Trainer t(c);
    t.run();
    for (const auto& [k, p] : t.model().named_parameters()) final_a[k] = p.detach().clone();
  }
  const auto losses_a = losses(dir_a);
  ASSERT_EQ(losses_a.size(), 6u);
  const std::string dir_b = fresh_dir("precision_resume_b");
  fs::create_directories(dir_b);
  fs::copy(fs::path(dir_a) / "checkpoint-3", fs::path(dir_b) / "checkpoint-3", fs::copy_options::recursive);
  auto cb = c;
  cb.train.output_dir = dir_b;
  cb.checkpoint.resume = "auto";
  Trainer t(cb);
  EXPECT_EQ(t.step(), 3);
  t.run();
  const auto losses_b = losses(dir_b);
  ASSERT_EQ(losses_b.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(losses_b[i], losses_a[i + 3]) << "step " << i + 4;
  for (const auto& [k, p] : t.model().named_parameters()) {
    EXPECT_EQ(p.scalar_type(), torch::kBFloat16) << k;
    EXPECT_TRUE(torch::equal(p, final_a.at(k))) << k;
  }
}

}  // namespace
}  // namespace coordexp::train
