// Distributed runs that never hang (2 ranks, Gloo on localhost): a SIGKILLed rank makes the other
// exit non-zero within dist.timeout_s naming the step and the collective, and so does a stalled
// (SIGSTOPped) one; the checkpoint barrier waits dist.save_timeout_s, not dist.timeout_s; ranks whose
// batches differ in image count and image-token count, one of them empty (a skipped record), with a
// frozen vision tower, stay in lockstep with identical parameters, and the skip is counted in rank
// 0's metrics (summed over ranks); resuming that checkpoint with another world size is refused.
#include <gtest/gtest.h>

#include <iostream>
#include <regex>

#include <nlohmann/json.hpp>

#include "coordexp/data/synthetic.h"
#include "coordexp/dist/launch_env.h"
#include "coordexp/dist/process_group.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/checkpoint.h"
#include "coordexp/train/process_group_reducer.h"
#include "coordexp/train/trainer.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "integration/dist/spawn.h"
#include "integration/train/fixture.h"

namespace coordexp::dist {
namespace {
namespace fs = std::filesystem;
namespace dt = coordexp::dist::testing;
using train::testing::Assets;
using train::testing::fresh_dir;
using train::testing::metrics_with;

// The binary's YAML: the tiny model on the synthetic data, CPU, micro-batch 1, `extra` appended
// (later keys of a flow map cannot be repeated, so `dist` and `checkpoint` are parameters).
std::string yaml_for(const std::string& output_dir, int64_t max_steps, int64_t checkpoint_every,
                     const std::string& dist) {
  const Assets& a = Assets::get();
  return "model: {path: " + a.model_dir + "}\n" + "data: {train_jsonl: [" + a.train_jsonl + "], num_workers: 1}\n" +
         "preprocess: {min_pixels: 4096, max_pixels: 4096}\n" +
         "train: {output_dir: " + output_dir + ", device: cpu, precision: fp32, seed: 3, num_threads: 1, "
         "log_every: 1, micro_batch_size: 1, grad_accum_steps: 1, max_steps: " + std::to_string(max_steps) + "}\n" +
         "optim: {lr: 1.0e-3, warmup_steps: 1}\n" +
         "checkpoint: {every: " + std::to_string(checkpoint_every) + ", keep_last: 0}\n" +
         "log: {progress: off}\n" + "dist: {" + dist + "}\n";
}

std::string write_config(const std::string& dir, const std::string& yaml) {
  fs::create_directories(dir);
  const std::string path = dir + ".yaml";
  std::ofstream(path) << yaml;
  return path;
}

// The highest step in rank 0's metrics.jsonl so far (0 when none).
int64_t logged_step(const std::string& dir) {
  int64_t step = 0;
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("loss")) step = std::max(step, j["step"].get<int64_t>());
  }
  return step;
}

std::string rank_log(const std::string& prefix, int r) { return dt::read_text(prefix + ".rank" + std::to_string(r) + ".log"); }

// The log's "error: ..." line (what the user sees last), or "".
std::string error_line(const std::string& log) {
  const size_t at = log.rfind("error: ");
  return at == std::string::npos ? "" : log.substr(at, log.find('\n', at) - at);
}

const std::regex kNamesStepAndCollective(
    R"(dist: step [0-9]+: (gradient all-reduce \(bucket [0-9]+ of [0-9]+\)|all-reduce of [0-9]+ (int64|float64) value\(s\)|broadcast from rank 0|barrier) \(collective #[0-9]+\) failed on rank [01] of 2)");

// ---------------------------------------------------------------------------------------------

