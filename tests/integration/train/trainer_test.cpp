// Stage-1 trainer on a tiny random Qwen3-VL (make-tiny + expand-vocab, real Qwen3 tokenizer) and
// synthetic shape images, in process: overfitting a fixed batch, gradient accumulation == one bigger
// batch, bit-exact resume from a checkpoint, a checkpoint reloading with Qwen3VL::load to identical
// logits (and frozen groups staying put), the NaN/Inf guard, on_invalid error/skip, and train-time
// detection evaluation (eval.detection) against infer + eval of the saved checkpoint.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <optional>
#include <thread>

#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/checkpoint.h"
#include "coordexp/train/trainer.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "fixture.h"

namespace coordexp::train {
namespace {
using namespace testing;

std::vector<double> column(const std::vector<nlohmann::json>& recs, const std::string& key) {
  std::vector<double> v;
  for (const auto& r : recs) v.push_back(r.at(key).get<double>());
  return v;
}

std::map<std::string, torch::Tensor> snapshot(model::Qwen3VL& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, p] : m.named_parameters()) out[k] = p.detach().clone();
  return out;
}

TEST(Trainer, OverfitsAFixedBatchIn50Steps) {
  const std::string dir = fresh_dir("overfit");
  auto c = base_config(dir);
  // One record repeated: every step sees the same batch.
  const std::string one = testing::one_record_jsonl(dir);
  c.data.train_jsonl = {one};
  c.data.shuffle = false;
  c.train.max_steps = 50;
  c.train.log_every = 1;
  c.optim.lr = 3e-3;
  c.optim.warmup_steps = 3;
  Trainer t(c);
  const TrainResult r = t.run();
  EXPECT_EQ(r.steps_done, 50);
  const auto recs = metrics_with(dir, "loss");
  ASSERT_EQ(recs.size(), 50u);
  const auto loss = column(recs, "loss");
  EXPECT_GT(loss.front(), 5.0);                       // ~ln(vocab) for a random model
  EXPECT_LT(loss.back(), 0.25 * loss.front()) << "first " << loss.front() << " last " << loss.back();
  EXPECT_LT(recs.back().at("loss_coord_token_ce").get<double>(), recs.front().at("loss_coord_token_ce").get<double>());
  // Every registry term of Stage-1 defaults, lr, grad norm, throughput and data counters are logged.
  for (const char* key : {"loss_struct_ce", "loss_desc_ce", "loss_coord_token_ce", "lr", "grad_norm", "tokens_per_s",
                          "samples_per_s", "num_nonfinite_skipped", "data_padded_samples", "data_wait_s"})
    EXPECT_TRUE(recs.back().contains(key)) << key;
  // Time the step waited for the loader: a duration, never more than the step itself took.
  for (const auto& rec : recs) {
    const double wait = rec.at("data_wait_s").get<double>();
    EXPECT_GE(wait, 0.0);
    EXPECT_LE(wait, 1.0 / rec.at("samples_per_s").get<double>() + 1e-3) << rec.dump();
  }
  EXPECT_TRUE(fs::exists(fs::path(dir) / "checkpoint-50" / kCheckpointMarker));  // the final checkpoint
}

// k micro-batches of one sample == one batch of k samples: the same samples per step (same seed and
// shuffle), per-step loss and gradient norm (sensitive to the normalization, unlike Adam's update),
// and parameters within 1e-5. A large Adam eps keeps updates proportional to tiny gradients, so
// float noise in near-zero gradients cannot flip them to +-lr.
TEST(Trainer, GradientAccumulationEqualsOneBiggerBatch) {
  std::map<std::string, torch::Tensor> params[2];
  std::vector<nlohmann::json> recs[2];
  for (int run = 0; run < 2; ++run) {
    const std::string dir = fresh_dir("accum" + std::to_string(run));
    auto c = base_config(dir);
    c.train.max_steps = 3;
    c.train.micro_batch_size = run == 0 ? 1 : 4;
    c.train.grad_accum_steps = run == 0 ? 4 : 1;
    c.optim.eps = 1e-3;
    c.optim.grad_clip = 0.0;
    Trainer t(c);
    t.run();
    params[run] = snapshot(t.model());
    recs[run] = metrics_with(dir, "loss");
  }
  const auto initial = model::Qwen3VL::load(Assets::get().model_dir).named_parameters();
  ASSERT_EQ(recs[0].size(), 3u);
  ASSERT_EQ(recs[1].size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_NEAR(recs[0][s]["loss"].get<double>(), recs[1][s]["loss"].get<double>(), 1e-5 * recs[1][s]["loss"].get<double>());
    EXPECT_NEAR(recs[0][s]["grad_norm"].get<double>(), recs[1][s]["grad_norm"].get<double>(),
                1e-4 * recs[1][s]["grad_norm"].get<double>());
    EXPECT_EQ(recs[0][s]["num_samples"], recs[1][s]["num_samples"]);
  }
  double max_diff = 0.0, max_move = 0.0;
  for (const auto& [k, p] : params[0]) {
    max_diff = std::max(max_diff, (p - params[1][k]).abs().max().item<double>());
    max_move = std::max(max_move, (p - initial.at(k)).abs().max().item<double>());
  }
  EXPECT_LT(max_diff, 1e-5);
  EXPECT_GT(max_move, 1e-3);  // the comparison is not vacuous: training moved the parameters
}

