// Resampling and the pixel pipeline: the Pillow-exact resize against real Pillow 9.4 outputs and
// against an independent per-pixel double-precision re-statement of the same algorithm (random
// up/down/mixed sizes), torch mode sanity, no-resample passthrough, patch order against the spec's
// index formula, a downscale through the whole slow-processor path, and multi-image concatenation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "coordexp/model/vision_preprocess.h"
#include "coordexp/util/error.h"
#include "coordexp/util/safetensors.h"

namespace {

namespace model = coordexp::model;

const std::string kDir = COORDEXP_TEST_DATA_DIR "/preprocess-pillow";

// ---- Reference: Pillow's bicubic stated per output pixel, in double, without precomputed tables.
// Every input sample whose scaled distance to the output centre is inside the kernel contributes;
// weights are normalised, rounded to 22-bit fixed point (half away from zero), summed with a
// rounding bias of 2^21, shifted and clamped. The horizontal pass always runs first and its result
// is rounded to uint8 before the vertical pass (both passes always run: scale 1 is the identity).
double keys_cubic(double x) {  // Keys (1981), a = -0.5, in expanded polynomial form
  const double a = -0.5, t = std::abs(x);
  if (t < 1.0) return (a + 2.0) * t * t * t - (a + 3.0) * t * t + 1.0;
  if (t < 2.0) return a * t * t * t - 5.0 * a * t * t + 8.0 * a * t - 4.0 * a;
  return 0.0;
}

std::vector<std::pair<int64_t, int64_t>> ref_taps(int64_t in_size, int64_t out_size, int64_t i) {
  const double scale = double(in_size) / double(out_size);
  const double widen = scale > 1.0 ? scale : 1.0;
  const double center = (i + 0.5) * scale;
  std::vector<std::pair<int64_t, double>> raw;
  double total = 0.0;
  for (int64_t j = 0; j < in_size; ++j) {
    const double d = (j + 0.5 - center) / widen;
    if (std::abs(d) >= 2.0) continue;
    raw.emplace_back(j, keys_cubic(d));
    total += raw.back().second;
  }
  std::vector<std::pair<int64_t, int64_t>> taps;
  for (auto [j, w] : raw) {
    const double scaled = w / total * 4194304.0;  // 2^22
    taps.emplace_back(j, static_cast<int64_t>(scaled < 0 ? std::ceil(scaled - 0.5) : std::floor(scaled + 0.5)));
  }
  return taps;
}

int ref_clip(int64_t acc) {
  const int64_t v = (acc + 2097152) / 4194304 - ((acc + 2097152) % 4194304 < 0 ? 1 : 0);  // floor div
  return static_cast<int>(v < 0 ? 0 : v > 255 ? 255 : v);
}

torch::Tensor reference_resize(const torch::Tensor& src, int64_t out_h, int64_t out_w) {
  const int64_t in_h = src.size(0), in_w = src.size(1);
  auto a = src.accessor<uint8_t, 3>();
  torch::Tensor mid = torch::empty({in_h, out_w, 3}, torch::kUInt8);
  auto m = mid.accessor<uint8_t, 3>();
  for (int64_t x = 0; x < out_w; ++x) {
    const auto taps = ref_taps(in_w, out_w, x);
    for (int64_t y = 0; y < in_h; ++y)
      for (int c = 0; c < 3; ++c) {
        int64_t acc = 0;
        for (auto [j, w] : taps) acc += w * a[y][j][c];
        m[y][x][c] = static_cast<uint8_t>(ref_clip(acc));
      }
  }
  torch::Tensor out = torch::empty({out_h, out_w, 3}, torch::kUInt8);
  auto o = out.accessor<uint8_t, 3>();
  for (int64_t y = 0; y < out_h; ++y) {
    const auto taps = ref_taps(in_h, out_h, y);
    for (int64_t x = 0; x < out_w; ++x)
      for (int c = 0; c < 3; ++c) {
        int64_t acc = 0;
        for (auto [j, w] : taps) acc += w * m[j][x][c];
        o[y][x][c] = static_cast<uint8_t>(ref_clip(acc));
      }
  }
  return out;
}

int max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kInt32) - b.to(torch::kInt32)).abs().max().item<int>();
}

// Random image with hard edges so negative lobes overshoot and the clamps matter.
torch::Tensor random_image(int64_t h, int64_t w, std::mt19937& rng) {
  torch::Tensor t = torch::empty({h, w, 3}, torch::kUInt8);
  uint8_t* p = t.data_ptr<uint8_t>();
  std::uniform_int_distribution<int> bit(0, 3), val(0, 255);
  for (int64_t i = 0; i < h * w * 3; ++i) {
    const int r = bit(rng);
    p[i] = static_cast<uint8_t>(r == 0 ? 0 : r == 1 ? 255 : val(rng));
  }
  return t;
}

