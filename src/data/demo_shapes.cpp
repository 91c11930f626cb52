// Demo shapes dataset: a splitmix64 stream draws a smooth grey texture with lines and noise, then
// places shapes one over the other (a placement is rejected when it would hide more than 45% of an
// earlier shape), paints them without anti-aliasing through an owner map, and boxes the pixels
// each shape still owns, so boxes are tight around what is visible. Per-pixel noise comes last.
#include "coordexp/data/demo_shapes.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::data {
namespace {
namespace fs = std::filesystem;

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

constexpr int kColourJitter = 12;  // per object and channel
constexpr int kPixelNoise = 8;     // per pixel, shared by the channels
constexpr int kChromaNoise = 3;    // per pixel and channel
constexpr double kMinVisible = 0.55;

uint8_t clamp_byte(int v) { return static_cast<uint8_t>(std::clamp(v, 0, 255)); }

// Grey background: a base level, a smooth random field (bilinear from a 6x6 grid), a slight
// tint and a few straight grey lines. Grey keeps every pixel far from the saturated object colours.
cv::Mat draw_background(Rng& rng, int size) {
  const int base = rng.uniform(70, 190);
  cv::Mat coarse(6, 6, CV_32F);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x) coarse.at<float>(y, x) = static_cast<float>(rng.uniform(-30, 30));
  cv::Mat field;
  cv::resize(coarse, field, cv::Size(size, size), 0, 0, cv::INTER_LINEAR);
  const int tint[3] = {rng.uniform(-6, 6), rng.uniform(-6, 6), rng.uniform(-6, 6)};
  cv::Mat img(size, size, CV_8UC3);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      const int g = base + static_cast<int>(field.at<float>(y, x));
      auto& px = img.at<cv::Vec3b>(y, x);
      for (int c = 0; c < 3; ++c) px[c] = clamp_byte(g + tint[c]);
    }
  const int lines = rng.uniform(0, 4);
  for (int i = 0; i < lines; ++i) {
    const int g = rng.uniform(40, 220);
    cv::line(img, {rng.uniform(0, size - 1), rng.uniform(0, size - 1)}, {rng.uniform(0, size - 1), rng.uniform(0, size - 1)},
             cv::Scalar(g, g, g), rng.uniform(1, 3), cv::LINE_8);
  }
  return img;
}

// The filled shape `kind` (index into demo_shape_names()) inside the w x h rectangle at (x, y).
void draw_shape_mask(cv::Mat& mask, int kind, int x, int y, int w, int h) {
  switch (kind) {
    case 0: {  // circle: the rectangle's shorter side is the diameter
      const int r = (std::min(w, h) - 1) / 2;
      cv::circle(mask, {x + r, y + r}, r, cv::Scalar(255), cv::FILLED, cv::LINE_8);
      break;
    }
    case 1:
      cv::rectangle(mask, cv::Rect(x, y, w, h), cv::Scalar(255), cv::FILLED, cv::LINE_8);
      break;
    case 2: {  // triangle, apex up
      const std::vector<cv::Point> pts = {{x + w / 2, y}, {x + w - 1, y + h - 1}, {x, y + h - 1}};
      cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{pts}, cv::Scalar(255), cv::LINE_8);
      break;
    }
    default: {  // diamond
      const std::vector<cv::Point> pts = {{x + w / 2, y}, {x + w - 1, y + h / 2}, {x + w / 2, y + h - 1}, {x, y + h / 2}};
      cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{pts}, cv::Scalar(255), cv::LINE_8);
      break;
    }
  }
}

// Indices into `names` of the `wanted` names (all of them when `wanted` is empty), in `names` order.
template <size_t N>
std::vector<int> pick_indices(const std::array<const char*, N>& names, const std::vector<std::string>& wanted) {
  std::vector<int> out;
  for (size_t i = 0; i < N; ++i)
    if (wanted.empty() || std::find(wanted.begin(), wanted.end(), names[i]) != wanted.end()) out.push_back(static_cast<int>(i));
  return out;
}

