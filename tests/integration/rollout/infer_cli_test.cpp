// `coordexp-train infer` end to end on the trainer tests' tiny model (make-tiny + expand-vocab) and
// synthetic records plus broken ones (a missing image, a non-JSON line, a record without objects):
// one valid JSONL line per input record in input order, error lines for the broken ones, boxes
// inside the image and scores in (0, 1]; a resumed run after an interruption (lines removed, a
// half-written last line) predicts only the missing records and ends with the same lines; a 2-rank
// run (torchrun variables, a free MASTER_PORT) merges to the same lines as 1 rank; expectation
// readout runs; rollout.constrained gives complete CoordJSON; records with error lines make the exit
// status 3; bad arguments exit 2.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "coordexp/util/fs.h"
#include "integration/dist/spawn.h"
#include "integration/train/fixture.h"

namespace ct = coordexp::train::testing;
using json = nlohmann::json;

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// The input: the synthetic train + val records, with broken lines in between.
struct Input {
  std::string path;
  std::vector<std::string> keys;  // images[0] per record ("" for the non-JSON line)
  size_t num_records = 0;
};

const Input& input() {
  static const Input in = [] {
    Input x;
    const auto dir = ct::fs::path(ct::Assets::get().train_jsonl).parent_path();
    x.path = (dir / "infer_input.jsonl").string();
    std::vector<std::string> lines = read_lines(ct::Assets::get().train_jsonl);
    for (const auto& l : read_lines(ct::Assets::get().val_jsonl)) lines.push_back(l);
    // A record whose image does not exist, a line that is not JSON, and one without objects.
    json missing = json::parse(lines[0]);
    missing["images"] = {"images/does_not_exist.png"};
    lines.insert(lines.begin() + 2, missing.dump());
    lines.insert(lines.begin() + 5, "{this is not json");
    json no_objects = json::parse(lines[7]);
    no_objects.erase("objects");
    no_objects["images"] = {no_objects["images"][0]};
    lines[7] = no_objects.dump();
    std::ofstream o(x.path);
    for (const auto& l : lines) {
      o << l << "\n\n";  // blank lines are not records
      const json j = json::parse(l, nullptr, false);
      x.keys.push_back(j.is_discarded() ? "" : j["images"][0].get<std::string>());
    }
    x.num_records = lines.size();
    return x;
  }();
  return in;
}

std::string write_config(const std::string& name, const std::string& extra) {
  const auto path = ct::Assets::get().root / (name + ".yaml");
  std::ofstream(path) << "model:\n  path: " << ct::Assets::get().model_dir
                      << "\n  device: cpu\npreprocess:\n  min_pixels: 4096\n  max_pixels: 4096\n"
                      << "rollout:\n  max_new_tokens: 16\n  batch_size: 3\n" << extra;
  return path.string();
}

const std::string kEnv = "OMP_NUM_THREADS=1";

ct::CommandResult infer(const std::string& cfg, const std::string& out, const std::string& extra = "") {
  return ct::run_binary("infer --config " + cfg + " --data " + input().path + " --out " + out + extra, kEnv);
}

// Checks every line of a finished output and returns them parsed.
std::vector<json> check_output(const std::string& out) {
  const auto lines = read_lines(out);
  EXPECT_EQ(lines.size(), input().num_records);
  std::vector<json> parsed;
  for (size_t i = 0; i < lines.size(); ++i) {
    const json j = json::parse(lines[i]);
    parsed.push_back(j);
    if (input().keys[i].empty()) {
      EXPECT_TRUE(j.contains("error")) << lines[i];
      EXPECT_EQ(j["line"], 11) << "the non-JSON input line (blank lines counted)";
      continue;
    }
    EXPECT_EQ(j["images"][0], input().keys[i]) << "input order, line " << i;
    if (input().keys[i] == "images/does_not_exist.png") {
      EXPECT_TRUE(j.contains("error")) << lines[i];
      EXPECT_NE(j.value("error", std::string()).find("does_not_exist"), std::string::npos) << lines[i];
      continue;
    }
    EXPECT_FALSE(j.contains("error")) << lines[i];
    for (const char* key : {"images", "width", "height", "text", "parse_status", "drop_reasons", "finish_reason",
                            "num_generated_tokens", "objects"})
      EXPECT_TRUE(j.contains(key)) << key << " missing: " << lines[i];
    EXPECT_EQ(j["width"], 64);
    EXPECT_EQ(j["height"], 64);
    EXPECT_GE(j["num_generated_tokens"].get<int>(), 1);
    EXPECT_LE(j["num_generated_tokens"].get<int>(), 16);
    EXPECT_TRUE(j["finish_reason"] == "eos" || j["finish_reason"] == "max_new_tokens");
    for (const auto& o : j["objects"]) {
      for (int k = 0; k < 4; ++k) {
        EXPECT_GE(o["bbox_2d"][k].get<double>(), 0.0);
        EXPECT_LE(o["bbox_2d"][k].get<double>(), 64.0);
      }
      EXPECT_GT(o["score"].get<double>(), 0.0);
      EXPECT_LE(o["score"].get<double>(), 1.0);
    }
  }
  return parsed;
}