// The chunked LM head + CE (loss.head_chunk_rows, coord/head_ce.h) trains like the unchunked one:
// Stage-1 and Stage-2 (Channel-A N=2 + Channel-B) with DFL and L_geo on, 3 steps each, the same
// per-step losses and gradient norms and parameters (float32, summation order differs), and a
// chunk of 3 rows really splits the answers (tens of rows per micro-batch).
TEST(Trainer, ChunkedHeadTrainsLikeFullLogits) {
  for (const char* stage : {"stage1", "stage2"}) {
    std::map<std::string, torch::Tensor> params[2];
    std::vector<nlohmann::json> recs[2];
    for (int run = 0; run < 2; ++run) {
      const std::string dir = fresh_dir(std::string("head_chunk_") + stage + std::to_string(run));
      auto c = base_config(dir);
      c.train.stage = stage;
      c.train.max_steps = 3;
      c.train.micro_batch_size = 2;
      c.stage2.b_ratio = 0.5;
      c.rollout.max_new_tokens = 12;
      c.loss.coord_dist.mode = "dfl";
      c.loss.geo.weight = 0.5;
      c.loss.head_chunk_rows = run == 0 ? 0 : 3;
      c.optim.eps = 1e-3;
      c.optim.grad_clip = 0.0;
      Trainer t(c);
      t.run();
      params[run] = snapshot(t.model());
      recs[run] = metrics_with(dir, "loss");
    }
    ASSERT_EQ(recs[0].size(), 3u);
    ASSERT_EQ(recs[1].size(), 3u);
    for (size_t s = 0; s < 3; ++s) {
      EXPECT_NEAR(recs[0][s]["loss"].get<double>(), recs[1][s]["loss"].get<double>(), 1e-5 * recs[1][s]["loss"].get<double>())
          << stage << " step " << s + 1;
      EXPECT_NEAR(recs[0][s]["grad_norm"].get<double>(), recs[1][s]["grad_norm"].get<double>(),
                  1e-4 * recs[1][s]["grad_norm"].get<double>())
          << stage << " step " << s + 1;
      if (std::string(stage) == "stage2") EXPECT_EQ(recs[0][s]["step_kind"], recs[1][s]["step_kind"]);
    }
    double max_diff = 0.0;
    for (const auto& [k, p] : params[0]) max_diff = std::max(max_diff, (p - params[1][k]).abs().max().item<double>());
    EXPECT_LT(max_diff, 1e-5) << stage;
  }
}

