// smart_resize against the spec's examples (incl. round-half-to-even ties and the aspect-ratio
// limit), preprocessor_config.json parsing (both pixel-budget spellings, overrides, errors) and the
// preprocess options' validation and overrides.
#include <gtest/gtest.h>

#include <string>

#include "coordexp/model/vision_preprocess.h"
#include "coordexp/util/error.h"

namespace {

using coordexp::ConfigError;
using coordexp::DataError;
using coordexp::FormatError;
using coordexp::model::ImageSize;
using coordexp::model::smart_resize;
namespace model = coordexp::model;

constexpr int64_t kMin = 65536, kMax = 16777216;

ImageSize qwen3(int64_t h, int64_t w) { return smart_resize(h, w, 32, kMin, kMax); }

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception of the expected type";
  return {};
}

TEST(SmartResize, SpecExamplesTiesAndBranches) {
  struct Case { int64_t h, w, hb, wb; };
  const Case cases[] = {
      {480, 640, 480, 640},     // already on the grid
      {750, 1000, 736, 992},    // rounding only
      {150, 200, 224, 320},     // min_pixels upsizes (the fixture image is 75x100 -> same)
      {75, 100, 224, 320},
      {1365, 2048, 1376, 2048},
      {80, 4096, 64, 4096},     // 80/32 = 2.5 -> 2 (half to even), area fits
      {112, 4096, 128, 4096},   // 112/32 = 3.5 -> 4
      {48, 2720, 64, 2720},     // 1.5 -> 2; 85.0 -> 85
      {10000, 10000, 4096, 4096},  // max branch: beta = sqrt(1e8 / 2^24)
      {4000, 6000, 3328, 4992},    // max branch, floor per side
      {1, 200, 32, 3648},          // tiny side: min branch, ceil per side
  };
  for (const Case& c : cases) {
    const ImageSize s = qwen3(c.h, c.w);
    EXPECT_EQ(s.height, c.hb) << c.h << "x" << c.w;
    EXPECT_EQ(s.width, c.wb) << c.h << "x" << c.w;
  }
  // Token counts of the spec examples: (hb/32)*(wb/32).
  EXPECT_EQ((736 / 32) * (992 / 32), 713);
  EXPECT_EQ((1376 / 32) * (2048 / 32), 2752);
  // std::round would give 96 for 80 (2.5 -> 3); the tie must go to even.
  EXPECT_EQ(smart_resize(80, 80, 32, 1, kMax).height, 64);
  EXPECT_EQ(smart_resize(144, 144, 32, 1, kMax).height, 128);  // 4.5 -> 4
  EXPECT_EQ(smart_resize(176, 176, 32, 1, kMax).height, 192);  // 5.5 -> 6

  // Aspect ratio: exactly 200 passes, just above fails naming the image.
  EXPECT_NO_THROW(qwen3(10, 2000));
  const std::string msg = error_of<DataError>([] { smart_resize(10, 2001, 32, kMin, kMax, "img.png"); });
  EXPECT_NE(msg.find("img.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("200"), std::string::npos) << msg;
  EXPECT_THROW(qwen3(2001, 10), DataError);
  EXPECT_THROW(qwen3(0, 10), DataError);
}

TEST(ImageProcessorConfig, ParsesFixtureAndBothSpellings) {
  const auto cfg = model::load_image_processor_config(COORDEXP_TEST_DATA_DIR "/qwen3vl-tiny-a");
  EXPECT_EQ(cfg.min_pixels, 65536);
  EXPECT_EQ(cfg.max_pixels, 16777216);
  EXPECT_EQ(cfg.patch_size, 16);
  EXPECT_EQ(cfg.temporal_patch_size, 2);
  EXPECT_EQ(cfg.merge_size, 2);
  EXPECT_EQ(cfg.factor(), 32);
  EXPECT_EQ(cfg.patch_dim(), 1536);
  EXPECT_EQ(cfg.image_mean[1], 0.5);
  EXPECT_EQ(cfg.image_std[2], 0.5);
  EXPECT_EQ(cfg.rescale_factor, 1.0 / 255.0);  // the JSON literal is the shortest repr of 1/255
  EXPECT_TRUE(cfg.do_resize && cfg.do_rescale && cfg.do_normalize);

  const std::string common =
      R"("patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
         "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711])";
  auto p = model::parse_image_processor_config(
      "{\"size\": {\"min_pixels\": 3136, \"max_pixels\": 12845056}, " + common + "}", "q2.json");
  EXPECT_EQ(p.min_pixels, 3136);
  EXPECT_EQ(p.max_pixels, 12845056);
  EXPECT_EQ(p.factor(), 28);
  EXPECT_DOUBLE_EQ(p.image_std[0], 0.26862954);
  // Top-level min_pixels / max_pixels override size (HF backward compatibility).
  p = model::parse_image_processor_config(
      "{\"size\": {\"shortest_edge\": 100, \"longest_edge\": 200}, \"min_pixels\": 50, \"max_pixels\": 5000, " +
          common + "}",
      "q.json");
  EXPECT_EQ(p.min_pixels, 50);
  EXPECT_EQ(p.max_pixels, 5000);
}

TEST(ImageProcessorConfig, ErrorsNameFileAndKey) {
  const std::string size = R"("size": {"shortest_edge": 65536, "longest_edge": 16777216})";
  const std::string mean = R"("image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5])";
  const std::string dims = R"("patch_size": 16, "temporal_patch_size": 2, "merge_size": 2)";
  struct Case { std::string json, expect; };
  const Case cases[] = {
      {"{" + mean + ", " + dims + "}", "size.shortest_edge"},
      {R"({"size": {"shortest_edge": 65536}, )" + mean + ", " + dims + "}", "size.longest_edge"},
      {"{" + size + ", " + mean + R"(, "temporal_patch_size": 2, "merge_size": 2})", "patch_size"},
      {"{" + size + ", " + mean + R"(, "patch_size": 0, "temporal_patch_size": 2, "merge_size": 2})", "patch_size"},
      {"{" + size + ", " + mean + R"(, "patch_size": "16", "temporal_patch_size": 2, "merge_size": 2})", "patch_size"},
      {"{" + size + ", " + dims + R"(, "image_mean": [0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})", "image_mean"},
      {"{" + size + ", " + dims + R"(, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0, 0.5]})", "image_std"},
      {"{" + size + ", " + mean + ", " + dims + R"(, "resample": 2})", "resample"},
      {"{" + size + ", " + mean + ", " + dims + R"(, "do_rescale": "yes"})", "do_rescale"},
      {R"({"size": {"shortest_edge": 900, "longest_edge": 800}, )" + mean + ", " + dims + "}", "exceeds"},
      {"{" + size + ", ", "invalid JSON"},
      {"[1, 2]", "object"},
  };
  for (const Case& c : cases) {
    const std::string msg =
        error_of<FormatError>([&] { model::parse_image_processor_config(c.json, "dir/preprocessor_config.json"); });
    EXPECT_NE(msg.find("dir/preprocessor_config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << msg;
  }
  const std::string missing = error_of<FormatError>([] { model::load_image_processor_config("/no/such/model"); });
  EXPECT_NE(missing.find("/no/such/model/preprocessor_config.json"), std::string::npos) << missing;
}

TEST(PreprocessOptions, ValidateAndOverrides) {
  coordexp::config::PreprocessOptions o;
  EXPECT_NO_THROW(o.validate());
  o.resize_mode = "opencv";
  EXPECT_NE(error_of<ConfigError>([&] { o.validate(); }).find("preprocess.resize_mode"), std::string::npos);
  o = {};
  o.min_pixels = -1;
  EXPECT_NE(error_of<ConfigError>([&] { o.validate(); }).find("preprocess.min_pixels"), std::string::npos);
  o = {};
  o.max_pixels = -5;
  EXPECT_NE(error_of<ConfigError>([&] { o.validate(); }).find("preprocess.max_pixels"), std::string::npos);
  o = {};
  o.min_pixels = 5000;
  o.max_pixels = 4000;
  EXPECT_THROW(o.validate(), ConfigError);

  const model::ImageProcessorConfig file_cfg;  // 65536 .. 16777216
  o = {};
  o.max_pixels = 2048;  // below the file's min: the effective pair is inconsistent
  EXPECT_THROW(model::ImagePreprocessor(file_cfg, o), ConfigError);
  o.min_pixels = 1024;
  const model::ImagePreprocessor pre(file_cfg, o);
  EXPECT_EQ(pre.config().min_pixels, 1024);
  EXPECT_EQ(pre.config().max_pixels, 2048);
  EXPECT_EQ(pre.resize_mode(), model::ResizeMode::kPil);
  // 75x100 with max 2048: round -> 64x96 = 6144 > 2048, beta = sqrt(7500/2048) -> 32x32.
  const model::ImageGeometry g = pre.plan({75, 100});
  EXPECT_EQ(g.resized, (ImageSize{32, 32}));
  EXPECT_EQ(g.grid_thw, (std::array<int64_t, 3>{1, 2, 2}));
  EXPECT_EQ(g.num_patches, 4);
  EXPECT_EQ(g.num_image_tokens, 1);
  EXPECT_EQ(model::parse_resize_mode("torch"), model::ResizeMode::kTorch);
}

}  // namespace
