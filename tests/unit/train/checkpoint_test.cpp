// CheckpointManager (listing only complete checkpoints, keep-last pruning, replacing a checkpoint of
// the same step, a failing writer leaving nothing behind, removal of hidden leftovers), the
// progress-line formatting and the metrics.jsonl trim on resume.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "coordexp/train/checkpoint.h"
#include "coordexp/train/progress.h"
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