std::array<const char*, 5> colour_names() {
  std::array<const char*, 5> names{};
  for (size_t i = 0; i < names.size(); ++i) names[i] = demo_colours()[i].name;
  return names;
}

struct Placed {
  int colour, kind;
  cv::Vec3b bgr;     // jittered colour
  int full_area;     // pixels when nothing covers it
};

nlohmann::ordered_json make_record(Rng& rng, const DemoShapesOptions& o, const std::vector<int>& kinds,
                                   const std::vector<int>& colours, const std::string& image_rel,
                                   const std::string& image_path, DemoShapesResult& result) {
  const int size = o.size;
  cv::Mat img = draw_background(rng, size);
  cv::Mat owner(size, size, CV_8U, cv::Scalar(0));  // 0 = background, k = placed[k - 1]
  const int want = rng.uniform(o.min_objects, o.max_objects);
  const int min_side = std::max(8, size / 14), max_side = std::max(min_side + 1, size * 2 / 5);
  std::vector<Placed> placed;
  cv::Mat mask(size, size, CV_8U);
  for (int attempt = 0; attempt < 60 * want && static_cast<int>(placed.size()) < want; ++attempt) {
    const int kind = kinds[static_cast<size_t>(rng.uniform(0, static_cast<int>(kinds.size()) - 1))];
    const int colour = colours[static_cast<size_t>(rng.uniform(0, static_cast<int>(colours.size()) - 1))];
    const int w = rng.uniform(min_side, max_side);
    const int h = kind == 0 ? w : std::clamp(w * rng.uniform(60, 160) / 100, min_side, max_side);
    const int x = rng.uniform(0, size - w), y = rng.uniform(0, size - h);
    mask.setTo(0);
    draw_shape_mask(mask, kind, x, y, w, h);
    // Each earlier shape must keep most of its pixels visible.
    std::vector<int> covered(placed.size() + 1, 0), visible(placed.size() + 1, 0);
    for (int yy = 0; yy < size; ++yy) {
      const uint8_t* m = mask.ptr<uint8_t>(yy);
      const uint8_t* ow = owner.ptr<uint8_t>(yy);
      for (int xx = 0; xx < size; ++xx) {
        ++visible[ow[xx]];
        if (m[xx] && ow[xx]) ++covered[ow[xx]];
      }
    }
    bool ok = true;
    for (size_t k = 1; k <= placed.size(); ++k)
      ok = ok && visible[k] - covered[k] >= kMinVisible * placed[k - 1].full_area;
    if (!ok) continue;
    const auto& nominal = demo_colours()[static_cast<size_t>(colour)].bgr;
    Placed p{colour, kind, {}, cv::countNonZero(mask)};
    for (int c = 0; c < 3; ++c) p.bgr[c] = clamp_byte(nominal[static_cast<size_t>(c)] + rng.uniform(-kColourJitter, kColourJitter));
    placed.push_back(p);
    owner.setTo(cv::Scalar(static_cast<double>(placed.size())), mask);
  }
  // Paint from the owner map, then noise everything.
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) {
      auto& px = img.at<cv::Vec3b>(y, x);
      const uint8_t k = owner.at<uint8_t>(y, x);
      if (k) px = placed[k - 1u].bgr;
      const int shared = rng.uniform(-kPixelNoise, kPixelNoise);
      for (int c = 0; c < 3; ++c) px[c] = clamp_byte(px[c] + shared + rng.uniform(-kChromaNoise, kChromaNoise));
    }
  auto objects = nlohmann::ordered_json::array();
  for (size_t k = 1; k <= placed.size(); ++k) {
    const cv::Rect r = cv::boundingRect(owner == static_cast<int>(k));
    if (cv::countNonZero(owner == static_cast<int>(k)) < placed[k - 1].full_area) ++result.num_overlapping;
    const Placed& p = placed[k - 1];
    objects.push_back({{"desc", std::string(demo_colours()[static_cast<size_t>(p.colour)].name) + " " +
                                    demo_shape_names()[static_cast<size_t>(p.kind)]},
                       {"bbox_2d", {r.x, r.y, r.x + r.width, r.y + r.height}}});
  }
  if (!cv::imwrite(image_path, img))
    throw DataError("cannot write image", image_path, "check that the output folder is writable");
  result.num_objects += static_cast<int64_t>(objects.size());
  return {{"images", {image_rel}}, {"width", size}, {"height", size}, {"objects", objects}};
}

}  // namespace