// Resume from a checkpoint written mid-run (copied into a fresh run directory) and continue: the
// per-step losses and the final parameters equal the uninterrupted run's bit for bit.
TEST(Trainer, ResumeContinuesBitExactly) {
  const std::string dir_a = fresh_dir("resume_a");
  auto c = base_config(dir_a);
  c.data.num_workers = 2;
  c.train.max_steps = 6;
  c.train.grad_accum_steps = 2;
  c.checkpoint.every = 3;
  c.optim.weight_decay = 0.01;
  c.optim.coord_rows.lr_mult = 2.0;
  std::map<std::string, torch::Tensor> final_a;
  {
    Trainer t(c);
    t.run();
    final_a = snapshot(t.model());
  }
  const auto losses_a = column(metrics_with(dir_a, "loss"), "loss");
  ASSERT_EQ(losses_a.size(), 6u);

  const std::string dir_b = fresh_dir("resume_b");
  fs::create_directories(dir_b);
  fs::copy(fs::path(dir_a) / "checkpoint-3", fs::path(dir_b) / "checkpoint-3", fs::copy_options::recursive);
  auto cb = c;
  cb.train.output_dir = dir_b;
  cb.checkpoint.resume = "auto";
  Trainer t(cb);
  EXPECT_EQ(t.step(), 3);
  const TrainResult r = t.run();
  EXPECT_EQ(r.start_step, 3);
  const auto recs_b = metrics_with(dir_b, "loss");
  ASSERT_EQ(recs_b.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(recs_b[i]["step"].get<int64_t>(), static_cast<int64_t>(i + 4));
    EXPECT_EQ(recs_b[i]["loss"].get<double>(), losses_a[i + 3]) << "step " << i + 4;  // bit-exact
  }
  for (const auto& [k, p] : snapshot(t.model())) EXPECT_TRUE(torch::equal(p, final_a.at(k))) << k;
}

// train.stop_at_step: a run planned in pieces (stop after step 4 of 6, then resume without the key)
// ends bit-identical to the uninterrupted run: the schedule spans max_steps in both.
TEST(Trainer, StopAtStepThenResumeEqualsOneRun) {
  const std::string dir_a = fresh_dir("stop_at_a");
  auto c = base_config(dir_a);
  c.train.max_steps = 6;
  c.optim.warmup_steps = 2;
  std::map<std::string, torch::Tensor> final_a;
  {
    Trainer t(c);
    t.run();
    final_a = snapshot(t.model());
  }
  const auto losses_a = column(metrics_with(dir_a, "loss"), "loss");
  const std::string dir_b = fresh_dir("stop_at_b");
  auto cb = c;
  cb.train.output_dir = dir_b;
  cb.checkpoint.resume = "auto";
  cb.train.stop_at_step = 4;
  {
    Trainer t(cb);
    const TrainResult r = t.run();
    EXPECT_TRUE(r.stopped_at_step);
    EXPECT_EQ(r.steps_done, 4);
    EXPECT_TRUE(fs::exists(fs::path(dir_b) / "checkpoint-4" / kCheckpointMarker));
  }
  {
    Trainer t(cb);  // resumed at the stop step: nothing to do
    const TrainResult r = t.run();
    EXPECT_TRUE(r.stopped_at_step);
    EXPECT_EQ(r.steps_done, 4);
  }
  cb.train.stop_at_step = 0;
  Trainer t(cb);
  EXPECT_EQ(t.step(), 4);
  const TrainResult r = t.run();
  EXPECT_FALSE(r.stopped_at_step);
  EXPECT_EQ(r.steps_done, 6);
  const auto losses_b = column(metrics_with(dir_b, "loss"), "loss");
  ASSERT_EQ(losses_b.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(losses_b[i], losses_a[i]) << "step " << i + 1;  // bit-exact
  for (const auto& [k, p] : snapshot(t.model())) EXPECT_TRUE(torch::equal(p, final_a.at(k))) << k;
}

// A resumed run loads the model, tokenizer and auxiliary files from the checkpoint it resumes; with
// keep_last 1 that checkpoint is deleted at the run's first save, and every later save must still
// write complete checkpoints (they once re-read tokenizer.json from the deleted folder and aborted).
TEST(Trainer, ResumedRunKeepsSavingAfterItsSourceCheckpointRotatedAway) {
  const std::string dir = fresh_dir("rotated_source");
  auto c = base_config(dir);
  c.train.max_steps = 2;
  c.checkpoint.every = 1;
  c.checkpoint.keep_last = 1;
  {
    Trainer t(c);
    t.run();
  }
  ASSERT_TRUE(fs::exists(fs::path(dir) / "checkpoint-2" / kCheckpointMarker));
  c.train.max_steps = 5;
  c.checkpoint.resume = "auto";
  Trainer t(c);
  const TrainResult r = t.run();
  EXPECT_EQ(r.steps_done, 5);
  EXPECT_FALSE(fs::exists(fs::path(dir) / "checkpoint-2"));
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                        "preprocessor_config.json", kCheckpointMarker})
    EXPECT_TRUE(fs::exists(fs::path(dir) / "checkpoint-5" / f)) << f;
  const auto tok = tokenizer::Tokenizer::from_dir(dir + "/checkpoint-5");
  EXPECT_TRUE(tok->coord_vocab().valid());
}

