// Image decoding to 8-bit RGB against Pillow + HF convert_to_rgb outputs (gray, palette, palette
// with transparency, LA, RGBA, 16-bit RGB/RGBA PNGs; tests/data/preprocess-pillow), the 16-bit
// gray rule, and clear errors for missing, empty, corrupt and truncated files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "coordexp/model/vision_preprocess.h"
#include "coordexp/util/error.h"
#include "coordexp/util/safetensors.h"

namespace {

namespace fs = std::filesystem;
namespace model = coordexp::model;
using coordexp::DataError;

const std::string kDir = COORDEXP_TEST_DATA_DIR "/preprocess-pillow";

fs::path scratch_dir() {
  const fs::path d = fs::temp_directory_path() / ("coordexp_image_io_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string data_error_of(const std::string& path) {
  try {
    model::load_rgb_image(path);
  } catch (const DataError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no DataError for " << path;
  return {};
}

TEST(LoadRgbImage, MatchesPillowConvertToRgb) {
  const auto refs = coordexp::util::SafetensorsFile::open(kDir + "/pillow_refs.safetensors");
  int checked = 0;
  for (const char* name : {"rgb", "gray", "rgba", "la", "palette", "palette_trns", "rgb16", "rgba16"}) {
    const torch::Tensor expected = refs->tensor(std::string("convert/") + name);
    const torch::Tensor got = model::load_rgb_image(kDir + "/src_" + name + ".png");
    ASSERT_EQ(got.sizes(), expected.sizes()) << name;
    ASSERT_EQ(got.scalar_type(), torch::kUInt8);
    const int64_t mismatches = got.ne(expected).sum().item<int64_t>();
    EXPECT_EQ(mismatches, 0) << name << ": max diff "
                             << (got.to(torch::kInt32) - expected.to(torch::kInt32)).abs().max().item<int>();
    ++checked;
  }
  EXPECT_EQ(checked, 8);
  // The alpha test image has fully transparent and fully opaque rows: white and untouched colours.
  const torch::Tensor rgba = model::load_rgb_image(kDir + "/src_rgba.png");
  EXPECT_TRUE(rgba[0].eq(255).all().item<bool>());
  EXPECT_TRUE(rgba[1].equal(model::load_rgb_image(kDir + "/src_rgb.png")[1]));

  // The fixture image decodes to its known size, and decode_rgb_image agrees with the file path.
  const std::string fixture = COORDEXP_TEST_DATA_DIR "/qwen3vl-tiny-a/image.png";
  const torch::Tensor img = model::load_rgb_image(fixture);
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{75, 100, 3}));
  const std::string bytes = read_bytes(fixture);
  EXPECT_TRUE(img.equal(model::decode_rgb_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x")));
}

TEST(LoadRgbImage, AlphaOverWhiteForEveryValueAndAlpha) {
  // All 256 x 256 (value, alpha) pairs. Pillow's integer alpha_composite over opaque white equals
  // round((v*a + 255*(255 - a)) / 255) for every pair (checked exhaustively against Pillow 9.4).
  cv::Mat bgra(256, 256, CV_8UC4);
  for (int v = 0; v < 256; ++v)
    for (int a = 0; a < 256; ++a) bgra.at<cv::Vec4b>(v, a) = cv::Vec4b(v, 255 - v, v / 2, a);
  const fs::path p = scratch_dir() / "alpha.png";
  ASSERT_TRUE(cv::imwrite(p.string(), bgra));
  const torch::Tensor got = model::load_rgb_image(p.string());
  auto g = got.accessor<uint8_t, 3>();
  auto over_white = [](int v, int a) { return (v * a + 255 * (255 - a) + 127) / 255; };
  int mismatches = 0;
  for (int v = 0; v < 256; ++v)
    for (int a = 0; a < 256; ++a) {
      mismatches += g[v][a][0] != over_white(v / 2, a);  // R <- OpenCV channel 2
      mismatches += g[v][a][1] != over_white(255 - v, a);
      mismatches += g[v][a][2] != over_white(v, a);
    }
  EXPECT_EQ(mismatches, 0);
  fs::remove(p);
}

TEST(LoadRgbImage, SixteenBitGrayKeepsHighByte) {
  cv::Mat gray16(3, 4, CV_16UC1);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x) gray16.at<uint16_t>(y, x) = static_cast<uint16_t>(y * 20000 + x * 300 + 255);
  const fs::path p = scratch_dir() / "gray16.png";
  ASSERT_TRUE(cv::imwrite(p.string(), gray16));
  const torch::Tensor got = model::load_rgb_image(p.string());
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{3, 4, 3}));
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c)
        EXPECT_EQ(got[y][x][c].item<int>(), gray16.at<uint16_t>(y, x) >> 8) << y << "," << x;
  fs::remove(p);
}

TEST(LoadRgbImage, BadFilesAreDataErrorsNamingThePath) {
  const fs::path dir = scratch_dir();
  const std::string missing = (dir / "missing.png").string();
  std::string msg = data_error_of(missing);
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;

  const fs::path empty = dir / "empty.png";
  write_bytes(empty, "");
  msg = data_error_of(empty.string());
  EXPECT_NE(msg.find(empty.string()), std::string::npos) << msg;

  const fs::path garbage = dir / "garbage.jpg";
  write_bytes(garbage, std::string(300, '\x5a'));
  msg = data_error_of(garbage.string());
  EXPECT_NE(msg.find(garbage.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("decode"), std::string::npos) << msg;

  const std::string png = read_bytes(kDir + "/src_pattern.png");
  const fs::path truncated = dir / "truncated.png";
  write_bytes(truncated, png.substr(0, png.size() / 2));
  msg = data_error_of(truncated.string());
  EXPECT_NE(msg.find(truncated.string()), std::string::npos) << msg;

  const fs::path header_only = dir / "header_only.png";
  write_bytes(header_only, png.substr(0, 33));  // signature + IHDR, no data
  msg = data_error_of(header_only.string());
  EXPECT_NE(msg.find(header_only.string()), std::string::npos) << msg;

  msg = data_error_of(dir.string());  // a directory is not an image
  EXPECT_NE(msg.find(dir.string()), std::string::npos) << msg;
  fs::remove_all(dir);
}

}  // namespace
