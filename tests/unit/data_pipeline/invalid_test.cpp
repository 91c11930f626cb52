// data.on_invalid: every kind of bad data (invalid record, missing / corrupt image, size mismatch,
// geometry the prompt does not announce, smart_resize refusal, too long) is either a DataError naming
// file:line and the reason (error) or dropped and counted by reason (skip), at load time or while
// the loader builds batches. Nothing disappears without a count.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <tuple>

#include "common/cli_capture.h"
#include "coordexp/data/loader.h"
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

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "(no DataError)";
}

std::vector<nlohmann::json> many_objects(int n) {
  std::vector<nlohmann::json> objects;
  for (int k = 0; k < n; ++k) objects.push_back(bbox("object number " + std::to_string(k), k, k, 60, 46));
  return objects;
}

struct BadData {
  TempDir dir;
  std::string good, bad_json, missing, corrupt, mismatch, poly, too_long, unusable;
  BadData() {
    write_png(dir.file("good.png"), 64, 48, 1);
    write_png(dir.file("big.png"), 96, 64, 2);
    write_png(dir.file("thin.png"), 402, 2, 3);  // aspect ratio 201 > 200: smart_resize refuses it
    std::ofstream(dir.file("corrupt.png"), std::ios::binary) << "\x89PNG\r\n\x1a\n this is not an image";
    good = record_line({"good.png"}, 64, 48, {bbox("cat", 4, 2, 20, 30)});
    bad_json = "{\"images\": [\"good.png\"], ";
    missing = record_line({"nope.png"}, 64, 48, {bbox("cat", 4, 2, 20, 30)});
    corrupt = record_line({"corrupt.png"}, 64, 48, {bbox("cat", 4, 2, 20, 30)});
    mismatch = record_line({"big.png"}, 64, 48, {bbox("cat", 4, 2, 20, 30)});
    poly = record_line({"good.png"}, 64, 48, {{{"desc", "roof"}, {"poly", {1, 1, 30, 1, 15, 20}}}});
    too_long = record_line({"good.png"}, 64, 48, many_objects(40));
    unusable = record_line({"thin.png"}, 402, 2, {});
  }
  // good first, the bad line second: errors must name line 2.
  std::string file_with(const std::string& name, const std::string& bad) const {
    write_lines(dir.file(name), {good, bad});
    return dir.file(name);
  }
};

config::DataOptions options(const std::string& on_invalid) {
  config::DataOptions d = testing::test_data_options();
  d.on_invalid = on_invalid;
  d.max_length = 700;  // a good record is ~260 tokens, 40 objects are > 1000
  return d;
}