TEST(ResizePil, MatchesPillowAndIndependentReference) {
  const auto refs = coordexp::util::SafetensorsFile::open(kDir + "/pillow_refs.safetensors");
  const torch::Tensor src = model::load_rgb_image(kDir + "/src_pattern.png");
  ASSERT_EQ(src.sizes(), (std::vector<int64_t>{61, 97, 3}));
  int checked = 0;
  for (const auto& info : refs->tensors()) {
    const std::string& name = info.name;
    if (name.rfind("resize/", 0) != 0) continue;
    const torch::Tensor expected = refs->tensor(name);
    const int64_t h = expected.size(0), w = expected.size(1);
    const torch::Tensor got = model::resize_bicubic_pil(src, h, w);
    EXPECT_TRUE(got.equal(expected)) << name << " max diff " << max_abs_diff(got, expected);
    // The reference re-statement agrees with Pillow too (so it is a valid oracle below).
    EXPECT_TRUE(reference_resize(src, h, w).equal(expected)) << name << " (reference)";
    ++checked;
  }
  EXPECT_EQ(checked, 9);

  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> side(1, 40);
  for (int trial = 0; trial < 150; ++trial) {
    const int64_t ih = side(rng), iw = side(rng), oh = side(rng), ow = side(rng);
    const torch::Tensor img = random_image(ih, iw, rng);
    const torch::Tensor got = model::resize_bicubic_pil(img, oh, ow);
    ASSERT_TRUE(got.equal(reference_resize(img, oh, ow)))
        << ih << "x" << iw << " -> " << oh << "x" << ow << " max diff "
        << max_abs_diff(got, reference_resize(img, oh, ow));
  }
  // Strong downscale (wide antialias footprint) and strong upscale.
  const torch::Tensor big = random_image(230, 310, rng);
  EXPECT_TRUE(model::resize_bicubic_pil(big, 11, 17).equal(reference_resize(big, 11, 17)));
  EXPECT_TRUE(model::resize_bicubic_pil(big, 64, 96).equal(reference_resize(big, 64, 96)));
  const torch::Tensor tiny = random_image(3, 5, rng);
  EXPECT_TRUE(model::resize_bicubic_pil(tiny, 150, 200).equal(reference_resize(tiny, 150, 200)));
  // Same size is an exact copy (both passes skipped), not an alias.
  const torch::Tensor same = model::resize_bicubic_pil(tiny, 3, 5);
  EXPECT_TRUE(same.equal(tiny));
  EXPECT_NE(same.data_ptr(), tiny.data_ptr());
}

TEST(ResizeTorch, CloseToPilButNotIdentical) {
  const torch::Tensor src = model::load_rgb_image(kDir + "/src_pattern.png");
  const torch::Tensor pil = model::resize_bicubic_pil(src, 20, 33);
  const torch::Tensor tch = model::resize_bicubic_torch(src, 20, 33);
  ASSERT_EQ(tch.sizes(), pil.sizes());
  ASSERT_EQ(tch.scalar_type(), torch::kUInt8);
  const int diff = max_abs_diff(pil, tch);
  EXPECT_GT(diff, 0);   // a different algorithm (float, no uint8 between passes) ...
  EXPECT_LE(diff, 40);  // ... computing the same antialiased cubic
  const double mean = (pil.to(torch::kFloat64) - tch.to(torch::kFloat64)).abs().mean().item<double>();
  EXPECT_LT(mean, 2.0);
  // Same size: antialiased bicubic at scale 1 is the identity.
  EXPECT_TRUE(model::resize_bicubic_torch(src, 61, 97).equal(src));
}

