// Qwen3-VL image preprocessing (spec section 6): decode to 8-bit RGB, smart_resize, resample (Pillow
// bicubic byte for byte, or LibTorch antialiased bicubic), rescale + normalize in float32, duplicate
// the frame to the temporal patch and cut patches in the HF order -> pixel_values + image_grid_thw.
// It does not build prompts or tokens; it only reports how many <|image_pad|> tokens each image needs.
// Images are uint8 tensors [H, W, 3] (RGB, row-major, contiguous) throughout.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "coordexp/config/sections/preprocess.h"

namespace coordexp::model {

// The subset of a Hugging Face preprocessor_config.json that Qwen3-VL images use.
struct ImageProcessorConfig {
  int64_t min_pixels = 65536;        // size.shortest_edge (or min_pixels): smart_resize lower budget
  int64_t max_pixels = 16777216;     // size.longest_edge (or max_pixels): smart_resize upper budget
  int64_t patch_size = 16;           // vision patch side in pixels
  int64_t temporal_patch_size = 2;   // frames per patch; a still image is repeated to fill them
  int64_t merge_size = 2;            // patches merged per side into one LLM token
  std::array<double, 3> image_mean{0.5, 0.5, 0.5};  // per channel, on the [0, 1] scale
  std::array<double, 3> image_std{0.5, 0.5, 0.5};
  double rescale_factor = 1.0 / 255.0;  // uint8 -> [0, 1]
  bool do_resize = true;
  bool do_rescale = true;
  bool do_normalize = true;

  int64_t factor() const { return patch_size * merge_size; }  // smart_resize granularity (32)
  int64_t patch_dim() const { return 3 * temporal_patch_size * patch_size * patch_size; }  // 1536
};

// Parses the JSON text of a preprocessor_config.json; `file` names it in errors (FormatError naming
// the key). Accepts size.{shortest_edge,longest_edge} or size.{min_pixels,max_pixels}; top-level
// min_pixels/max_pixels override them (HF's backward-compatible spelling). resample must be 3
// (bicubic) when present.
ImageProcessorConfig parse_image_processor_config(const std::string& json_text, const std::string& file);
// Reads `model_dir`/preprocessor_config.json (a path ending in .json is read as the file itself).
ImageProcessorConfig load_image_processor_config(const std::string& model_dir_or_file);

struct ImageSize {
  int64_t height = 0;
  int64_t width = 0;
  bool operator==(const ImageSize& o) const { return height == o.height && width == o.width; }
  bool operator!=(const ImageSize& o) const { return !(*this == o); }
};

// HF smart_resize in double with Python's round-half-to-even: both sides multiples of `factor`,
// area within [min_pixels, max_pixels] (the ceil branch may exceed max for extreme shapes, as in HF).
// Throws DataError when a side is < 1 or max/min side ratio > 200; `where` names the image.
ImageSize smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels,
                       int64_t max_pixels, const std::string& where = {});

// Loads an image file into uint8 RGB [H, W, 3]: BGR->RGB, gray/palette -> RGB, alpha composited over
// white exactly like Pillow's alpha_composite (HF convert_to_rgb), 16-bit -> 8-bit by the high byte
// (as Pillow decodes 16-bit PNGs), then EXIF orientation applied (the image as displayed, like
// Hugging Face's load_image / PIL.ImageOps.exif_transpose; exif.h): the one image decode of training,
// infer, generate and visualize. Missing, unreadable or undecodable files throw DataError naming the path.
torch::Tensor load_rgb_image(const std::string& path);
// Same from encoded bytes (PNG/JPEG/...); `name` is used in errors.
torch::Tensor decode_rgb_image(const uint8_t* bytes, size_t size, const std::string& name);

// Pillow Image.resize(BICUBIC) of uint8 RGB [H, W, 3], byte for byte (separable antialiased cubic
// a = -0.5, 22-bit fixed point, horizontal pass first, uint8 between passes, an axis keeping its
// size is not resampled). Returns a new [out_h, out_w, 3] tensor.
torch::Tensor resize_bicubic_pil(const torch::Tensor& rgb_HW3, int64_t out_height, int64_t out_width);
// LibTorch antialiased bicubic (align_corners=false) in float32, clamped to [0, 255], rounded half
// to even, cast to uint8: the float route of HF's fast (torchvision) processor.
torch::Tensor resize_bicubic_torch(const torch::Tensor& rgb_HW3, int64_t out_height, int64_t out_width);

enum class ResizeMode { kPil, kTorch };
// "pil" | "torch"; anything else throws ConfigError naming preprocess.resize_mode.
ResizeMode parse_resize_mode(const std::string& name);

// uint8 RGB [H, W, 3] -> float32 [3, H, W]: x = float(u8 * rescale_factor) (product in double, as
// numpy does), then (x - float(mean)) / float(std) in float32. Either step is skipped when disabled.
torch::Tensor rescale_normalize(const torch::Tensor& rgb_HW3, const ImageProcessorConfig& cfg);

// float32 [3, H, W] (H, W multiples of patch*merge) -> float32 [gh*gw, 3*T*p*p]: the frame repeated T
// times, rows ordered (t, block row, block col, row in block, col in block), each row (c, t, y, x).
torch::Tensor patchify(const torch::Tensor& image_CHW, const ImageProcessorConfig& cfg);

// What preprocessing does to one image.
struct ImageGeometry {
  ImageSize original;           // decoded size
  ImageSize resized;            // after smart_resize (== original when no resample happened)
  std::array<int64_t, 3> grid_thw{0, 0, 0};  // (t, h, w) in patches
  int64_t num_patches = 0;      // rows of pixel_values for this image = t*h*w
  int64_t num_image_tokens = 0; // <|image_pad|> tokens for this image = num_patches / merge^2
};

struct PreprocessedImages {
  torch::Tensor pixel_values;    // float32 [sum of num_patches, 3*T*p*p], images concatenated
  torch::Tensor image_grid_thw;  // int64 [num_images, 3]
  std::vector<ImageGeometry> images;  // one per input image, same order
};

// Turns decoded images into model inputs with one model's preprocessor_config.json and the
// project's preprocess options. Stateless after construction; safe to call from several threads.
class ImagePreprocessor {
 public:
  // Pixel-budget overrides (> 0) replace the file's values; throws ConfigError when the effective
  // min exceeds max.
  ImagePreprocessor(ImageProcessorConfig cfg, const config::PreprocessOptions& opts);
  // Loads `model_dir`/preprocessor_config.json.
  static ImagePreprocessor from_model_dir(const std::string& model_dir,
                                          const config::PreprocessOptions& opts);

  const ImageProcessorConfig& config() const { return cfg_; }
  ResizeMode resize_mode() const { return mode_; }

  // Geometry of an image of this size without touching pixels (token counts for prompt building).
  ImageGeometry plan(ImageSize original, const std::string& where = {}) const;
  // uint8 RGB [H, W, 3] after smart_resize + resample; returned unchanged (same tensor) when the
  // size already satisfies smart_resize.
  torch::Tensor resize(const torch::Tensor& rgb_HW3, const std::string& where = {}) const;
  // Full pipeline for several images (each uint8 RGB [H, W, 3]); `names` (optional, same length)
  // label errors.
  PreprocessedImages operator()(const std::vector<torch::Tensor>& rgb_images,
                                const std::vector<std::string>& names = {}) const;

 private:
  ImageProcessorConfig cfg_;
  ResizeMode mode_;
};

}  // namespace coordexp::model
