// `coordexp-train preprocess`: runs the Qwen3-VL image preprocessing on image files with a model's
// preprocessor_config.json and writes pixel_values + image_grid_thw to safetensors (debugging and
// parity checks against Hugging Face). It does not tokenize or run the model.
#include <spdlog/spdlog.h>

#include <iostream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "coordexp/config/sections/preprocess.h"
#include "coordexp/model/vision_preprocess.h"
#include "coordexp/util/safetensors.h"

namespace coordexp::apps {
namespace {

struct PreprocessArgs {
  std::vector<std::string> images;
  std::string model_dir;
  std::string out;
  config::PreprocessOptions options;
};

int run_preprocess(const PreprocessArgs& a) {
  a.options.validate();
  const auto pre = model::ImagePreprocessor::from_model_dir(a.model_dir, a.options);
  std::vector<torch::Tensor> decoded;
  for (const std::string& path : a.images) decoded.push_back(model::load_rgb_image(path));
  const model::PreprocessedImages out = pre(decoded, a.images);
  for (size_t i = 0; i < a.images.size(); ++i) {
    const model::ImageGeometry& g = out.images[i];
    std::cout << a.images[i] << ": " << g.original.height << "x" << g.original.width << " -> "
              << g.resized.height << "x" << g.resized.width << " (h x w), grid_thw " << g.grid_thw[0] << "x"
              << g.grid_thw[1] << "x" << g.grid_thw[2] << ", " << g.num_image_tokens << " image tokens\n";
  }
  util::write_safetensors(a.out, {{"pixel_values", out.pixel_values}, {"image_grid_thw", out.image_grid_thw}},
                          {{"resize_mode", a.options.resize_mode}});
  spdlog::info("wrote {} (pixel_values [{}, {}])", a.out, out.pixel_values.size(0), out.pixel_values.size(1));
  return 0;
}

}  // namespace

CommandRegistration add_preprocess_command(CLI::App& app, const GlobalFlags&) {
  auto args = std::make_shared<PreprocessArgs>();
  auto* sub = app.add_subcommand(
      "preprocess", "Preprocess images like the Qwen3-VL processor; write pixel_values + image_grid_thw");
  sub->add_option("--image", args->images, "Image file (repeat for several images; rows are concatenated)")
      ->required();
  sub->add_option("--model", args->model_dir, "Model directory holding preprocessor_config.json")->required();
  sub->add_option("--out", args->out, "Output .safetensors file")->required();
  sub->add_option("--resize-mode", args->options.resize_mode,
                  "pil (Pillow bicubic, HF slow processor; default) or torch (LibTorch antialiased bicubic)");
  sub->add_option("--min-pixels", args->options.min_pixels, "Override the smart_resize lower pixel budget (0 = file)");
  sub->add_option("--max-pixels", args->options.max_pixels, "Override the smart_resize upper pixel budget (0 = file)");
  return {sub, [args] { return run_preprocess(*args); }};
}

}  // namespace coordexp::apps