const std::array<DemoColour, 5>& demo_colours() {
  static const std::array<DemoColour, 5> colours = {{{"red", {40, 40, 220}},
                                                     {"green", {40, 170, 40}},
                                                     {"blue", {210, 80, 30}},
                                                     {"yellow", {30, 210, 220}},
                                                     {"purple", {160, 40, 160}}}};
  return colours;
}

const std::array<const char*, 4>& demo_shape_names() {
  static const std::array<const char*, 4> names = {"circle", "rectangle", "triangle", "diamond"};
  return names;
}

void DemoShapesOptions::validate() const {
  auto check = [](bool ok, const char* flag, const std::string& what) {
    if (!ok) throw ConfigError(what, flag, "see coordexp-train make-demo-data --help");
  };
  check(!out_dir.empty(), "--out", "an output folder is required");
  check(num_train >= 1 && num_train <= 1000000, "--train", "must be in 1..1000000");
  check(num_val >= 0 && num_val <= 1000000, "--val", "must be in 0..1000000");
  check(size >= 64 && size <= 2048, "--size", "must be in 64..2048");
  check(min_objects >= 1 && min_objects <= 10, "--min-objects", "must be in 1..10");
  check(max_objects >= min_objects && max_objects <= 10, "--max-objects", "must be in --min-objects..10");
  auto check_names = [](const std::vector<std::string>& wanted, const auto& names, const char* flag) {
    std::string known;
    for (const char* n : names) known += std::string(known.empty() ? "" : ", ") + n;
    for (const auto& w : wanted)
      if (std::find_if(names.begin(), names.end(), [&](const char* n) { return w == n; }) == names.end())
        throw ConfigError("unknown name '" + w + "'", flag, "use a comma-separated subset of: " + known);
    for (size_t i = 0; i < wanted.size(); ++i)
      if (std::find(wanted.begin() + static_cast<std::ptrdiff_t>(i) + 1, wanted.end(), wanted[i]) != wanted.end())
        throw ConfigError("'" + wanted[i] + "' is listed twice", flag, "name each one once");
  };
  check_names(shapes, demo_shape_names(), "--shapes");
  check_names(colours, colour_names(), "--colours");
}

DemoShapesResult write_demo_shapes_dataset(const DemoShapesOptions& o) {
  o.validate();
  const fs::path root(o.out_dir);
  fs::create_directories(root / "images");
  DemoShapesResult result;
  const std::vector<int> kinds = pick_indices(demo_shape_names(), o.shapes);
  const std::vector<int> colours = pick_indices(colour_names(), o.colours);
  // Separate streams per split: the val set does not change when --train changes.
  auto write_split = [&](const char* split, int count, uint64_t stream) {
    Rng rng{(o.seed * 0x2545f4914f6cdd1dULL + 1) ^ (stream * 0x9e3779b97f4a7c15ULL)};
    std::string lines;
    for (int i = 0; i < count; ++i) {
      const std::string rel = std::string("images/") + split + "_" + std::to_string(i) + ".png";
      lines += make_record(rng, o, kinds, colours, rel, (root / rel).string(), result).dump() + "\n";
    }
    const std::string path = (root / (std::string(split) + ".jsonl")).string();
    util::write_file_atomic(path, lines);
    return path;
  };
  result.train_jsonl = write_split("train", o.num_train, 1);
  result.val_jsonl = write_split("val", o.num_val, 2);
  return result;
}

}  // namespace coordexp::data