TEST(DistFailure, KilledOrStalledRankMakesTheOtherExitNamingStepAndCollectiveWithinTheTimeout) {
  // (a) SIGKILL rank 1 mid-run: rank 0's next collective finds the connection closed.
  {
    constexpr int kTimeout = 20;
    const std::string dir = fresh_dir("dist_killed_rank");
    const std::string cfg = write_config(dir, yaml_for(dir, 10000, 0, "timeout_s: " + std::to_string(kTimeout)));
    auto pids = dt::spawn_ranks(2, {COORDEXP_TRAIN_BIN, "train", "--config", cfg}, dir);
    const bool running = dt::poll_until([&] { return logged_step(dir) >= 2; }, 120);
    if (!running) {
      for (pid_t p : pids) dt::kill_and_reap(p);
      FAIL() << "the run did not reach step 2\n" << dt::logs_of(dir, 2);
    }
    ::kill(pids[1], SIGKILL);
    const auto t0 = std::chrono::steady_clock::now();
    const int code = dt::wait_for(pids[0], kTimeout + 30);
    const double seconds = dt::seconds_since(t0);
    ::waitpid(pids[1], nullptr, 0);
    if (code == -1) dt::kill_and_reap(pids[0]);
    std::cout << "rank 1 SIGKILLed: rank 0 exited with code " << code << " after " << seconds << " s (dist.timeout_s "
              << kTimeout << ")" << std::endl;
    const std::string log0 = rank_log(dir, 0);
    std::cout << error_line(log0) << std::endl;
    EXPECT_EQ(code, 1) << log0;
    EXPECT_LT(seconds, kTimeout + 10.0);
    EXPECT_TRUE(std::regex_search(log0, kNamesStepAndCollective)) << log0;
    EXPECT_NE(log0.find("Another rank probably stopped or crashed"), std::string::npos) << log0;
  }
  // (b) SIGSTOP rank 0 (it also hosts the store): rank 1 waits out dist.timeout_s, then fails.
  {
    constexpr int kTimeout = 5;
    const std::string dir = fresh_dir("dist_stalled_rank");
    const std::string cfg = write_config(dir, yaml_for(dir, 10000, 0, "timeout_s: " + std::to_string(kTimeout)));
    auto pids = dt::spawn_ranks(2, {COORDEXP_TRAIN_BIN, "train", "--config", cfg}, dir);
    const bool running = dt::poll_until([&] { return logged_step(dir) >= 2; }, 120);
    if (!running) {
      for (pid_t p : pids) dt::kill_and_reap(p);
      FAIL() << "the run did not reach step 2\n" << dt::logs_of(dir, 2);
    }
    ::kill(pids[0], SIGSTOP);
    const auto t0 = std::chrono::steady_clock::now();
    const int code = dt::wait_for(pids[1], kTimeout + 30);
    const double seconds = dt::seconds_since(t0);
    dt::kill_and_reap(pids[0]);
    if (code == -1) dt::kill_and_reap(pids[1]);
    std::cout << "rank 0 SIGSTOPped: rank 1 exited with code " << code << " after " << seconds << " s (dist.timeout_s "
              << kTimeout << ")" << std::endl;
    const std::string log1 = rank_log(dir, 1);
    std::cout << error_line(log1) << std::endl;
    EXPECT_EQ(code, 1) << log1;
    EXPECT_GE(seconds, kTimeout - 1.0);  // it was the timeout, not a closed connection
    EXPECT_LT(seconds, kTimeout + 15.0);
    EXPECT_TRUE(std::regex_search(log1, kNamesStepAndCollective)) << log1;
    EXPECT_NE(log1.find("within dist.timeout_s = 5 s"), std::string::npos) << log1;
  }
}