TEST(DataInvalid, ErrorPolicyNamesFileLineAndReason) {
  const BadData b;
  const config::DataOptions d = options("error");
  const struct {
    const char* name;
    std::string line;
    const char* reason;
  } load_cases[] = {
      {"bad_json.jsonl", b.bad_json, "bad_json"},
      {"missing.jsonl", b.missing, "missing_image"},
      {"poly.jsonl", b.poly, "geometry_not_in_prompt"},
      {"long.jsonl", b.too_long, "too_long"},
      {"thin.jsonl", b.unusable, "image_unusable"},
  };
  for (const auto& c : load_cases) {
    const std::string file = b.file_with(c.name, c.line);
    const std::string msg = error_of([&] { make_dataset({file}, d); });
    EXPECT_NE(msg.find(std::string(c.name) + ":2"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.reason), std::string::npos) << msg;
    EXPECT_NE(msg.find("hint"), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([&] { make_dataset({b.file_with("long2.jsonl", b.too_long)}, d); }).find("data.max_length=700"),
            std::string::npos);

  // Problems found while building samples: get() throws; the loader throws from next() and stays.
  const std::vector<std::tuple<std::string, std::string, std::string>> build_cases = {
      {"corrupt.jsonl", b.corrupt, "image_unreadable"}, {"mismatch.jsonl", b.mismatch, "image_size_mismatch"}};
  for (const auto& [name, line, reason] : build_cases) {
    SCOPED_TRACE(name);
    const auto ds = make_dataset({b.file_with(name, line)}, d);
    ASSERT_EQ(ds->size(), 2);
    EXPECT_NO_THROW(ds->get(0, 0));
    const std::string msg = error_of([&] { ds->get(1, 0); });
    EXPECT_NE(msg.find(name + ":2"), std::string::npos) << msg;
    EXPECT_NE(msg.find(reason), std::string::npos) << msg;
    LoaderOptions o = LoaderOptions::from_config(d, 1, 0);
    o.shuffle = false;
    DataLoader loader(ds, o);
    EXPECT_EQ(loader.next().size(), 1);
    EXPECT_NE(error_of([&] { loader.next(); }).find(name + ":2"), std::string::npos);
    EXPECT_NE(error_of([&] { loader.next(); }).find(reason), std::string::npos);  // position kept
    EXPECT_EQ(loader.state().batch, 1);
  }
  EXPECT_NE(error_of([&] { make_dataset({b.file_with("mm.jsonl", b.mismatch)}, d)->get(1, 0); }).find("96x64"),
            std::string::npos);
}

TEST(DataInvalid, SkipPolicyCountsEveryReason) {
  const BadData b;
  const config::DataOptions d = options("skip");
  write_lines(b.dir.file("all.jsonl"),
              {b.good, b.bad_json, b.missing, b.corrupt, b.mismatch, b.poly, b.too_long, b.unusable, b.good});
  const auto ds = make_dataset({b.dir.file("all.jsonl")}, d);
  ASSERT_EQ(ds->size(), 4);  // good, corrupt, mismatch, good: image contents are checked when built
  const LoadReport& report = ds->load_report();
  EXPECT_EQ(report.num_lines, 9);
  EXPECT_EQ(report.invalid, (ReasonCounts{{"bad_json", 1},
                                          {"missing_image", 1},
                                          {"geometry_not_in_prompt", 1},
                                          {"too_long", 1},
                                          {"image_unusable", 1}}));
  EXPECT_EQ(report.first_errors.size(), 5u);

  LoaderOptions o = LoaderOptions::from_config(d, 4, 0);
  o.shuffle = false;
  DataLoader loader(ds, o);
  ASSERT_EQ(loader.batches_in_epoch(0), 1);
  for (int epoch = 0; epoch < 2; ++epoch) {
    const Batch batch = loader.next();
    EXPECT_EQ(batch.size(), 2);
    EXPECT_EQ(batch.input_ids.size(0), 2);
    EXPECT_EQ(batch.skipped, (ReasonCounts{{"image_unreadable", 1}, {"image_size_mismatch", 1}}));
  }
  const auto counters = loader.counters();
  EXPECT_EQ(counters.at("data_skipped_image_unreadable"), 2);
  EXPECT_EQ(counters.at("data_skipped_image_size_mismatch"), 2);
  EXPECT_EQ(counters.at("data_invalid_bad_json"), 1);
  EXPECT_EQ(counters.at("data_invalid_too_long"), 1);
  // The counts travel with the state, so a resumed run keeps counting.
  const LoaderState state = loader.state();
  EXPECT_EQ(state.skipped.at("image_unreadable"), 2);
  DataLoader resumed(ds, o, LoaderState::from_json(state.to_json()));
  resumed.next();
  EXPECT_EQ(resumed.counters().at("data_skipped_image_size_mismatch"), 3);

  // A batch whose every sample fails is empty, not missing: the batch count per epoch holds.
  write_lines(b.dir.file("bad_only.jsonl"), {b.corrupt, b.good});
  LoaderOptions one = LoaderOptions::from_config(d, 1, 0);
  one.shuffle = false;
  DataLoader loader2(make_dataset({b.dir.file("bad_only.jsonl")}, d), one);
  const Batch empty = loader2.next();
  EXPECT_EQ(empty.size(), 0);
  EXPECT_EQ(empty.skipped.at("image_unreadable"), 1);
  EXPECT_EQ(loader2.next().size(), 1);
}

// check-data with a config runs the pipeline's own checks after the contract's, on the files the
// config names, with the model's tokenizer and image preprocessor.
TEST(CheckDataCommand, ConfigAddsThePipelineChecks) {
  const BadData b;
  const fs::path model = b.dir.path() / "model";
  fs::create_directories(model);
  fs::copy_file(fs::path(testing::qwen_tokenizer_dir()) / "tokenizer.json", model / "tokenizer.json");
  std::ofstream(model / "preprocessor_config.json")
      << R"({"size": {"longest_edge": 16384, "shortest_edge": 1024}, "patch_size": 16, "merge_size": 2,
            "temporal_patch_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})";
  write_lines(b.dir.file("all.jsonl"), {b.good, b.poly, b.too_long, b.unusable, b.corrupt, b.mismatch, b.good});
  write_lines(b.dir.file("clean.jsonl"), {b.good, b.good});
  const std::string cfg = b.dir.file("run.yaml");
  std::ofstream(cfg) << "model:\n  path: " << model.string() << "\ndata:\n  train_jsonl: [" << b.dir.file("all.jsonl")
                     << "]\n  prompt_user: 'Find the objects. {format}'\n";

  // Files from data.train_jsonl; --set reaches the pipeline (max_length 700 makes 40 objects too long).
  auto r = coordexp::testing::run_cli_captured({"check-data", "--config", cfg, "--set", "data.max_length=700"});
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("invalid records: 0"), std::string::npos) << r.out;  // the contract is satisfied
  EXPECT_NE(r.out.find("usable samples: 4\n"), std::string::npos) << r.out;
  for (const char* reason : {"too_long: 1", "image_unusable: 1", "geometry_not_in_prompt: 1", ":3: ", "[reason too_long]"})
    EXPECT_NE(r.out.find(reason), std::string::npos) << reason << "\n" << r.out;
  EXPECT_NE(r.out.find("check-data: INVALID"), std::string::npos) << r.out;

  // --decode-images builds every sample: the corrupt and mis-sized images are found too.
  r = coordexp::testing::run_cli_captured(
      {"check-data", "--config", cfg, "--set", "data.max_length=700", "--decode-images"});
  EXPECT_EQ(r.rc, 1);
  for (const char* reason : {"usable samples: 2\n", "image_unreadable: 1", "image_size_mismatch: 1"})
    EXPECT_NE(r.out.find(reason), std::string::npos) << reason << "\n" << r.out;

  // Explicit files override the config's; a clean file passes every check.
  r = coordexp::testing::run_cli_captured({"check-data", b.dir.file("clean.jsonl"), "--config", cfg, "--decode-images"});
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("usable samples: 2\n"), std::string::npos) << r.out;

  // The config goes through the real loader: a typo is a config error with its suggestion.
  r = coordexp::testing::run_cli_captured({"check-data", "--config", cfg, "--set", "data.max_lenght=700"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE((r.out + r.err).find("max_length"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(coordexp::testing::run_cli_captured({"check-data", b.dir.file("clean.jsonl"), "--set", "data.max_length=7"}).rc, 2);
}

}  // namespace
}  // namespace coordexp::data
