// Data that changes while a run is using it (issue 15): an image removed, overwritten with garbage or
// truncated after the dataset was loaded is a counted skip (data.on_invalid = skip) or a DataError
// naming file:line and the image (error), and a JSONL file removed or rewritten after loading does
// not change the run (the dataset keeps the records it validated; what a resumed run sees is its own
// load). Loaders build on the calling thread (num_workers 0) so "mid-run" is an exact point.
#include <gtest/gtest.h>

#include <fstream>

#include "coordexp/data/loader.h"
#include "coordexp/util/fs.h"
#include "fixture.h"

namespace coordexp::data {
namespace {

using testing::bbox;
using testing::make_dataset;
using testing::record_line;
using testing::TempDir;
using testing::write_lines;
using testing::write_png;
namespace fs = std::filesystem;

// Four good records r0..r3 over their own images i0..i3.png, in file order.
struct FourRecords {
  TempDir dir;
  std::string jsonl = dir.file("data.jsonl");
  FourRecords() {
    std::vector<std::string> lines;
    for (int i = 0; i < 4; ++i) {
      write_png(dir.file("i" + std::to_string(i) + ".png"), 64, 48, i);
      lines.push_back(record_line({"i" + std::to_string(i) + ".png"}, 64, 48, {bbox("cat", 4 + i, 2, 20, 30)}));
    }
    write_lines(jsonl, lines);
  }
  std::string image(int i) const { return dir.file("i" + std::to_string(i) + ".png"); }
};

config::DataOptions policy(const std::string& on_invalid) {
  config::DataOptions d = testing::test_data_options();
  d.on_invalid = on_invalid;
  d.num_workers = 0;
  return d;
}

LoaderOptions in_order(const config::DataOptions& d) {
  LoaderOptions o = LoaderOptions::from_config(d, /*batch_size=*/1, /*seed=*/0);
  o.shuffle = false;
  return o;
}

TEST(DataUnderLoad, ImagesBrokenMidRunAreCountedSkipsAndComeBackWhenRepaired) {
  const FourRecords f;
  const auto d = policy("skip");
  const auto ds = make_dataset({f.jsonl}, d);
  DataLoader loader(ds, in_order(d));
  ASSERT_EQ(loader.next().size(), 1);  // r0 built from a good image
  fs::remove(f.image(1));                                                         // disappears
  std::ofstream(f.image(2), std::ios::binary | std::ios::trunc) << "not an image";  // unreadable
  {
    const std::string good = util::read_file(f.image(3));                          // truncated
    std::ofstream(f.image(3), std::ios::binary | std::ios::trunc) << good.substr(0, good.size() / 3);
  }
  for (int i = 1; i < 4; ++i) {
    const Batch b = loader.next();
    EXPECT_EQ(b.size(), 0) << "record " << i;
    EXPECT_EQ(b.skipped, (ReasonCounts{{kReasonImageUnreadable, 1}})) << "record " << i;
  }
  EXPECT_EQ(loader.counters().at("data_skipped_image_unreadable"), 3);
  EXPECT_EQ(loader.state().skipped, (ReasonCounts{{kReasonImageUnreadable, 3}}));
  // Epoch 1 after r1 comes back: r0 and r1 build, r2 and r3 are skipped again and counted again.
  write_png(f.image(1), 64, 48, 1);
  EXPECT_EQ(loader.next().size(), 1);
  EXPECT_EQ(loader.next().size(), 1);
  EXPECT_EQ(loader.next().size(), 0);
  EXPECT_EQ(loader.next().size(), 0);
  EXPECT_EQ(loader.counters().at("data_skipped_image_unreadable"), 5);
}

TEST(DataUnderLoad, ImageBrokenMidRunWithErrorPolicyNamesTheRecordAndTheImage) {
  const FourRecords f;
  const auto d = policy("error");
  DataLoader loader(make_dataset({f.jsonl}, d), in_order(d));
  ASSERT_EQ(loader.next().size(), 1);
  fs::remove(f.image(1));
  try {
    loader.next();
    FAIL() << "a missing image was accepted";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("data.jsonl:2"), std::string::npos) << what;
    EXPECT_NE(what.find("i1.png"), std::string::npos) << what;
    EXPECT_NE(what.find(kReasonImageUnreadable), std::string::npos) << what;
  }
  // The position stays at the failed batch: restoring the file lets the same loader go on.
  write_png(f.image(1), 64, 48, 1);
  const Batch b = loader.next();
  ASSERT_EQ(b.size(), 1);
  EXPECT_EQ(b.samples[0].source, f.jsonl + ":2");
}

TEST(DataUnderLoad, JsonlRemovedOrRewrittenMidRunLeavesTheRunOnTheRecordsItLoaded) {
  const FourRecords f;
  const auto d = policy("skip");
  const auto ds = make_dataset({f.jsonl}, d);
  DataLoader loader(ds, in_order(d));
  std::vector<std::vector<tokenizer::TokenId>> ids;
  ids.push_back(loader.next().samples.at(0).input_ids);
  fs::remove(f.jsonl);
  ids.push_back(loader.next().samples.at(0).input_ids);
  // Rewritten with other content (a record with three objects, then garbage): still the old records.
  write_lines(f.jsonl, {record_line({"i0.png"}, 64, 48, {bbox("dog", 1, 1, 9, 9), bbox("dog", 2, 2, 9, 9),
                                                         bbox("dog", 3, 3, 9, 9)}),
                        "{not json"});
  ids.push_back(loader.next().samples.at(0).input_ids);
  ids.push_back(loader.next().samples.at(0).input_ids);
  EXPECT_EQ(loader.state().skipped, ReasonCounts{});

  // The reference: the same records read from an untouched copy of the original file.
  const FourRecords g;
  const auto ref = make_dataset({g.jsonl}, d);
  DataLoader ref_loader(ref, in_order(d));
  for (size_t i = 0; i < ids.size(); ++i) {
    const Batch b = ref_loader.next();
    EXPECT_EQ(b.samples.at(0).input_ids, ids[i]) << "record " << i;
  }
  // A new load (what a resumed run does) sees the new file and counts its bad line.
  const auto reloaded = make_dataset({f.jsonl}, d);
  EXPECT_EQ(reloaded->size(), 1);
  EXPECT_EQ(reloaded->load_report().invalid, (ReasonCounts{{"bad_json", 1}}));
}

}  // namespace
}  // namespace coordexp::data
