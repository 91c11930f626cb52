// TrainerState JSON round trip and its errors, the resume settings diff, and the synthetic shapes
// dataset: valid JSONL whose boxes equal the drawn pixels' extents exactly, deterministic per seed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "coordexp/data/jsonl.h"
#include "coordexp/data/synthetic.h"
#include "coordexp/train/trainer_state.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::train {
namespace {
namespace fs = std::filesystem;

TEST(TrainerState, RoundTripsAndRejectsForeignOrDamagedFiles) {
  TrainerState s;
  s.step = 12;
  s.num_samples = 96;
  s.num_tokens = 12345;
  s.num_nonfinite_skipped = 2;
  s.consecutive_nonfinite = 1;
  s.loader_state_json = R"({"epoch":1,"batch":4,"skipped":{"too_long":2}})";
  s.config = {{"optim.lr", "0.001"}, {"train.seed", "3"}};
  s.world_size = 4;
  const TrainerState r = TrainerState::from_json(s.to_json(), "state.json");
  EXPECT_EQ(r.step, 12);
  EXPECT_EQ(r.world_size, 4);
  EXPECT_EQ(r.num_samples, 96);
  EXPECT_EQ(r.num_tokens, 12345);
  EXPECT_EQ(r.num_nonfinite_skipped, 2);
  EXPECT_EQ(r.consecutive_nonfinite, 1);
  EXPECT_EQ(nlohmann::json::parse(r.loader_state_json), nlohmann::json::parse(s.loader_state_json));
  EXPECT_EQ(r.config, s.config);
  EXPECT_EQ(r.lineage, s.lineage);
  {
    TrainerState l = s;
    l.lineage = RunLineage{"A", {}}.branch(7, "B");
    EXPECT_EQ(TrainerState::from_json(l.to_json(), "x").lineage, l.lineage);
    EXPECT_EQ(RunLineage::from_json(l.lineage.to_json(), "x"), l.lineage);
    auto old = nlohmann::json::parse(l.to_json());
    old.erase("run_id");  // written before run ids: the legacy lineage ""
    old.erase("run_ancestors");
    EXPECT_EQ(TrainerState::from_json(old.dump(), "x").lineage, RunLineage{});
  }

  EXPECT_THROW(TrainerState::from_json("{", "x"), FormatError);
  EXPECT_THROW(TrainerState::from_json(R"({"format": "other", "version": 1})", "x"), FormatError);
  auto j = nlohmann::json::parse(s.to_json());
  j.erase("world_size");  // written before world sizes were recorded: 0 = unknown, accepted
  EXPECT_EQ(TrainerState::from_json(j.dump(), "x").world_size, 0);
  j.erase("step");
  try {
    TrainerState::from_json(j.dump(), "ckpt/trainer_state/state.json");
    ADD_FAILURE() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt/trainer_state/state.json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("step"), std::string::npos);
  }
}

TEST(TrainerState, DiffListsChangedAddedAndRemovedKeysExceptIgnored) {
  const auto d = diff_settings({{"a", "1"}, {"b", "2"}, {"c", "3"}, {"r", "off"}},
                               {{"a", "1"}, {"b", "5"}, {"d", "4"}, {"r", "auto"}}, {"r"});
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].key, "b");
  EXPECT_EQ(d[0].before, "2");
  EXPECT_EQ(d[0].after, "5");
  EXPECT_EQ(d[1].key, "c");
  EXPECT_EQ(d[1].after, "");
  EXPECT_EQ(d[2].key, "d");
  EXPECT_EQ(d[2].before, "");
}

TEST(SyntheticData, BoxesAreTheExactPixelExtentsAndRecordsAreValid) {
  const fs::path dir = fs::temp_directory_path() / ("coordexp_synth_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  data::SyntheticDataOptions o;
  o.out_dir = dir.string();
  o.num_train = 6;
  o.num_val = 2;
  o.width = 80;
  o.height = 48;
  o.max_objects = 3;
  o.seed = 11;
  const auto r = data::write_synthetic_dataset(o);
  const std::string first_bytes = util::read_file(r.train_jsonl);

  config::DataOptions dopt;
  config::ProtocolOptions popt;
  const auto file = data::read_jsonl(r.train_jsonl, data::JsonlOptions::from_config(dopt, popt));
  ASSERT_EQ(file.records.size(), 6u);
  int64_t objects = 0;
  std::ifstream in(r.train_jsonl);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const cv::Mat img = cv::imread((dir / j["images"][0].get<std::string>()).string());
    ASSERT_EQ(img.cols, 80);
    ASSERT_EQ(img.rows, 48);
    for (const auto& obj : j["objects"]) {
      ++objects;
      const auto b = obj["bbox_2d"].get<std::vector<int>>();
      // Pixels inside the box that differ from the background: the box is their tight extent.
      int x_lo = 1 << 30, y_lo = 1 << 30, x_hi = -1, y_hi = -1;
      for (int y = b[1]; y < b[3]; ++y)
        for (int x = b[0]; x < b[2]; ++x) {
          const auto p = img.at<cv::Vec3b>(y, x);
          if (p != cv::Vec3b(235, 235, 235)) {
            x_lo = std::min(x_lo, x), y_lo = std::min(y_lo, y);
            x_hi = std::max(x_hi, x), y_hi = std::max(y_hi, y);
          }
        }
      EXPECT_EQ((std::vector<int>{x_lo, y_lo, x_hi + 1, y_hi + 1}), b) << obj.dump();
      const std::string desc = obj["desc"];
      EXPECT_TRUE(desc.find("circle") != std::string::npos || desc.find("rectangle") != std::string::npos);
    }
  }
  EXPECT_GE(objects, 6);
  EXPECT_LE(objects, r.num_objects);

  // Same seed, same bytes; another seed, other data.
  data::write_synthetic_dataset(o);
  EXPECT_EQ(util::read_file(r.train_jsonl), first_bytes);
  o.seed = 12;
  data::write_synthetic_dataset(o);
  EXPECT_NE(util::read_file(r.train_jsonl), first_bytes);
  o.width = 8;
  EXPECT_THROW(data::write_synthetic_dataset(o), ConfigError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace coordexp::train