// Rank 0 spends 12 s writing checkpoint-2 (test hook) while dist.timeout_s is 5: rank 1 waits at
// the checkpoint barrier under dist.save_timeout_s instead of failing. Then a save longer than
// save_timeout_s: rank 1 fails, naming the checkpoint barrier and the key to raise.
TEST(DistSave, CheckpointBarrierWaitsSaveTimeoutNotTheCollectiveTimeout) {
  {
    const std::string dir = fresh_dir("dist_slow_save");
    const std::string cfg = write_config(dir, yaml_for(dir, 3, 2, "timeout_s: 5, save_timeout_s: 120"));
    const auto t0 = std::chrono::steady_clock::now();
    const auto codes = dt::run_ranks(2, {COORDEXP_TRAIN_BIN, "train", "--config", cfg}, dir, 180,
                                     {std::string(train::kPauseSaveEnv) + "=2:12"});
    ASSERT_EQ(codes, (std::vector<int>{0, 0})) << dt::logs_of(dir, 2);
    EXPECT_GT(dt::seconds_since(t0), 12.0);
    EXPECT_NE(rank_log(dir, 0).find("test hook: checkpoint save paused at step 2"), std::string::npos);
    EXPECT_TRUE(fs::exists(fs::path(dir) / "checkpoint-2" / train::kCheckpointMarker));
    EXPECT_TRUE(fs::exists(fs::path(dir) / "checkpoint-3" / train::kCheckpointMarker));
  }
  {
    const std::string dir = fresh_dir("dist_stuck_save");
    const std::string cfg = write_config(dir, yaml_for(dir, 3, 2, "timeout_s: 60, save_timeout_s: 3"));
    auto pids = dt::spawn_ranks(2, {COORDEXP_TRAIN_BIN, "train", "--config", cfg}, dir,
                                {std::string(train::kPauseSaveEnv) + "=2:300"});
    const bool paused = dt::poll_until([&] { return rank_log(dir, 0).find("test hook") != std::string::npos; }, 120);
    const auto t0 = std::chrono::steady_clock::now();
    const int code = paused ? dt::wait_for(pids[1], 40) : -1;
    const double seconds = dt::seconds_since(t0);
    for (pid_t p : pids) dt::kill_and_reap(p);
    std::cout << "save stuck: rank 1 exited with code " << code << " " << seconds
              << " s after rank 0 paused (dist.save_timeout_s 3)" << std::endl;
    const std::string log1 = rank_log(dir, 1);
    std::cout << error_line(log1) << std::endl;
    ASSERT_TRUE(paused) << dt::logs_of(dir, 2);
    EXPECT_EQ(code, 1) << log1;
    EXPECT_LT(seconds, 3.0 + 15.0);
    EXPECT_NE(log1.find("dist: checkpoint save at step 2: checkpoint barrier"), std::string::npos) << log1;
    EXPECT_NE(log1.find("dist.save_timeout_s = 3 s"), std::string::npos) << log1;
  }
}

// ---------------------------------------------------------------------------------------------
// Uneven batches. The worker body runs inside the 2 ranks the test spawns (this binary re-run).

const char* const kUnevenEnv = "COORDEXP_DIST_UNEVEN";  // "<model dir>|<train jsonl>|<output dir>"

config::RunConfig uneven_config(const std::string& model_dir, const std::string& jsonl, const std::string& out) {
  config::RunConfig c;
  c.model.path = model_dir;
  c.data.train_jsonl = {jsonl};
  // Validated at step 4: the first 7 records (rank 1 skips the same record there too, and its 4th
  // batch is the padding repeat of record 0, left out of the validation sums).
  c.data.val_jsonl = {jsonl.substr(0, jsonl.size() - 6) + "_val7.jsonl"};
  c.data.num_workers = 0;
  c.data.shuffle = false;           // rank r takes records r, r + 2, ...
  c.data.on_invalid = "skip";
  c.preprocess.min_pixels = 1024;   // 64x64 -> 4 image tokens, 128x96 -> 12
  c.preprocess.max_pixels = 16384;
  c.train.output_dir = out;
  c.train.device = "cpu";
  c.train.precision = "fp32";
  c.train.seed = 3;
  c.train.num_threads = 1;
  c.train.log_every = 1;
  c.train.max_steps = 4;
  c.train.eval_every = 4;
  c.optim.lr = 1e-3;
  c.optim.warmup_steps = 1;
  c.optim.vision.freeze = true;  // a parameter group with no gradient on any rank
  c.checkpoint.every = 0;
  c.checkpoint.keep_last = 0;
  c.log.progress = "off";
  return c;
}

