// Preprocessing parity against the qwen3vl-tiny-a goldens (fixture README step 2): image.png ->
// resized_image (exact), pixel_values (bit-exact float32), image_grid_thw (exact), in-process.
// Also pins the torch resize mode's measured distance from the Pillow golden (docs/preprocessing.md)
// and checks the `coordexp-train preprocess` debug command end to end (output file, exit codes).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "coordexp/model/vision_preprocess.h"
#include "coordexp/util/safetensors.h"

namespace {

namespace model = coordexp::model;

const std::string kFixture = COORDEXP_TEST_DATA_DIR "/qwen3vl-tiny-a";

TEST(PreprocessParity, FixtureImageMatchesGoldensExactly) {
  const auto golden = coordexp::util::SafetensorsFile::open(kFixture + "/golden.safetensors");
  const auto pre = model::ImagePreprocessor::from_model_dir(kFixture, {});
  const torch::Tensor img = model::load_rgb_image(kFixture + "/image.png");
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{75, 100, 3}));

  const torch::Tensor resized = pre.resize(img, "image.png");
  const torch::Tensor golden_resized = golden->tensor("resized_image");
  ASSERT_EQ(resized.sizes(), golden_resized.sizes());
  EXPECT_EQ(resized.ne(golden_resized).sum().item<int64_t>(), 0);

  const model::PreprocessedImages out = pre({img}, {"image.png"});
  const torch::Tensor golden_pv = golden->tensor("pixel_values");
  ASSERT_EQ(out.pixel_values.sizes(), golden_pv.sizes());
  ASSERT_EQ(out.pixel_values.scalar_type(), torch::kFloat32);
  // Bit-exact: equal() compares values; float32 equality of every element is bit equality here
  // (no NaNs, and -0 cannot arise from (x - 0.5) / 0.5 with x a multiple of 1/255).
  EXPECT_TRUE(out.pixel_values.equal(golden_pv))
      << "max abs diff " << (out.pixel_values - golden_pv).abs().max().item<float>();
  EXPECT_TRUE(out.image_grid_thw.equal(golden->tensor("image_grid_thw"))) << out.image_grid_thw;
  ASSERT_EQ(out.images.size(), 1u);
  EXPECT_EQ(out.images[0].resized, (model::ImageSize{224, 320}));
  EXPECT_EQ(out.images[0].num_image_tokens, 70);  // the prompt's <|image_pad|> count

  // The golden resized image is already on the grid: the pipeline takes it unchanged.
  EXPECT_TRUE(pre({golden_resized}).pixel_values.equal(golden_pv));
}

TEST(PreprocessParity, TorchModeDistanceFromPillowGolden) {
  const auto golden = coordexp::util::SafetensorsFile::open(kFixture + "/golden.safetensors");
  coordexp::config::PreprocessOptions opts;
  opts.resize_mode = "torch";
  const auto pre = model::ImagePreprocessor::from_model_dir(kFixture, opts);
  const torch::Tensor resized = pre.resize(model::load_rgb_image(kFixture + "/image.png"));
  const torch::Tensor diff =
      (resized.to(torch::kFloat64) - golden->tensor("resized_image").to(torch::kFloat64)).abs();
  const double max_diff = diff.max().item<double>(), mean_diff = diff.mean().item<double>();
  std::cout << "[ measure  ] torch vs pil on image.png -> 224x320: max " << max_diff << " mean "
            << mean_diff << " differing values " << diff.gt(0).sum().item<int64_t>() << " of "
            << diff.numel() << "\n";
  // The fixture README measured max 24, mean 0.1424 for torch's float antialiased bicubic.
  EXPECT_EQ(max_diff, 24.0);
  EXPECT_NEAR(mean_diff, 0.1424, 5e-5);

  // A downscale (max_pixels 2048 -> 32x32): the two modes again differ only slightly.
  opts.min_pixels = 1024;
  opts.max_pixels = 2048;
  const auto img = model::load_rgb_image(kFixture + "/image.png");
  const torch::Tensor down_torch = model::ImagePreprocessor::from_model_dir(kFixture, opts).resize(img);
  opts.resize_mode = "pil";
  const torch::Tensor down_pil = model::ImagePreprocessor::from_model_dir(kFixture, opts).resize(img);
  const torch::Tensor down = (down_torch.to(torch::kFloat64) - down_pil.to(torch::kFloat64)).abs();
  std::cout << "[ measure  ] torch vs pil on image.png -> 32x32: max " << down.max().item<double>()
            << " mean " << down.mean().item<double>() << " differing values " << down.gt(0).sum().item<int64_t>()
            << " of " << down.numel() << "\n";
  EXPECT_EQ(down.max().item<double>(), 1.0);  // measured: the sawtooth's hard edges are averaged away
  EXPECT_NEAR(down.mean().item<double>(), 0.0687, 1e-4);
}

// Runs coordexp-train with `args`; returns the exit code and fills `output` with stdout+stderr.
int run_train_binary(const std::string& args, std::string& output) {
  const std::string log = (std::filesystem::temp_directory_path() /
                           ("coordexp_preprocess_cli_" + std::to_string(::getpid()) + ".log")).string();
  const int status = std::system((std::string(COORDEXP_TRAIN_BIN) + " " + args + " > " + log + " 2>&1").c_str());
  std::ifstream in(log);
  output.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::filesystem::remove(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(PreprocessParity, DebugCommandWritesGoldenTensors) {
  const auto dir = std::filesystem::temp_directory_path() / ("coordexp_preprocess_cli_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string out_file = (dir / "pv.safetensors").string();
  const std::string image = kFixture + "/image.png";
  std::string output;
  ASSERT_EQ(run_train_binary("preprocess --image " + image + " --image " + image + " --model " + kFixture +
                                 " --out " + out_file,
                             output),
            0)
      << output;
  EXPECT_NE(output.find("75x100 -> 224x320"), std::string::npos) << output;
  EXPECT_NE(output.find("70 image tokens"), std::string::npos) << output;

  const auto golden = coordexp::util::SafetensorsFile::open(kFixture + "/golden.safetensors");
  const auto written = coordexp::util::SafetensorsFile::open(out_file);
  const torch::Tensor golden_pv = golden->tensor("pixel_values");
  const torch::Tensor golden_grid = golden->tensor("image_grid_thw");
  EXPECT_TRUE(written->tensor("pixel_values").equal(torch::cat({golden_pv, golden_pv})));
  EXPECT_TRUE(written->tensor("image_grid_thw").equal(torch::cat({golden_grid, golden_grid})));
  EXPECT_EQ(written->metadata().at("resize_mode"), "pil");

  // Errors: a missing image is a runtime error naming it (1); a bad option is a usage error (2).
  const std::string missing = (dir / "missing.png").string();
  EXPECT_EQ(run_train_binary("preprocess --image " + missing + " --model " + kFixture + " --out " + out_file, output), 1);
  EXPECT_NE(output.find(missing), std::string::npos) << output;
  EXPECT_EQ(run_train_binary("preprocess --image " + image + " --model " + kFixture + " --out " + out_file +
                                 " --resize-mode cubic",
                             output),
            2);
  EXPECT_NE(output.find("resize_mode"), std::string::npos) << output;
  std::filesystem::remove_all(dir);
}

}  // namespace