nlohmann::json state_of(const std::string& checkpoint) {
  return nlohmann::json::parse(util::read_file(checkpoint + "/" + kCheckpointMarker));
}

// Run lineages. Run A saves 2, 4, 6; run B resumes A's checkpoint-2 explicitly (a new run id branching
// off A at 2) and saves 3, 4 with keep_last 2 before stopping; an auto-resume then continues B from 4
// (not A's abandoned 6) to the end, and pruning never deleted B's checkpoints for A's. B + C repeat
// A's steps 3..6 with the same settings, so the end weights equal A's bit for bit. A checkpoint
// written before run ids (no run_id key, no run_lineage.json) still loads.
TEST(Trainer, AutoResumeAndPruningFollowTheRunLineage) {
  const std::string dir = fresh_dir("lineage");
  auto c = base_config(dir);
  c.train.max_steps = 6;
  c.checkpoint.every = 2;
  std::map<std::string, torch::Tensor> final_a;
  {
    Trainer t(c);
    t.run();
    final_a = snapshot(t.model());
  }
  const fs::path root(dir);
  const std::string run_a = state_of(dir + "/checkpoint-6")["run_id"].get<std::string>();
  EXPECT_EQ(run_a.size(), 16u);
  EXPECT_EQ(state_of(dir + "/checkpoint-2")["run_id"], run_a);

  auto cb = c;
  cb.checkpoint.resume = dir + "/checkpoint-2";
  cb.checkpoint.every = 1;
  cb.checkpoint.keep_last = 2;
  cb.train.stop_at_step = 4;
  {
    Trainer t(cb);
    EXPECT_EQ(t.step(), 2);
    EXPECT_EQ(t.run().steps_done, 4);
  }
  for (int step : {3, 4, 6}) EXPECT_TRUE(fs::exists(root / ("checkpoint-" + std::to_string(step)) / kCheckpointMarker)) << step;
  EXPECT_FALSE(fs::exists(root / "checkpoint-2"));  // B's lineage: A's 2, B's 3 and 4 -> newest 2 kept
  const auto state4 = state_of(dir + "/checkpoint-4");
  const std::string run_b = state4["run_id"].get<std::string>();
  EXPECT_NE(run_b, run_a);
  EXPECT_EQ(state_of(dir + "/checkpoint-3")["run_id"], run_b);
  EXPECT_EQ(state4["run_ancestors"], nlohmann::json::parse(R"([{"run_id": ")" + run_a + R"(", "until_step": 2}])"));
  EXPECT_EQ(state_of(dir + "/checkpoint-6")["run_id"], run_a);  // abandoned, left alone
  EXPECT_EQ(nlohmann::json::parse(util::read_file(dir + "/" + kLineageFile))["run_id"], run_b);

  auto cc = c;
  cc.checkpoint.resume = "auto";
  cc.checkpoint.every = 1;
  cc.checkpoint.keep_last = 2;
  {
    Trainer t(cc);
    EXPECT_EQ(t.step(), 4);  // B's newest, not A's checkpoint-6
    EXPECT_EQ(t.run().steps_done, 6);
    for (const auto& [k, p] : snapshot(t.model())) EXPECT_TRUE(torch::equal(p, final_a.at(k))) << k;
  }
  EXPECT_EQ(state_of(dir + "/checkpoint-6")["run_id"], run_b);  // B continued; A's 6 replaced
  EXPECT_FALSE(fs::exists(root / "checkpoint-4"));
  EXPECT_TRUE(fs::exists(root / "checkpoint-5"));

  // Written before run ids: no run_id / run_ancestors, no run_lineage.json. Loads; a new run id
  // branches off it.
  auto legacy = state_of(dir + "/checkpoint-6");
  legacy.erase("run_id");
  legacy.erase("run_ancestors");
  util::write_file_atomic(dir + "/checkpoint-6/" + kCheckpointMarker, legacy.dump(2));
  fs::remove(root / kLineageFile);
  Trainer t(cc);
  EXPECT_EQ(t.step(), 6);
  const auto lineage = nlohmann::json::parse(util::read_file(dir + "/" + kLineageFile));
  EXPECT_NE(lineage["run_id"], run_b);
  EXPECT_EQ(lineage["ancestors"], nlohmann::json::parse(R"([{"run_id": "", "until_step": 6}])"));
}