// Same predictions: everything equal except scores (float rounding of other batch compositions).
void expect_same_predictions(const std::vector<json>& a, const std::vector<json>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    json x = a[i], y = b[i];
    ASSERT_EQ(x.contains("objects"), y.contains("objects")) << i;
    if (x.contains("objects")) {
      ASSERT_EQ(x["objects"].size(), y["objects"].size()) << i;
      for (size_t k = 0; k < x["objects"].size(); ++k) {
        EXPECT_NEAR(x["objects"][k]["score"].get<double>(), y["objects"][k]["score"].get<double>(), 1e-4);
        x["objects"][k].erase("score");
        y["objects"][k].erase("score");
      }
    }
    EXPECT_EQ(x, y) << "line " << i;
  }
}

// Runs the binary with `args` as ranks 0..world-1 (torchrun's variables); exit codes, 200 = timeout.
std::vector<int> run_ranks(int world, const std::vector<std::string>& args, const std::string& log_prefix,
                           int timeout_s) {
  std::vector<std::string> argv{COORDEXP_TRAIN_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return coordexp::dist::testing::run_ranks(world, argv, log_prefix, timeout_s, {"OMP_NUM_THREADS=1"});
}

}  // namespace

TEST(InferCli, PredictsResumesAndShards) {
  const std::string dir = ct::fresh_dir("infer");
  ct::fs::create_directories(dir);
  const std::string cfg = write_config("infer", "");
  const std::string out = dir + "/pred.jsonl";
  const auto r = infer(cfg, out);
  ASSERT_EQ(r.code, 3) << "2 records got error lines: exit 3\n" << r.output;
  const auto full = check_output(out);
  EXPECT_NE(r.output.find("2 error(s)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("images/s"), std::string::npos) << r.output;

  // Interrupted run: the last 4 lines gone, a half-written line at the end.
  {
    const auto lines = read_lines(out);
    std::ofstream o(out, std::ios::trunc);
    for (size_t i = 0; i + 4 < lines.size(); ++i) o << lines[i] << "\n";
    o << lines[lines.size() - 4].substr(0, 20);
  }
  const auto resumed = infer(cfg, out);
  ASSERT_EQ(resumed.code, 0) << "the 4 re-predicted records are fine\n" << resumed.output;
  EXPECT_NE(resumed.output.find(std::to_string(input().num_records - 4) + " already in"), std::string::npos)
      << resumed.output;
  EXPECT_NE(resumed.output.find("4 to predict"), std::string::npos) << resumed.output;
  expect_same_predictions(check_output(out), full);
  // Nothing left to do: the file stays as it is.
  const std::string before = coordexp::util::read_file(out);
  ASSERT_EQ(infer(cfg, out).code, 0);
  EXPECT_EQ(coordexp::util::read_file(out), before);

  // Two ranks: each takes every other record, rank 0 merges in input order.
  const std::string sharded = dir + "/pred2.jsonl";
  const auto codes = run_ranks(2, {"infer", "--config", cfg, "--data", input().path, "--out", sharded}, dir + "/infer2", 300);
  std::string logs;
  for (int k = 0; k < 2; ++k) logs += coordexp::util::read_file(dir + "/infer2.rank" + std::to_string(k) + ".log");
  ASSERT_EQ(codes, (std::vector<int>{3, 3})) << "each rank holds one broken record\n" << logs;
  expect_same_predictions(check_output(sharded), full);
  EXPECT_FALSE(ct::fs::exists(sharded + ".rank0"));
  EXPECT_FALSE(ct::fs::exists(sharded + ".rank1"));
}

TEST(InferCli, ExpectationReadoutAndBadArguments) {
  const std::string dir = ct::fresh_dir("infer_exp");
  ct::fs::create_directories(dir);
  const std::string cfg = write_config("infer_exp", "infer:\n  coord_readout: expectation\n");
  const auto r = infer(cfg, dir + "/pred.jsonl");
  ASSERT_EQ(r.code, 3) << r.output;
  check_output(dir + "/pred.jsonl");

  const std::string base = write_config("infer_bad", "");
  for (const std::string& extra : {std::string(" --set infer.coord_readout=argmax"),
                                   std::string(" --set rollout.num_beams=0")}) {
    const auto bad = infer(base, dir + "/bad.jsonl", extra);
    EXPECT_EQ(bad.code, 2) << extra << "\n" << bad.output;
  }
  // Constrained decoding: every prediction the random model writes is complete CoordJSON.
  const auto constrained = infer(base, dir + "/constrained.jsonl", " --set rollout.constrained=true");
  ASSERT_EQ(constrained.code, 3) << constrained.output;
  std::ifstream cin(dir + "/constrained.jsonl");
  std::string line;
  int64_t n = 0;
  while (std::getline(cin, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("error")) continue;
    ++n;
    if (j["finish_reason"] == "eos") EXPECT_EQ(j["parse_status"], "complete") << line;
  }
  EXPECT_GT(n, 0);
  EXPECT_EQ(ct::run_binary("infer --config " + base + " --out " + dir + "/x.jsonl").code, 2) << "no --data";
}
