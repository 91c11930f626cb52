// Test helpers for the data pipeline: a temp directory with synthetic PNGs written by OpenCV and a
// JSONL file, the real Qwen3 tokenizer (with coord tokens), a small-budget image preprocessor and
// a dataset/loader factory. The tokenizer comes from $COORDEXP_TOKENIZER_DIR, else
// <source>/.cache/tokenizer-qwen3 (scripts/fetch-tokenizer.sh); missing files FAIL the test.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "coordexp/data/dataset.h"
#include "coordexp/data/loader.h"
#include "coordexp/model/vision_preprocess.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::data::testing {

namespace fs = std::filesystem;

inline std::string qwen_tokenizer_dir() {
  const char* env = std::getenv("COORDEXP_TOKENIZER_DIR");
  const std::string dir =
      env && *env ? std::string(env) : std::string(COORDEXP_SOURCE_DIR) + "/.cache/tokenizer-qwen3";
  if (!fs::exists(dir + "/tokenizer.json"))
    throw std::runtime_error("Qwen3 tokenizer not found in " + dir + " (run scripts/fetch-tokenizer.sh " + dir +
                             " or set COORDEXP_TOKENIZER_DIR)");
  return dir;
}

inline std::shared_ptr<const tokenizer::Tokenizer> qwen_tokenizer() {
  static const std::shared_ptr<const tokenizer::Tokenizer> tok = [] {
    auto t = tokenizer::Tokenizer::from_dir(qwen_tokenizer_dir());
    t->ensure_coord_tokens();
    return std::shared_ptr<const tokenizer::Tokenizer>(std::move(t));
  }();
  return tok;
}

// Patch 16, merge 2 (factor 32), pixel budget [32*32, 128*128]: a W x H image whose sides round
// (half to even) to multiples of 32 inside the budget gets (H'/32) * (W'/32) image tokens.
inline model::ImageProcessorConfig small_image_config() {
  model::ImageProcessorConfig c;
  c.min_pixels = 32 * 32;
  c.max_pixels = 128 * 128;
  return c;
}
inline std::shared_ptr<const model::ImagePreprocessor> small_preprocessor() {
  return std::make_shared<const model::ImagePreprocessor>(small_image_config(), config::PreprocessOptions{});
}

// Removes itself on destruction.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("coordexp_data_pipeline_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// A PNG of width x height with a pattern that depends on `seed` (so images differ).
inline void write_png(const std::string& path, int width, int height, int seed) {
  cv::Mat m(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>((x * 7 + seed * 31) & 255),
                                        static_cast<uint8_t>((y * 5 + seed * 17) & 255),
                                        static_cast<uint8_t>((x * y + seed) & 255));
  if (!cv::imwrite(path, m)) throw std::runtime_error("cannot write " + path);
}

inline void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary);
  for (const auto& l : lines) out << l << "\n";
}

// One JSONL record line. (A vector, not a json: nlohmann turns a one-element braced list into
// that element rather than an array.)
inline std::string record_line(const std::vector<std::string>& images, int width, int height,
                               const std::vector<nlohmann::json>& objects) {
  nlohmann::json j;
  j["images"] = images;
  j["width"] = width;
  j["height"] = height;
  j["objects"] = nlohmann::json::array();
  for (const auto& o : objects) j["objects"].push_back(o);
  return j.dump();
}
inline nlohmann::json bbox(const std::string& desc, double x1, double y1, double x2, double y2) {
  return {{"desc", desc}, {"bbox_2d", {x1, y1, x2, y2}}};
}

// Pixel -> bin as the contract defines it (extent = size): round half to even of 999 * x / W.
inline int expected_bin(double x, int size) { return static_cast<int>(std::nearbyint(999.0 * x / size)); }

inline config::DataOptions test_data_options() {
  config::DataOptions d;
  d.prompt_user = "Find the objects. {format}";
  d.max_length = 4096;
  d.num_workers = 2;
  return d;
}

inline std::shared_ptr<const DetectionDataset> make_dataset(const std::vector<std::string>& files,
                                                            const config::DataOptions& data,
                                                            const config::ProtocolOptions& protocol = {}) {
  return std::make_shared<const DetectionDataset>(files, DatasetOptions::from_config(data, protocol),
                                                  qwen_tokenizer(), small_preprocessor());
}

// A dataset of `n` records over a few image sizes with 0..5 objects each (varying lengths).
inline std::string write_varied_dataset(const TempDir& dir, int n) {
  const int sizes[][2] = {{64, 48}, {96, 64}, {128, 96}, {64, 128}};
  std::vector<std::string> lines;
  for (int i = 0; i < n; ++i) {
    const int w = sizes[i % 4][0], h = sizes[i % 4][1];
    const std::string name = "v" + std::to_string(i) + ".png";
    write_png(dir.file(name), w, h, i);
    std::vector<nlohmann::json> objects;
    for (int k = 0; k < (i * 7) % 6; ++k)
      objects.push_back(bbox("thing " + std::to_string(k), (k * 9) % (w / 2), (k * 5 + i) % (h / 2),
                             w / 2 + (k * 3) % (w / 2), h / 2 + k % (h / 2)));
    lines.push_back(record_line({name}, w, h, objects));
  }
  const std::string path = dir.file("varied.jsonl");
  write_lines(path, lines);
  return path;
}

}  // namespace coordexp::data::testing