std::vector<std::string> split_env(const char* name) {
  const char* v = std::getenv(name);
  std::vector<std::string> parts;
  std::string s = v ? v : "";
  for (size_t b = 0;;) {
    const size_t e = s.find('|', b);
    parts.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return parts;
}

TEST(DistUnevenWorker, DISABLED_TrainsAndComparesParameters) {
  const auto parts = split_env(kUnevenEnv);
  ASSERT_EQ(parts.size(), 3u) << "run by DistUneven.ImageCountsEmptyBatchAndFrozenGroupKeepRanksIdentical";
  GroupOptions o;
  o.timeout_s = 60;
  auto pg = std::shared_ptr<ProcessGroup>(ProcessGroup::connect(launch_env_from_environment(), o, false));
  auto reducer = std::make_shared<train::ProcessGroupReducer>(pg);
  train::Trainer t(uneven_config(parts[0], parts[1], parts[2]), reducer);
  const auto result = t.run();
  EXPECT_EQ(result.steps_done, 4);

  // Identical on both ranks: the sum over ranks is exactly twice this rank's value.
  std::vector<std::string> keys;
  std::vector<torch::Tensor> mine, summed;
  for (const auto& [k, p] : t.model().named_parameters()) {
    keys.push_back(k);
    mine.push_back(p.detach().clone());
    summed.push_back(p.detach().clone());
  }
  pg->all_reduce_sum(summed);
  int64_t different = 0;
  for (size_t i = 0; i < keys.size(); ++i)
    if (!torch::equal(summed[i], mine[i] * 2)) {
      ++different;
      ADD_FAILURE() << keys[i] << " differs between the ranks";
    }
  // The frozen vision tower did not move; the rest did.
  const auto initial = model::Qwen3VL::load(parts[0]).named_parameters();
  int64_t vision = 0, moved = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const bool same = torch::equal(mine[i], initial.at(keys[i]));
    if (keys[i].rfind("model.visual.", 0) == 0 && keys[i].rfind("model.visual.merger.", 0) != 0 &&
        keys[i].rfind("model.visual.deepstack_merger_list.", 0) != 0) {
      ++vision;
      EXPECT_TRUE(same) << keys[i] << " is frozen but changed";
    } else if (!same) {
      ++moved;
    }
  }
  EXPECT_GT(vision, 0);
  EXPECT_GT(moved, 0);
  std::cout << "rank " << pg->rank() << ": " << keys.size() << " tensors, " << different << " differ across ranks, "
            << moved << " trained ones moved" << std::endl;
}