// Peak resident memory of `coordexp-train <args>` run as a child (output to `log`), in KiB (wait4's
// rusage); -1 when it failed.
long child_peak_rss_kib(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  std::string bin = COORDEXP_TRAIN_BIN;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage ru {};
  if (pid < 0 || ::wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return ru.ru_maxrss;
}

// Memory scales with the micro-batch, not with grad_accum_steps: the trainer counts a step's
// supervised items from token metadata and loads each micro-batch's pixels right before its forward.
// The same 16 micro-batches of 512 x 512 images (1024 patches, 6 MiB of float32 pixel_values each)
// go through as 16 steps of 1 and as one step of 16; holding the step's micro-batches at once made
// the second peak ~170 MiB higher (measured), now it is not higher than a few micro-batches' pixels.
TEST(Trainer, PeakMemoryDoesNotGrowWithGradAccumSteps) {
  const Assets& a = Assets::get();
  const fs::path root = fs::path(fresh_dir("accum_memory"));
  data::SyntheticDataOptions d;
  d.out_dir = (root / "data").string();
  d.num_train = 16;
  d.num_val = 1;
  d.width = 512;
  d.height = 512;
  d.max_objects = 2;
  d.seed = 5;
  const std::string jsonl = data::write_synthetic_dataset(d).train_jsonl;
  auto peak = [&](int accum, int steps) {
    const std::string out = (root / ("run" + std::to_string(accum))).string();
    fs::create_directories(out);
    const std::string cfg = out + "/config.yaml";
    std::ofstream(cfg) << "model: {path: " << a.model_dir << "}\n"
                       << "data: {train_jsonl: [" << jsonl << "], num_workers: 1, prefetch_batches: 2}\n"
                       << "preprocess: {min_pixels: 262144, max_pixels: 262144}\n"
                       << "train: {output_dir: " << out << ", device: cpu, precision: fp32, num_threads: 1, "
                       << "max_steps: " << steps << ", micro_batch_size: 1, grad_accum_steps: " << accum << "}\n"
                       << "checkpoint: {every: 0, keep_last: 1}\nlog: {progress: off}\n";
    return child_peak_rss_kib({"train", "--config", cfg}, out + "/train.log");
  };
  const long steps_of_one = peak(1, 16), one_step_of_16 = peak(16, 1);
  const long pixel_kib = 1024L * 1536 * 4 / 1024;
  std::cout << "peak RSS: 16 steps x 1 micro-batch: " << steps_of_one / 1024 << " MiB, 1 step x 16: "
            << one_step_of_16 / 1024 << " MiB (one micro-batch's pixels: " << pixel_kib / 1024 << " MiB)" << std::endl;
  ASSERT_GT(steps_of_one, 0) << util::read_file((root / "run1" / "train.log").string());
  ASSERT_GT(one_step_of_16, 0) << util::read_file((root / "run16" / "train.log").string());
  EXPECT_LT(one_step_of_16 - steps_of_one, 5 * pixel_kib);
}

TEST(Trainer, CheckpointReloadsWithIdenticalLogitsAndFrozenGroupsStayPut) {
  const std::string dir = fresh_dir("reload");
  auto c = base_config(dir);
  c.train.max_steps = 2;
  c.optim.vision.freeze = true;
  Trainer t(c);
  const TrainResult r = t.run();
  ASSERT_EQ(r.last_checkpoint, (fs::path(dir) / "checkpoint-2").string());
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                        "preprocessor_config.json", "trainer_state/state.json", "trainer_state/optimizer.safetensors",
                        "trainer_state/rng.safetensors", "trainer_state/config.yaml"})
    EXPECT_TRUE(fs::exists(fs::path(r.last_checkpoint) / f)) << f;

  // Reloaded with the trainer's runtime (model.attn_implementation etc.), so equal logits mean equal weights.
  auto reloaded = model::Qwen3VL::load(r.last_checkpoint, t.model().runtime());
  const auto initial = model::Qwen3VL::load(Assets::get().model_dir).named_parameters();
  for (const auto& [k, p] : reloaded.named_parameters()) {
    EXPECT_TRUE(torch::equal(p, t.model().named_parameters().at(k))) << k;
    if (k.rfind("model.visual.", 0) == 0 && k.rfind("model.visual.merger", 0) != 0 &&
        k.rfind("model.visual.deepstack", 0) != 0) {
      EXPECT_TRUE(torch::equal(p, initial.at(k))) << "frozen vision parameter moved: " << k;
    }
  }
  torch::NoGradGuard no_grad;
  const auto ids = torch::tensor({{151644, 872, 198, 9707, 11, 1879, 0, 151645}}, torch::kLong);
  model::ForwardInputs in;
  in.input_ids = ids;
  in.logits = model::LogitsRequest::all();
  const auto a = t.model().forward(in).logits, b = reloaded.forward(in).logits;
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, model::Qwen3VL::load(Assets::get().model_dir, t.model().runtime()).forward(in).logits));
}

