// Options of the Qwen3-VL image preprocessor (section `preprocess`): which resampler reproduces
// which Hugging Face processor, and optional pixel-budget overrides of preprocessor_config.json.
// Only the option values and their validation live here; the pixel work is in
// include/coordexp/model/vision_preprocess.h.
#pragma once

#include <cstdint>
#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct PreprocessOptions {
  // Resampler used when smart_resize changes the image size:
  //   pil   = Pillow's antialiased fixed-point bicubic, byte for byte (HF slow Qwen2VLImageProcessor,
  //           qwen-vl-utils); the default because it is bit-reproducible on every machine.
  //   torch = LibTorch's antialiased bicubic in float32, then clamp + round half-to-even (what the HF
  //           fast processor does on GPU); differs from pil by up to tens of levels at hard edges.
  std::string resize_mode = "pil";
  // Lower pixel budget of smart_resize; 0 = take it from preprocessor_config.json.
  int64_t min_pixels = 0;
  // Upper pixel budget of smart_resize; 0 = take it from preprocessor_config.json.
  int64_t max_pixels = 0;

  void validate() const {
    if (resize_mode != "pil" && resize_mode != "torch")
      throw ConfigError("unknown resize mode '" + resize_mode + "'", "key preprocess.resize_mode",
                        "use pil or torch");
    if (min_pixels < 0)
      throw ConfigError("must be >= 0, got " + std::to_string(min_pixels), "key preprocess.min_pixels",
                        "0 takes the value from preprocessor_config.json");
    if (max_pixels < 0)
      throw ConfigError("must be >= 0, got " + std::to_string(max_pixels), "key preprocess.max_pixels",
                        "0 takes the value from preprocessor_config.json");
    if (min_pixels > 0 && max_pixels > 0 && min_pixels > max_pixels)
      throw ConfigError("min_pixels " + std::to_string(min_pixels) + " exceeds max_pixels " +
                            std::to_string(max_pixels),
                        "key preprocess.min_pixels", "lower min_pixels or raise max_pixels");
  }
};

template <class V>
void visit_fields(V& v, PreprocessOptions& o) {
  v.field(Field("resize_mode", "resampler when smart_resize changes the size: pil (Pillow bicubic, "
                               "byte-exact HF slow processor) or torch (LibTorch antialiased bicubic)")
              .choices({"pil", "torch"}),
          o.resize_mode);
  v.field(Field("min_pixels", "smart_resize lower pixel budget; 0 = from preprocessor_config.json")
              .min(0),
          o.min_pixels);
  v.field(Field("max_pixels", "smart_resize upper pixel budget; 0 = from preprocessor_config.json")
              .min(0),
          o.max_pixels);
}

}  // namespace coordexp::config