// 8 records, rank r takes r, r + 2, ... (no shuffle, micro-batch 1): rank 0 sees 1, 1, 2, 1 images
// with 4 or 12 image tokens, rank 1 sees 2 images, an empty batch (its record's image does not have
// the declared size: skipped at build time), 1 and 1 image.
TEST(DistUneven, ImageCountsEmptyBatchAndFrozenGroupKeepRanksIdentical) {
  const Assets& a = Assets::get();
  const fs::path root = fs::path(fresh_dir("dist_uneven"));
  auto make = [&](const std::string& name, int w, int h) {
    data::SyntheticDataOptions d;
    d.out_dir = (root / name).string();
    d.num_train = 4;
    d.num_val = 1;
    d.width = w;
    d.height = h;
    d.max_objects = 2;
    d.seed = 11;
    std::vector<nlohmann::json> recs;
    std::ifstream in(data::write_synthetic_dataset(d).train_jsonl);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      for (auto& img : j["images"]) img = (root / name / img.get<std::string>()).string();
      recs.push_back(j);
    }
    return recs;
  };
  const auto small = make("small", 64, 64), large = make("large", 128, 96);
  auto two_images = [](nlohmann::json j) {
    j["images"].push_back(j["images"][0]);
    return j;
  };
  auto wrong_size = small[3];
  wrong_size["width"] = 128;
  wrong_size["height"] = 96;
  const std::vector<nlohmann::json> records = {small[0], two_images(small[1]), large[0], wrong_size,
                                               two_images(small[2]), small[3], small[0], large[1]};
  const std::string jsonl = (root / "train.jsonl").string();
  {
    std::ofstream out(jsonl);
    for (const auto& r : records) out << r.dump() << "\n";
    std::ofstream val((root / "train_val7.jsonl").string());
    for (size_t i = 0; i + 1 < records.size(); ++i) val << records[i].dump() << "\n";
  }
  const std::string out_dir = (root / "run").string();
  const std::string log_prefix = (root / "worker").string();
  const auto codes = dt::run_ranks(2,
                                   {fs::read_symlink("/proc/self/exe").string(),
                                    "--gtest_filter=DistUnevenWorker.DISABLED_TrainsAndComparesParameters",
                                    "--gtest_also_run_disabled_tests"},
                                   log_prefix, 180, {std::string(kUnevenEnv) + "=" + a.model_dir + "|" + jsonl + "|" + out_dir});
  const std::string logs = dt::logs_of(log_prefix, 2);
  ASSERT_EQ(codes, (std::vector<int>{0, 0})) << logs;
  EXPECT_NE(logs.find("[  PASSED  ] 1 test"), std::string::npos) << logs;

  // Rank 1's skipped record, counted in rank 0's metrics (the loader counters are summed over ranks).
  const auto recs = metrics_with(out_dir, "loss");
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_FALSE(recs[0].contains("data_skipped_image_size_mismatch")) << recs[0].dump();
  EXPECT_EQ(recs[1].value("data_skipped_image_size_mismatch", 0), 1) << recs[1].dump();
  EXPECT_EQ(recs[3].value("data_skipped_image_size_mismatch", 0), 1) << recs[3].dump();
  EXPECT_EQ(recs[3]["num_samples"], 7);  // 8 records, 1 skipped
  const auto val = metrics_with(out_dir, "val_loss");
  ASSERT_EQ(val.size(), 1u);
  EXPECT_EQ(val[0].value("val_data_skipped_image_size_mismatch", 0), 1) << val[0].dump();  // rank 1's, summed
  // 7 records over 2 ranks: rank 1's 4th slot repeats record 0 (padding); it is not scored twice.
  EXPECT_EQ(val[0].value("val_data_padded_samples", 0), 1) << val[0].dump();
  EXPECT_EQ(val[0]["val_samples"], 6) << val[0].dump();  // 7 records, 1 skipped, the repeat left out

  // Its checkpoint records 2 ranks: resuming it in 1 process is refused, naming both sizes and the fix.
  const fs::path ckpt = fs::path(out_dir) / "checkpoint-4";
  ASSERT_TRUE(fs::exists(ckpt / train::kCheckpointMarker));
  auto c = uneven_config(a.model_dir, jsonl, out_dir);
  c.checkpoint.resume = "auto";
  try {
    train::Trainer t(c);
    ADD_FAILURE() << "resuming a 2-rank checkpoint in 1 process was accepted";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("written by a run with 2 rank(s), this run has 1"), std::string::npos) << m;
    EXPECT_NE(m.find("checkpoint.resume=off"), std::string::npos) << m;
  }
  // A checkpoint from before world sizes were recorded is accepted.
  const std::string state_path = (ckpt / "trainer_state" / "state.json").string();
  auto state = nlohmann::json::parse(util::read_file(state_path));
  ASSERT_EQ(state["world_size"], 2);
  state.erase("world_size");
  util::write_file_atomic(state_path, state.dump(2));
  train::Trainer resumed(c);
  EXPECT_EQ(resumed.step(), 4);
}

}  // namespace
}  // namespace coordexp::dist