TEST(Trainer, NonFiniteStepsAreSkippedNamedAndAbortAfterTheLimit) {
  const std::string dir = fresh_dir("nan");
  auto c = base_config(dir);
  c.train.max_steps = 10;
  c.train.max_nonfinite_steps = 3;
  Trainer t(c);
  {
    torch::NoGradGuard no_grad;
    t.model().named_parameters().at("model.language_model.norm.weight").fill_(std::nanf(""));
  }
  const auto before = snapshot(t.model());
  try {
    t.run();
    ADD_FAILURE() << "expected an abort";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("3 consecutive steps"), std::string::npos) << msg;
    EXPECT_NE(msg.find("loss_struct_ce = nan"), std::string::npos) << msg;
  }
  EXPECT_EQ(t.step(), 3);
  const auto recs = metrics_with(dir, "update_skipped");
  ASSERT_EQ(recs.size(), 3u);
  for (const auto& r : recs) EXPECT_TRUE(r["update_skipped"].get<bool>());
  EXPECT_EQ(recs.back()["num_nonfinite_skipped"].get<int64_t>(), 3);
  for (const auto& [k, p] : snapshot(t.model())) EXPECT_TRUE(torch::equal(p, before.at(k)) || k == "model.language_model.norm.weight") << k;
}

TEST(Trainer, OnInvalidErrorNamesTheRecordAndSkipCountsIt) {
  const Assets& a = Assets::get();
  const std::string dir = fresh_dir("invalid");
  const fs::path data_dir = fs::path(a.train_jsonl).parent_path();
  // A record whose image is missing (invalid at load) and one whose image is not an image (fails
  // when the loader builds it).
  std::ofstream(data_dir / "images" / "corrupt.png") << "not a png";
  const std::string jsonl = (data_dir / "with_bad.jsonl").string();
  {
    std::ifstream in(a.train_jsonl);
    std::ofstream out(jsonl);
    std::string line;
    for (int i = 0; i < 3 && std::getline(in, line); ++i) out << line << "\n";
    out << R"({"images": ["images/missing.png"], "width": 64, "height": 64, "objects": [{"desc": "red circle", "bbox_2d": [1, 1, 9, 9]}]})" << "\n";
    out << R"({"images": ["images/corrupt.png"], "width": 64, "height": 64, "objects": [{"desc": "red circle", "bbox_2d": [1, 1, 9, 9]}]})" << "\n";
  }
  auto c = base_config(dir);
  c.data.train_jsonl = {jsonl};
  c.data.shuffle = false;
  c.data.on_invalid = "error";
  try {
    Trainer t(c);
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("with_bad.jsonl:4"), std::string::npos) << e.what();
  }
  c.data.on_invalid = "skip";
  c.train.max_steps = 4;  // one epoch = 4 valid records at micro batch 1
  Trainer t(c);
  t.run();
  const auto recs = metrics_with(dir, "loss");
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs.back()["data_invalid_missing_image"].get<int64_t>(), 1);
  EXPECT_EQ(recs.back()["data_skipped_image_unreadable"].get<int64_t>(), 1);
}

