// Synthetic shapes dataset: a splitmix64 stream picks sizes, places shapes without overlap (rejection
// sampling), draws them with OpenCV (no anti-aliasing, so pixel extents are exact) and writes PNGs
// plus JSONL records with boxes [x1, y1, x2, y2) in pixel-edge coordinates.
#include "coordexp/data/synthetic.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <filesystem>
#include <vector>

#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::data {
namespace {
namespace fs = std::filesystem;

struct Color {
  const char* name;
  cv::Scalar bgr;
};
const std::array<Color, 6> kColors = {{{"red", {40, 40, 220}},
                                       {"green", {40, 180, 40}},
                                       {"blue", {220, 60, 30}},
                                       {"yellow", {30, 220, 230}},
                                       {"purple", {170, 40, 150}},
                                       {"black", {20, 20, 20}}}};

// splitmix64: portable, so the dataset bytes do not depend on the standard library.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int uniform(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); }
};

struct Box {
  int x1, y1, x2, y2;  // [x1, x2) x [y1, y2)
  bool overlaps(const Box& o, int gap) const {
    return x1 < o.x2 + gap && o.x1 < x2 + gap && y1 < o.y2 + gap && o.y1 < y2 + gap;
  }
};

nlohmann::ordered_json make_record(Rng& rng, const SyntheticDataOptions& o, const std::string& image_rel,
                                   const std::string& image_path, int64_t& num_objects) {
  cv::Mat img(o.height, o.width, CV_8UC3, cv::Scalar(235, 235, 235));
  const int want = rng.uniform(1, o.max_objects);
  const int min_side = std::max(6, std::min(o.width, o.height) / 8);
  const int max_side = std::max(min_side, std::min(o.width, o.height) / 2);
  std::vector<Box> placed;
  auto objects = nlohmann::ordered_json::array();
  for (int attempt = 0; attempt < 50 * want && static_cast<int>(placed.size()) < want; ++attempt) {
    const bool circle = rng.next() % 2 == 0;
    const Color& color = kColors[rng.next() % kColors.size()];
    Box b{};
    if (circle) {
      const int r = rng.uniform(min_side / 2, max_side / 2);
      const int cx = rng.uniform(r, o.width - 1 - r), cy = rng.uniform(r, o.height - 1 - r);
      b = {cx - r, cy - r, cx + r + 1, cy + r + 1};
      bool free = true;
      for (const auto& p : placed) free = free && !b.overlaps(p, 2);
      if (!free) continue;
      cv::circle(img, {cx, cy}, r, color.bgr, cv::FILLED, cv::LINE_8);
    } else {
      const int w = rng.uniform(min_side, max_side), h = rng.uniform(min_side, max_side);
      const int x1 = rng.uniform(0, o.width - w), y1 = rng.uniform(0, o.height - h);
      b = {x1, y1, x1 + w, y1 + h};
      bool free = true;
      for (const auto& p : placed) free = free && !b.overlaps(p, 2);
      if (!free) continue;
      cv::rectangle(img, cv::Rect(x1, y1, w, h), color.bgr, cv::FILLED, cv::LINE_8);
    }
    placed.push_back(b);
    objects.push_back({{"desc", std::string(color.name) + (circle ? " circle" : " rectangle")},
                       {"bbox_2d", {b.x1, b.y1, b.x2, b.y2}}});
  }
  if (!cv::imwrite(image_path, img))
    throw DataError("cannot write image", image_path, "check that the output folder is writable");
  num_objects += static_cast<int64_t>(objects.size());
  return {{"images", {image_rel}}, {"width", o.width}, {"height", o.height}, {"objects", objects}};
}

}  // namespace

void SyntheticDataOptions::validate() const {
  auto check = [](bool ok, const char* flag, const std::string& what) {
    if (!ok) throw ConfigError(what, flag, "see coordexp-train make-synthetic-data --help");
  };
  check(!out_dir.empty(), "--out", "an output folder is required");
  check(num_train >= 1 && num_train <= 1000000, "--num-train", "must be in 1..1000000");
  check(num_val >= 0 && num_val <= 1000000, "--num-val", "must be in 0..1000000");
  check(width >= 32 && width <= 4096, "--width", "must be in 32..4096");
  check(height >= 32 && height <= 4096, "--height", "must be in 32..4096");
  check(max_objects >= 1 && max_objects <= 10, "--max-objects", "must be in 1..10");
}

SyntheticDataResult write_synthetic_dataset(const SyntheticDataOptions& o) {
  o.validate();
  const fs::path root(o.out_dir);
  fs::create_directories(root / "images");
  Rng rng{o.seed * 0x2545f4914f6cdd1dULL + 1};
  SyntheticDataResult result;
  auto write_split = [&](const char* split, int count) {
    std::string lines;
    for (int i = 0; i < count; ++i) {
      const std::string rel = std::string("images/") + split + "_" + std::to_string(i) + ".png";
      lines += make_record(rng, o, rel, (root / rel).string(), result.num_objects).dump() + "\n";
    }
    const std::string path = (root / (std::string(split) + ".jsonl")).string();
    util::write_file_atomic(path, lines);
    return path;
  };
  result.train_jsonl = write_split("train", o.num_train);
  result.val_jsonl = write_split("val", o.num_val);
  return result;
}

}  // namespace coordexp::data