TEST(Pipeline, PassthroughPatchOrderAndConcatenation) {
  coordexp::config::PreprocessOptions opts;
  opts.min_pixels = 1024;
  opts.max_pixels = 8192;
  const model::ImageProcessorConfig cfg;  // Qwen3-VL values
  std::mt19937 rng(11);

  for (const char* mode : {"pil", "torch"}) {
    opts.resize_mode = mode;
    const model::ImagePreprocessor pre(cfg, opts);
    // 64x96 satisfies smart_resize (area 6144 within [1024, 8192]): never resampled.
    const torch::Tensor on_grid = random_image(64, 96, rng);
    const torch::Tensor resized = pre.resize(on_grid);
    EXPECT_EQ(resized.data_ptr(), on_grid.data_ptr()) << mode;

    const torch::Tensor off_grid = random_image(50, 70, rng);  // -> 64x64 (round 1.56, 2.19)
    const model::PreprocessedImages out = pre({on_grid, off_grid}, {"a.png", "b.png"});
    ASSERT_EQ(out.images.size(), 2u);
    EXPECT_EQ(out.images[0].resized, (model::ImageSize{64, 96}));
    EXPECT_EQ(out.images[1].original, (model::ImageSize{50, 70}));
    EXPECT_EQ(out.images[1].resized, (model::ImageSize{64, 64}));
    EXPECT_EQ(out.images[0].num_image_tokens, 6);
    EXPECT_EQ(out.images[1].num_image_tokens, 4);
    EXPECT_TRUE(out.image_grid_thw.equal(torch::tensor({1, 4, 6, 1, 4, 4}, torch::kInt64).reshape({2, 3})));
    ASSERT_EQ(out.pixel_values.sizes(), (std::vector<int64_t>{24 + 16, 1536}));
    ASSERT_EQ(out.pixel_values.scalar_type(), torch::kFloat32);

    // Spec 6.3 step 5 by index: patch row n = (block row, block col, row in block, col in block);
    // entry ((ch*2 + t)*16 + y)*16 + x = normalised pixel (r*16 + y, q*16 + x) of channel ch.
    auto pv = out.pixel_values.accessor<float, 2>();
    auto img = on_grid.accessor<uint8_t, 3>();
    const int64_t gh = 4, gw = 6;
    int64_t n = 0;
    for (int64_t br = 0; br < gh / 2; ++br)
      for (int64_t bc = 0; bc < gw / 2; ++bc)
        for (int64_t ir = 0; ir < 2; ++ir)
          for (int64_t ic = 0; ic < 2; ++ic, ++n) {
            const int64_t r = br * 2 + ir, q = bc * 2 + ic;
            for (int64_t ch = 0; ch < 3; ++ch)
              for (int64_t t = 0; t < 2; ++t)
                for (int64_t y = 0; y < 16; y += 5)
                  for (int64_t x = 0; x < 16; x += 3) {
                    const float expect =
                        (static_cast<float>(img[r * 16 + y][q * 16 + x][ch] * (1.0 / 255.0)) - 0.5f) / 0.5f;
                    ASSERT_EQ(pv[n][((ch * 2 + t) * 16 + y) * 16 + x], expect)
                        << mode << " n=" << n << " ch=" << ch << " t=" << t << " y=" << y << " x=" << x;
                  }
          }
    // The second image's rows follow the first's and equal a separate run on it alone.
    const model::PreprocessedImages alone = pre({off_grid});
    EXPECT_TRUE(out.pixel_values.slice(0, 24).equal(alone.pixel_values));
  }
  const model::ImagePreprocessor pil(cfg, {});
  const model::PreprocessedImages none = pil({});
  EXPECT_EQ(none.pixel_values.sizes(), (std::vector<int64_t>{0, 1536}));
  EXPECT_EQ(none.image_grid_thw.sizes(), (std::vector<int64_t>{0, 3}));
}

TEST(Pipeline, DownscaleMatchesHfSlowProcessorBitExact) {
  // qwen3vl-tiny-a/image.png (75x100) with max_pixels 2048 -> 32x32: a downscale on both axes.
  const auto refs = coordexp::util::SafetensorsFile::open(kDir + "/pillow_refs.safetensors");
  coordexp::config::PreprocessOptions opts;
  opts.min_pixels = 1024;
  opts.max_pixels = 2048;
  const auto pre = model::ImagePreprocessor::from_model_dir(COORDEXP_TEST_DATA_DIR "/qwen3vl-tiny-a", opts);
  const torch::Tensor img = model::load_rgb_image(COORDEXP_TEST_DATA_DIR "/qwen3vl-tiny-a/image.png");
  const torch::Tensor resized = pre.resize(img);
  const torch::Tensor expected = refs->tensor("pipeline/resized");
  EXPECT_TRUE(resized.equal(expected)) << max_abs_diff(resized, expected);
  EXPECT_TRUE(resized.equal(reference_resize(img, 32, 32)));
  const model::PreprocessedImages out = pre({img});
  EXPECT_TRUE(out.pixel_values.equal(refs->tensor("pipeline/pixel_values")))
      << (out.pixel_values - refs->tensor("pipeline/pixel_values")).abs().max().item<float>();
  EXPECT_TRUE(out.image_grid_thw.equal(torch::tensor({1, 2, 2}, torch::kInt64).reshape({1, 3})));
}

TEST(Pipeline, ErrorsNameTheImage) {
  const model::ImageProcessorConfig cfg;
  const model::ImagePreprocessor pre(cfg, {});
  const torch::Tensor sliver = torch::zeros({2, 500, 3}, torch::kUInt8);  // aspect 250
  try {
    pre({sliver}, {"data/sliver.png"});
    ADD_FAILURE() << "no error";
  } catch (const coordexp::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("data/sliver.png"), std::string::npos) << e.what();
  }
  model::ImageProcessorConfig no_resize;
  no_resize.do_resize = false;
  const model::ImagePreprocessor fixed(no_resize, {});
  EXPECT_THROW(fixed({torch::zeros({50, 64, 3}, torch::kUInt8)}), coordexp::DataError);
  EXPECT_EQ(fixed({torch::zeros({64, 32, 3}, torch::kUInt8)}).pixel_values.size(0), 8);
}

}  // namespace