// An image that becomes unreadable while a run is using it (issue 15), at trainer level: the run
// notices it only when a later epoch builds that record again. With on_invalid=skip the run finishes
// and counts the skip (metrics.jsonl and the saved loader state); with error it ends with a
// DataError naming the record and the image, the checkpoint before it stays loadable, and once the
// image is back the run resumes from that checkpoint and finishes.
TEST(Trainer, ImageBrokenMidRunIsACountedSkipOrAnErrorThatLeavesTheCheckpointResumable) {
  const Assets& a = Assets::get();
  for (const std::string policy : {"skip", "error"}) {
    SCOPED_TRACE(policy);
    const std::string dir = fresh_dir("image_broken_midrun_" + policy);
    // A private copy of the data, so breaking an image does not touch the other tests' files.
    const fs::path data = fs::path(dir + "_data");
    fs::remove_all(data);
    fs::copy(fs::path(a.train_jsonl).parent_path(), data, fs::copy_options::recursive);
    const std::string jsonl = (data / fs::path(a.train_jsonl).filename()).string();
    std::string first_image;
    {
      std::ifstream in(jsonl);
      std::string line;
      std::getline(in, line);
      first_image = (data / nlohmann::json::parse(line)["images"][0].get<std::string>()).string();
    }
    const std::string good = util::read_file(first_image);

    auto c = base_config(dir);
    c.data.train_jsonl = {jsonl};
    c.data.shuffle = false;
    c.data.num_workers = 0;  // records are built on the training thread, when the step needs them
    c.data.on_invalid = policy;
    c.train.micro_batch_size = 2;
    c.train.max_steps = 16;  // 8 records: an epoch is 4 steps; record 0 opens steps 0, 4, 8 and 12
    c.checkpoint.every = 2;

    std::atomic<int64_t> broken_after_step{-1};
    Trainer t(c);
    // The test thread breaks record 0's image once checkpoint-2 exists (steps 0-2 used the good one).
    std::thread breaker([&] {
      const fs::path ckpt = fs::path(dir) / "checkpoint-2";
      for (int i = 0; i < 60000 && !fs::exists(ckpt); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      std::ofstream(first_image, std::ios::binary | std::ios::trunc) << "no longer an image";
      broken_after_step = t.step();
    });
    std::optional<std::string> error;
    try {
      t.run();
    } catch (const DataError& e) {
      error = e.what();
    }
    breaker.join();
    ASSERT_GE(broken_after_step.load(), 2);
    ASSERT_LT(broken_after_step.load(), 12) << "the run ended before a later epoch could see the broken image";

    if (policy == "skip") {
      ASSERT_FALSE(error) << *error;
      const auto recs = metrics_with(dir, "loss");
      ASSERT_FALSE(recs.empty());
      EXPECT_EQ(recs.back()["step"], 16);
      const int64_t skipped = recs.back().value("data_skipped_image_unreadable", int64_t{0});
      EXPECT_GE(skipped, 1) << recs.back().dump();
      EXPECT_LE(skipped, 3) << "at most once per epoch after the break";
      const auto state = nlohmann::json::parse(util::read_file(dir + "/checkpoint-16/trainer_state/state.json"));
      EXPECT_NE(state.dump().find("image_unreadable"), std::string::npos) << "the saved loader state keeps the count";
    } else {
      ASSERT_TRUE(error) << "on_invalid=error: the run must stop at the broken image";
      EXPECT_NE(error->find(first_image), std::string::npos) << *error;
      EXPECT_NE(error->find(".jsonl:1"), std::string::npos) << "names the record: " << *error;
      // The newest checkpoint is complete and loadable; with the image back the run resumes from it.
      const int64_t last = [&] {
        int64_t s = -1;
        for (const auto& e : fs::directory_iterator(dir))
          if (e.path().filename().string().rfind("checkpoint-", 0) == 0)
            s = std::max<int64_t>(s, std::stoll(e.path().filename().string().substr(11)));
        return s;
      }();
      ASSERT_GE(last, 2);
      EXPECT_NO_THROW(model::Qwen3VL::load(dir + "/checkpoint-" + std::to_string(last), model::ModelRuntime{}));
      util::write_file_atomic(first_image, good);
      auto resumed = c;
      resumed.checkpoint.resume = "auto";
      Trainer t2(resumed);
      const TrainResult r = t2.run();
      EXPECT_EQ(r.start_step, last);
      EXPECT_EQ(r.steps_done, 16) << "steps_done counts from step 0";
    }
  }
}

// eval.detection: at every validation pass rank 0 predicts the first eval.max_images val records and
// scores them. Checked against the offline path on the same weights: `infer` with the final
// checkpoint writes the same prediction lines, and `eval` on them gives the logged eval_* numbers.
TEST(Trainer, DetectionEvalAtValidationMatchesInferAndEvalOfTheCheckpoint) {
  const Assets& a = Assets::get();
  const std::string dir = fresh_dir("detection_eval");
  auto c = base_config(dir);
  c.data.val_jsonl = {a.val_jsonl};
  c.train.max_steps = 4;
  c.train.eval_every = 2;
  c.train.val_max_batches = 1;
  c.eval.detection = true;
  c.eval.max_images = 2;
  c.rollout.max_new_tokens = 24;
  c.rollout.batch_size = 2;
  Trainer t(c);
  const TrainResult r = t.run();
  ASSERT_EQ(r.steps_done, 4);

  const auto evals = metrics_with(dir, "eval_AP50");
  ASSERT_EQ(evals.size(), 2u);
  EXPECT_EQ(evals[0]["step"], 2);
  EXPECT_EQ(evals[1]["step"], 4);
  for (const char* key : {"eval_AP", "eval_AP50", "eval_AR100", "eval_f1_50", "eval_precision_50", "eval_recall_50",
                          "eval_parse_rate", "eval_duplicate_rate", "eval_images", "eval_time_s"})
    EXPECT_TRUE(evals[1].contains(key)) << key;
  EXPECT_EQ(evals[1]["eval_images"], 2);
  const fs::path step_dir = fs::path(dir) / "eval" / "step-000004";
  ASSERT_TRUE(fs::exists(step_dir / "metrics.json"));
  std::vector<std::string> trained;
  {
    std::ifstream in(step_dir / "predictions.jsonl");
    for (std::string line; std::getline(in, line);) trained.push_back(line);
  }
  ASSERT_EQ(trained.size(), 2u);

  // The offline path on the final checkpoint, on the same two val records.
  const std::string val2 = (fs::path(a.val_jsonl).parent_path() / "val_first2.jsonl").string();
  {
    std::ifstream in(a.val_jsonl);
    std::ofstream out(val2);
    std::string line;
    for (int i = 0; i < 2 && std::getline(in, line); ++i) out << line << "\n";
  }
  const std::string cfg = dir + "_infer.yaml";
  std::ofstream(cfg) << "model: {device: cpu}\npreprocess: {min_pixels: 4096, max_pixels: 4096}\n"
                     << "rollout: {max_new_tokens: 24, batch_size: 2}\n";
  const std::string pred = dir + "_pred.jsonl";
  const auto inferred = run_binary("infer --model " + r.last_checkpoint + " --data " + val2 + " --out " + pred +
                                       " --config " + cfg, "OMP_NUM_THREADS=1");
  ASSERT_EQ(inferred.code, 0) << inferred.output;
  std::vector<std::string> offline;
  {
    std::ifstream in(pred);
    for (std::string line; std::getline(in, line);) offline.push_back(line);
  }
  ASSERT_EQ(offline.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    auto x = nlohmann::json::parse(trained[i]), y = nlohmann::json::parse(offline[i]);
    for (auto* j : {&x, &y})
      for (auto& o : (*j)["objects"]) o.erase("score");  // float rounding of another batch composition
    EXPECT_EQ(x, y) << "record " << i;
  }
  const auto scored = run_binary("eval --gt " + val2 + " --pred " + pred + " --out " + dir + "_metrics.json");
  ASSERT_TRUE(scored.code == 0 || scored.code == 3) << scored.output;
  std::ifstream min(dir + "_metrics.json");
  const auto m = nlohmann::json::parse(min);
  EXPECT_DOUBLE_EQ(evals[1]["eval_AP50"].get<double>(), m["coco"]["AP50"].get<double>());
  EXPECT_DOUBLE_EQ(evals[1]["eval_AR100"].get<double>(), m["coco"]["AR100"].get<double>());
  EXPECT_DOUBLE_EQ(evals[1]["eval_parse_rate"].get<double>(), m["parse"]["success_rate"].get<double>());
}

}  // namespace
}  // namespace coordexp::train
