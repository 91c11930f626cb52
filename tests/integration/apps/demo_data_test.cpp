// make-demo-data: same seed -> same bytes (different seed -> different images), boxes inside the
// image and tight around the drawn shape (the named colour touches every inside edge of the box and,
// where the colour is unique in the image, nowhere on the ring just outside), descs from the
// colour x shape vocabulary, varied counts and some overlap, and check-data accepts the output.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <unistd.h>

#include "common/cli_capture.h"
#include "coordexp/data/demo_shapes.h"

namespace coordexp {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("coordexp_demo_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<nlohmann::json> records(const fs::path& jsonl) {
  std::vector<nlohmann::json> out;
  std::istringstream in(slurp(jsonl));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

testing::CliResult make(const fs::path& dir, int seed, int train, int val) {
  return testing::run_cli_captured({"make-demo-data", "--out", dir.string(), "--train", std::to_string(train), "--val",
                                    std::to_string(val), "--seed", std::to_string(seed)});
}

// Object colour: within the jitter + noise band of the nominal colour (the grey background and
// the other colours are far outside it).
bool is_colour(const cv::Vec3b& px, const std::array<int, 3>& bgr) {
  for (int c = 0; c < 3; ++c)
    if (std::abs(int(px[c]) - bgr[static_cast<size_t>(c)]) > 26) return false;
  return true;
}

const std::array<int, 3>& colour_of(const std::string& desc) {
  for (const auto& c : data::demo_colours())
    if (desc.rfind(std::string(c.name) + " ", 0) == 0) return c.bgr;
  ADD_FAILURE() << "desc " << desc << " names no demo colour";
  return data::demo_colours()[0].bgr;
}

TEST(MakeDemoData, DeterministicForASeed) {
  const auto a = fresh_dir("a"), b = fresh_dir("b"), c = fresh_dir("c");
  ASSERT_EQ(make(a, 5, 6, 3).rc, 0);
  ASSERT_EQ(make(b, 5, 6, 3).rc, 0);
  ASSERT_EQ(make(c, 6, 6, 3).rc, 0);
  EXPECT_EQ(slurp(a / "train.jsonl"), slurp(b / "train.jsonl"));
  EXPECT_EQ(slurp(a / "val.jsonl"), slurp(b / "val.jsonl"));
  for (const char* img : {"images/train_0.png", "images/train_5.png", "images/val_2.png"}) {
    EXPECT_EQ(slurp(a / img), slurp(b / img)) << img;
    EXPECT_NE(slurp(a / img), slurp(c / img)) << img;
  }
  // The val split has its own stream: more training records leave it unchanged.
  const auto d = fresh_dir("d");
  ASSERT_EQ(make(d, 5, 9, 3).rc, 0);
  EXPECT_EQ(slurp(a / "val.jsonl"), slurp(d / "val.jsonl"));
  EXPECT_EQ(slurp(a / "images/val_1.png"), slurp(d / "images/val_1.png"));
}

TEST(MakeDemoData, BoxesAreInsideAndTight) {
  const auto dir = fresh_dir("tight");
  ASSERT_EQ(make(dir, 1, 120, 0).rc, 0);
  std::set<std::string> descs;
  std::set<size_t> counts;
  int objects = 0, overlapping_pairs = 0;
  for (const auto& r : records(dir / "train.jsonl")) {
    const cv::Mat img = cv::imread((dir / r["images"][0].get<std::string>()).string(), cv::IMREAD_COLOR);
    ASSERT_FALSE(img.empty());
    ASSERT_EQ(r["width"].get<int>(), img.cols);
    ASSERT_EQ(r["height"].get<int>(), img.rows);
    const auto& objs = r["objects"];
    counts.insert(objs.size());
    std::map<std::string, int> colour_uses;
    for (const auto& o : objs) ++colour_uses[o["desc"].get<std::string>().substr(0, o["desc"].get<std::string>().find(' '))];
    for (size_t i = 0; i < objs.size(); ++i) {
      const std::string desc = objs[i]["desc"].get<std::string>();
      descs.insert(desc);
      const auto box = objs[i]["bbox_2d"].get<std::vector<int>>();
      const int x1 = box[0], y1 = box[1], x2 = box[2], y2 = box[3];  // [x1, x2) x [y1, y2)
      ASSERT_TRUE(0 <= x1 && x1 < x2 && x2 <= img.cols && 0 <= y1 && y1 < y2 && y2 <= img.rows) << desc;
      const auto& bgr = colour_of(desc);
      const auto row_has = [&](int y, int xa, int xb) {
        for (int x = std::max(xa, 0); x < std::min(xb, img.cols); ++x)
          if (is_colour(img.at<cv::Vec3b>(y, x), bgr)) return true;
        return false;
      };
      const auto col_has = [&](int x, int ya, int yb) {
        for (int y = std::max(ya, 0); y < std::min(yb, img.rows); ++y)
          if (is_colour(img.at<cv::Vec3b>(y, x), bgr)) return true;
        return false;
      };
      EXPECT_TRUE(row_has(y1, x1, x2) && row_has(y2 - 1, x1, x2) && col_has(x1, y1, y2) && col_has(x2 - 1, y1, y2))
          << desc << " box does not touch its shape on every side";
      if (colour_uses[desc.substr(0, desc.find(' '))] == 1) {
        // Rows/columns just outside the box (nothing to check past the image border).
        EXPECT_FALSE(y1 > 0 && row_has(y1 - 1, x1 - 1, x2 + 1)) << desc << " extends above its box";
        EXPECT_FALSE(y2 < img.rows && row_has(y2, x1 - 1, x2 + 1)) << desc << " extends below its box";
        EXPECT_FALSE(x1 > 0 && col_has(x1 - 1, y1 - 1, y2 + 1)) << desc << " extends left of its box";
        EXPECT_FALSE(x2 < img.cols && col_has(x2, y1 - 1, y2 + 1)) << desc << " extends right of its box";
      }
      for (size_t j = i + 1; j < objs.size(); ++j) {
        const auto b = objs[j]["bbox_2d"].get<std::vector<int>>();
        overlapping_pairs += x1 < b[2] && b[0] < x2 && y1 < b[3] && b[1] < y2;
      }
      ++objects;
    }
  }
  EXPECT_EQ(counts, (std::set<size_t>{1, 2, 3, 4}));
  EXPECT_GE(descs.size(), 15u) << "most of the 5 colours x 4 shapes appear in 120 images";
  EXPECT_GT(overlapping_pairs, 3) << "some boxes overlap";
  EXPECT_GT(objects, 200);
}

TEST(MakeDemoData, CheckDataAcceptsTheOutput) {
  const auto dir = fresh_dir("check");
  ASSERT_EQ(make(dir, 2, 20, 5).rc, 0);
  const auto r = testing::run_cli_captured(
      {"check-data", (dir / "train.jsonl").string(), (dir / "val.jsonl").string(), "--decode-images"});
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("all records valid"), std::string::npos) << r.out << r.err;
}

// --shapes / --colours restrict the classes: every desc is one of the 3 x 4 named pairs, and in
// 80 images every one of the 12 appears.
TEST(MakeDemoData, ShapesAndColoursPickTheClasses) {
  const auto dir = fresh_dir("subset");
  const auto r = testing::run_cli_captured({"make-demo-data", "--out", dir.string(), "--train", "80", "--val", "0",
                                            "--size", "128", "--shapes", "circle,rectangle,triangle", "--colours",
                                            "red,green,blue,yellow"});
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  std::set<std::string> allowed;
  for (const char* c : {"red", "green", "blue", "yellow"})
    for (const char* s : {"circle", "rectangle", "triangle"}) allowed.insert(std::string(c) + " " + s);
  std::set<std::string> seen;
  for (const auto& rec : records(dir / "train.jsonl"))
    for (const auto& o : rec["objects"]) {
      const auto desc = o["desc"].get<std::string>();
      EXPECT_TRUE(allowed.count(desc)) << desc;
      seen.insert(desc);
    }
  EXPECT_EQ(seen, allowed);
}

TEST(MakeDemoData, RejectsBadFlags) {
  const auto dir = fresh_dir("bad");
  for (const char* flag : {"--shapes", "--colours"}) {
    const auto r = testing::run_cli_captured({"make-demo-data", "--out", dir.string(), flag, "circle,hexagon"});
    EXPECT_EQ(r.rc, 2) << flag;
    EXPECT_NE((r.out + r.err).find(flag), std::string::npos) << r.out << r.err;
  }
  EXPECT_NE(testing::run_cli_captured({"make-demo-data", "--out", dir.string(), "--shapes", "circle,circle"}).rc, 0);
  EXPECT_EQ(testing::run_cli_captured({"make-demo-data", "--out", dir.string(), "--size", "16"}).rc, 2);
  EXPECT_EQ(testing::run_cli_captured({"make-demo-data", "--out", dir.string(), "--min-objects", "3", "--max-objects", "2"}).rc, 2);
}

}  // namespace
}  // namespace coordexp
