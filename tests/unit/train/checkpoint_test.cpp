// CheckpointManager (listing only complete checkpoints, keep-last pruning, replacing a checkpoint of
// the same step, a failing writer leaving nothing behind, removal of hidden leftovers), the
// progress-line formatting and the metrics.jsonl trim on resume.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "coordexp/train/checkpoint.h"
#include "coordexp/train/progress.h"
#include "coordexp/train/rng_state.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::train {
namespace {
namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("coordexp_ckpt_test_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void write_checkpoint_files(const std::string& dir, const std::string& payload) {
  fs::create_directories(fs::path(dir) / "trainer_state");
  util::write_file_atomic(dir + "/model.txt", payload);
  util::write_file_atomic(dir + "/" + kCheckpointMarker, "{}");
}

std::vector<int64_t> steps_of(const std::vector<CheckpointInfo>& v) {
  std::vector<int64_t> s;
  for (const auto& c : v) s.push_back(c.step);
  return s;
}

TEST(CheckpointManager, SavesAtomicallyListsCompleteOnesPrunesAndCleansUp) {
  TempDir tmp;
  CheckpointManager mgr(tmp.path.string(), 2);
  EXPECT_FALSE(mgr.latest().has_value());
  for (int64_t step : {10, 20, 30}) {
    const std::string p = mgr.save(step, [&](const std::string& dir) { write_checkpoint_files(dir, "s" + std::to_string(step)); });
    EXPECT_EQ(p, mgr.path_for(step));
  }
  EXPECT_EQ(steps_of(mgr.list()), (std::vector<int64_t>{20, 30}));  // keep_last = 2
  EXPECT_FALSE(fs::exists(mgr.path_for(10)));

  // Same step again replaces the old contents.
  mgr.save(30, [](const std::string& dir) { write_checkpoint_files(dir, "again"); });
  EXPECT_EQ(util::read_file(mgr.path_for(30) + "/model.txt"), "again");

  // A writer that throws leaves neither a checkpoint nor a temp directory.
  EXPECT_THROW(mgr.save(40,
                        [](const std::string& dir) {
                          util::write_file_atomic(dir + "/partial", "x");
                          throw DataError("disk full", dir, "free space");
                        }),
               DataError);
  EXPECT_EQ(steps_of(mgr.list()), (std::vector<int64_t>{20, 30}));

  // A directory without the marker (a manual copy, say) and a crashed save's hidden temp dir.
  fs::create_directories(tmp.path / "checkpoint-50");
  fs::create_directories(tmp.path / ".checkpoint-60.tmp.123.0" / "trainer_state");
  fs::create_directories(tmp.path / "checkpoint-notanumber");
  EXPECT_EQ(mgr.latest()->step, 30);
  EXPECT_EQ(mgr.remove_stale_temps(), 1);
  EXPECT_FALSE(fs::exists(tmp.path / ".checkpoint-60.tmp.123.0"));
  int hidden = 0;
  for (const auto& e : fs::directory_iterator(tmp.path)) hidden += e.path().filename().string()[0] == '.';
  EXPECT_EQ(hidden, 0);
}

// A checkpoint whose state.json names its run (run_id "" = no key, as before run ids).
void write_run_checkpoint(const std::string& dir, const std::string& run_id) {
  fs::create_directories(fs::path(dir) / "trainer_state");
  util::write_file_atomic(dir + "/" + kCheckpointMarker, run_id.empty() ? "{}" : "{\"run_id\": \"" + run_id + "\"}");
}

// Run A saved 1..6; B resumed A's checkpoint-2 (branch at 2) and saves 3, 4: pruning counts B's
// lineage only (A's 1, 2 and B's), never deletes A's abandoned 5 and 6, and latest_in follows B.
TEST(CheckpointManager, LatestAndPruningFollowTheRunLineage) {
  TempDir tmp;
  {
    CheckpointManager a(tmp.path.string(), 0);
    a.set_lineage({"A", {}});
    for (int64_t step = 1; step <= 6; ++step) a.save(step, [](const std::string& d) { write_run_checkpoint(d, "A"); });
  }
  CheckpointManager mgr(tmp.path.string(), 2);
  const RunLineage b = RunLineage{"A", {}}.branch(2, "B");
  EXPECT_EQ(b.ancestors, (std::vector<RunLineage::Ancestor>{{"A", 2}}));
  EXPECT_TRUE(b.contains("A", 2));
  EXPECT_FALSE(b.contains("A", 3));
  EXPECT_TRUE(b.contains("B", 3));
  EXPECT_EQ(mgr.latest_in(b)->step, 2);
  EXPECT_TRUE(mgr.run_has_later("A", 2));
  EXPECT_FALSE(mgr.run_has_later("A", 6));
  mgr.set_lineage(b);
  mgr.save(3, [](const std::string& d) { write_run_checkpoint(d, "B"); });
  mgr.save(4, [](const std::string& d) { write_run_checkpoint(d, "B"); });  // replaces A's checkpoint-4
  EXPECT_EQ(steps_of(mgr.list()), (std::vector<int64_t>{3, 4, 5, 6}));     // A's 1 and 2 pruned
  EXPECT_EQ(mgr.list()[1].run_id, "B");
  EXPECT_EQ(mgr.list()[2].run_id, "A");
  EXPECT_EQ(mgr.latest()->step, 6);     // highest step: A's abandoned one
  EXPECT_EQ(mgr.latest_in(b)->step, 4);  // the lineage's newest
  // The current lineage file round-trips; absent = nullopt; damaged = FormatError naming it.
  EXPECT_FALSE(mgr.read_current_lineage().has_value());
  mgr.write_current_lineage(b);
  EXPECT_EQ(*mgr.read_current_lineage(), b);
  util::write_file_atomic((tmp.path / kLineageFile).string(), "[1]");
  EXPECT_THROW(mgr.read_current_lineage(), FormatError);
  // Checkpoints without a run id (older files) list with run id "" and belong to a lineage that
  // names "" as an ancestor.
  write_run_checkpoint((tmp.path / "checkpoint-9").string(), "");
  EXPECT_EQ(mgr.list().back().run_id, "");
  const RunLineage legacy_branch = RunLineage{"", {}}.branch(9, "C");
  EXPECT_TRUE(legacy_branch.contains("", 9));
}

// Every generator of the run is saved and restored by name (on CPU: the default generator and a
// second one through the same functions the CUDA generators take); names on one side only are
// reported, not fatal.
TEST(GeneratorStates, SaveAndRestoreEveryNamedGenerator) {
  const NamedGenerators run = run_generators();
  ASSERT_FALSE(run.empty());
  EXPECT_EQ(run[0].first, "cpu");
  for (size_t i = 1; i < run.size(); ++i) EXPECT_EQ(run[i].first, "cuda:" + std::to_string(i - 1));
  NamedGenerators gens = {run[0], {"second", at::detail::createCPUGenerator(11)}};
  auto draw = [&] {
    return std::make_pair(torch::rand({4}, gens[0].second), torch::rand({4}, gens[1].second));
  };
  draw();
  const auto saved = generator_states(gens);
  ASSERT_EQ(saved.size(), 2u);
  const auto expected = draw();
  draw();
  std::map<std::string, torch::Tensor> by_name(saved.begin(), saved.end());
  by_name["cuda:7"] = saved[0].second;  // a device this run does not have
  const GeneratorRestore r = restore_generator_states(gens, by_name);
  EXPECT_TRUE(r.not_saved.empty());
  EXPECT_EQ(r.not_here, (std::vector<std::string>{"cuda:7"}));
  const auto again = draw();
  EXPECT_TRUE(torch::equal(again.first, expected.first));
  EXPECT_TRUE(torch::equal(again.second, expected.second));
  by_name.erase("second");
  EXPECT_EQ(restore_generator_states(gens, by_name).not_saved, (std::vector<std::string>{"second"}));
}

TEST(Progress, LineDurationAndModes) {
  ProgressSnapshot s;
  s.step = 12;
  s.total_steps = 100;
  s.loss = 2.34567;
  s.lr = 1e-4;
  s.tokens_per_s = 1234.4;
  s.samples_per_s = 3.214;
  s.eta_s = 245;
  EXPECT_EQ(format_progress_line(s),
            "step 12/100 | loss 2.3457 | lr 1.00e-04 | 1234 tok/s | 3.21 samples/s | ETA 4m05s");
  EXPECT_EQ(format_duration(3723), "1h02m03s");
  EXPECT_EQ(format_duration(7.4), "7s");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(resolve_progress_mode("plain"), ProgressMode::kPlain);
  EXPECT_THROW(resolve_progress_mode("fancy"), ConfigError);
}

TEST(MetricsWriter, FreshRunTruncatesAndResumeDropsRecordsPastTheCheckpoint) {
  TempDir tmp;
  const std::string path = (tmp.path / "metrics.jsonl").string();
  {
    MetricsWriter w(path, -1);
    for (int step : {1, 2, 3, 4}) w.write({{"step", step}, {"loss", 1.0 / step}});
    w.write({{"step", 4}, {"val_loss", 0.5}});
  }
  {
    MetricsWriter w(path, 2);  // resumed from checkpoint-2: records of steps 3 and 4 are gone
    w.write({{"step", 3}, {"loss", 0.3}});
  }
  std::ifstream in(path);
  std::vector<int> steps;
  std::string line;
  while (std::getline(in, line)) steps.push_back(nlohmann::json::parse(line)["step"].get<int>());
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3}));
  {
    MetricsWriter w(path, -1);
  }
  EXPECT_EQ(util::read_file(path), "");
}

}  // namespace
}  // namespace coordexp::train
