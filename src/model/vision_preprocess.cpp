// Qwen3-VL image preprocessing: preprocessor_config.json, smart_resize, OpenCV decoding to RGB (EXIF
// orientation applied), the LibTorch resize mode, rescale/normalize, patchify and the ImagePreprocessor pipeline.
// The Pillow-exact resampler lives in pil_resize.cpp. Nothing here knows prompts or tokens.
#include "coordexp/model/vision_preprocess.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "coordexp/model/exif.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::model {
namespace {

using nlohmann::json;

const json* find_key(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

int64_t positive_int(const json& v, const std::string& key, const std::string& file) {
  if (!v.is_number_integer() || v.get<int64_t>() <= 0)
    throw FormatError("'" + key + "' must be a positive integer, got " + v.dump(), file,
                      "fix the value in preprocessor_config.json");
  return v.get<int64_t>();
}

int64_t required_positive_int(const json& obj, const char* key, const std::string& file) {
  const json* v = find_key(obj, key);
  if (!v)
    throw FormatError(std::string("missing key '") + key + "'", file,
                      "Qwen3-VL's preprocessor_config.json sets it (16 / 2 / 2 for patch / temporal / merge)");
  return positive_int(*v, key, file);
}

std::array<double, 3> three_numbers(const json& obj, const char* key, const std::string& file) {
  const json* v = find_key(obj, key);
  if (!v)
    throw FormatError(std::string("missing key '") + key + "'", file,
                      "Qwen3-VL uses [0.5, 0.5, 0.5] for image_mean and image_std");
  if (!v->is_array() || v->size() != 3 ||
      !std::all_of(v->begin(), v->end(), [](const json& e) { return e.is_number(); }))
    throw FormatError(std::string("'") + key + "' must be a list of 3 numbers, got " + v->dump(), file);
  return {(*v)[0].get<double>(), (*v)[1].get<double>(), (*v)[2].get<double>()};
}

bool optional_bool(const json& obj, const char* key, bool fallback, const std::string& file) {
  const json* v = find_key(obj, key);
  if (!v) return fallback;
  if (!v->is_boolean())
    throw FormatError(std::string("'") + key + "' must be true or false, got " + v->dump(), file);
  return v->get<bool>();
}

// Pillow's integer alpha_composite (HF convert_to_rgb) of one channel value `v` with alpha `a` over
// an opaque white background: coef1 = a*255*255*128 / (255*255) = 128a, rounded /255 via shifts.
uint8_t composite_over_white(uint32_t v, uint32_t a) {
  constexpr uint32_t kBits = 7;
  const uint32_t coef1 = a << kBits;
  const uint32_t coef2 = (255u << kBits) - coef1;
  const uint32_t tmp = v * coef1 + 255u * coef2 + (0x80u << kBits);
  return static_cast<uint8_t>((((tmp >> 8) + tmp) >> 8) >> kBits);
}

// 8-bit (or 16-bit) 1/3/4-channel OpenCV image -> uint8 RGB [H, W, 3].
torch::Tensor mat_to_rgb(const cv::Mat& decoded, const std::string& name) {
  cv::Mat img8;
  switch (decoded.depth()) {
    case CV_8U:
      img8 = decoded;
      break;
    case CV_16U: {  // keep the high byte, as Pillow's 16-bit PNG unpackers do
      const int ch = decoded.channels();
      img8.create(decoded.size(), CV_MAKETYPE(CV_8U, ch));
      for (int y = 0; y < decoded.rows; ++y) {
        const uint16_t* src = decoded.ptr<uint16_t>(y);
        uint8_t* dst = img8.ptr<uint8_t>(y);
        for (int i = 0; i < decoded.cols * ch; ++i) dst[i] = static_cast<uint8_t>(src[i] >> 8);
      }
      break;
    }
    default:
      throw DataError("unsupported pixel depth (OpenCV depth " + std::to_string(decoded.depth()) + ")",
                      name, "convert the image to 8-bit PNG or JPEG");
  }
  const int64_t h = img8.rows, w = img8.cols;
  torch::Tensor out = torch::empty({h, w, 3}, torch::kUInt8);
  uint8_t* dst = out.data_ptr<uint8_t>();
  const int ch = img8.channels();
  if (ch != 1 && ch != 3 && ch != 4)
    throw DataError("unsupported channel count " + std::to_string(ch), name,
                    "convert the image to RGB, RGBA or grayscale");
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* src = img8.ptr<uint8_t>(static_cast<int>(y));
    uint8_t* row = dst + y * w * 3;
    for (int64_t x = 0; x < w; ++x) {
      if (ch == 1) {
        row[x * 3] = row[x * 3 + 1] = row[x * 3 + 2] = src[x];
      } else if (ch == 3) {  // OpenCV order is BGR
        row[x * 3 + 0] = src[x * 3 + 2];
        row[x * 3 + 1] = src[x * 3 + 1];
        row[x * 3 + 2] = src[x * 3 + 0];
      } else {  // BGRA
        const uint32_t a = src[x * 4 + 3];
        row[x * 3 + 0] = composite_over_white(src[x * 4 + 2], a);
        row[x * 3 + 1] = composite_over_white(src[x * 4 + 1], a);
        row[x * 3 + 2] = composite_over_white(src[x * 4 + 0], a);
      }
    }
  }
  return out;
}

void check_rgb(const torch::Tensor& t, const char* fn) {
  COORDEXP_CHECK(t.defined() && t.dim() == 3 && t.size(2) == 3 && t.scalar_type() == torch::kUInt8,
                 "in " << fn << ": expected uint8 [H, W, 3]");
}

}  // namespace

// ------------------------------------------------------------------ preprocessor_config.json

ImageProcessorConfig parse_image_processor_config(const std::string& json_text, const std::string& file) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw FormatError(std::string("invalid JSON: ") + e.what(), file);
  }
  if (!j.is_object()) throw FormatError("top level must be a JSON object", file);

  ImageProcessorConfig cfg;
  const json* min_px = nullptr;
  const json* max_px = nullptr;
  std::string min_key, max_key;
  if (const json* size = find_key(j, "size")) {
    if (!size->is_object()) throw FormatError("'size' must be an object, got " + size->dump(), file);
    for (auto [lo, hi] : {std::pair{"shortest_edge", "longest_edge"}, std::pair{"min_pixels", "max_pixels"}}) {
      if (!min_px && find_key(*size, lo)) { min_px = find_key(*size, lo); min_key = std::string("size.") + lo; }
      if (!max_px && find_key(*size, hi)) { max_px = find_key(*size, hi); max_key = std::string("size.") + hi; }
    }
  }
  // HF: top-level min_pixels / max_pixels override size (backward compatibility with Qwen2-VL files).
  if (const json* v = find_key(j, "min_pixels")) { min_px = v; min_key = "min_pixels"; }
  if (const json* v = find_key(j, "max_pixels")) { max_px = v; max_key = "max_pixels"; }
  if (!min_px || !max_px)
    throw FormatError(std::string("missing pixel budget '") + (min_px ? "size.longest_edge" : "size.shortest_edge") + "'",
                      file, "Qwen3-VL sets size {shortest_edge: 65536, longest_edge: 16777216}");
  cfg.min_pixels = positive_int(*min_px, min_key, file);
  cfg.max_pixels = positive_int(*max_px, max_key, file);
  if (cfg.min_pixels > cfg.max_pixels)
    throw FormatError(min_key + " (" + std::to_string(cfg.min_pixels) + ") exceeds " + max_key + " (" +
                          std::to_string(cfg.max_pixels) + ")", file);

  cfg.patch_size = required_positive_int(j, "patch_size", file);
  cfg.temporal_patch_size = required_positive_int(j, "temporal_patch_size", file);
  cfg.merge_size = required_positive_int(j, "merge_size", file);
  cfg.image_mean = three_numbers(j, "image_mean", file);
  cfg.image_std = three_numbers(j, "image_std", file);
  for (double s : cfg.image_std)
    if (!(s != 0.0) || !std::isfinite(s))
      throw FormatError("'image_std' entries must be finite and non-zero", file);
  if (const json* v = find_key(j, "rescale_factor")) {
    if (!v->is_number() || !(v->get<double>() > 0.0))
      throw FormatError("'rescale_factor' must be a positive number, got " + v->dump(), file);
    cfg.rescale_factor = v->get<double>();
  }
  cfg.do_resize = optional_bool(j, "do_resize", true, file);
  cfg.do_rescale = optional_bool(j, "do_rescale", true, file);
  cfg.do_normalize = optional_bool(j, "do_normalize", true, file);
  if (const json* v = find_key(j, "resample")) {
    if (!v->is_number_integer() || v->get<int64_t>() != 3)
      throw FormatError("'resample' " + v->dump() + " is not supported", file,
                        "only 3 (bicubic), the Qwen-VL setting, is implemented");
  }
  return cfg;
}

ImageProcessorConfig load_image_processor_config(const std::string& model_dir_or_file) {
  std::filesystem::path p(model_dir_or_file);
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec) || p.extension() != ".json") p /= "preprocessor_config.json";
  if (!std::filesystem::is_regular_file(p, ec))
    throw FormatError("preprocessor_config.json not found", p.string(),
                      "point --model at a Hugging Face Qwen3-VL model directory");
  return parse_image_processor_config(util::read_file(p.string()), p.string());
}

// ------------------------------------------------------------------ smart_resize

ImageSize smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels,
                       int64_t max_pixels, const std::string& where) {
  COORDEXP_CHECK(factor > 0 && min_pixels > 0 && min_pixels <= max_pixels,
                 "smart_resize(factor=" << factor << ", min=" << min_pixels << ", max=" << max_pixels << ")");
  if (height < 1 || width < 1)
    throw DataError("empty image (" + std::to_string(height) + "x" + std::to_string(width) + ")", where);
  const double h = static_cast<double>(height), w = static_cast<double>(width), f = static_cast<double>(factor);
  const double aspect = std::max(h, w) / std::min(h, w);
  if (aspect > 200.0)
    throw DataError("aspect ratio " + std::to_string(aspect) + " of a " + std::to_string(height) + "x" +
                        std::to_string(width) + " image exceeds 200",
                    where, "crop or pad the image (Qwen-VL's smart_resize rejects it too)");
  // Python's round() is half-to-even: nearbyint in the default rounding mode.
  int64_t hb = static_cast<int64_t>(std::nearbyint(h / f)) * factor;
  int64_t wb = static_cast<int64_t>(std::nearbyint(w / f)) * factor;
  // Python ints: products and int/int divisions below are exact or correctly rounded (< 2^53).
  const double area = static_cast<double>(height * width);
  if (hb * wb > max_pixels) {
    const double beta = std::sqrt(area / static_cast<double>(max_pixels));
    hb = std::max(factor, static_cast<int64_t>(std::floor(h / beta / f)) * factor);
    wb = std::max(factor, static_cast<int64_t>(std::floor(w / beta / f)) * factor);
  } else if (hb * wb < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / area);
    hb = static_cast<int64_t>(std::ceil(h * beta / f)) * factor;
    wb = static_cast<int64_t>(std::ceil(w * beta / f)) * factor;
  }
  return {hb, wb};
}

// ------------------------------------------------------------------ decoding

torch::Tensor decode_rgb_image(const uint8_t* bytes, size_t size, const std::string& name) {
  if (size == 0) throw DataError("empty image file", name, "re-create or remove the file");
  if (size > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw DataError("image file larger than 2 GiB", name, "store the image at a smaller size");
  cv::Mat decoded;
  try {
    const cv::Mat buf(1, static_cast<int>(size), CV_8UC1, const_cast<uint8_t*>(bytes));
    // IMREAD_UNCHANGED keeps alpha and 16 bits but ignores EXIF orientation (IMREAD_COLOR would
    // apply it for JPEG only, and loses alpha): the orientation is applied below, for every format.
    decoded = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw DataError(std::string("cannot decode image: ") + e.what(), name,
                    "the file is corrupt or not an image format OpenCV reads (PNG, JPEG, BMP, TIFF, WebP, ...)");
  }
  if (decoded.empty() || decoded.rows < 1 || decoded.cols < 1)
    throw DataError("cannot decode image", name,
                    "the file is corrupt or not an image format OpenCV reads (PNG, JPEG, BMP, TIFF, WebP, ...)");
  return apply_exif_orientation(mat_to_rgb(decoded, name), exif_orientation(bytes, size));
}

torch::Tensor load_rgb_image(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw DataError("image file not found", path, "check the image path (relative paths resolve against the JSONL file)");
  const std::string data = util::read_file(path);
  return decode_rgb_image(reinterpret_cast<const uint8_t*>(data.data()), data.size(), path);
}

// ------------------------------------------------------------------ resampling (torch mode)

torch::Tensor resize_bicubic_torch(const torch::Tensor& rgb_HW3, int64_t out_height, int64_t out_width) {
  check_rgb(rgb_HW3, "resize_bicubic_torch");
  namespace F = torch::nn::functional;
  const torch::Tensor x = rgb_HW3.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32);
  const torch::Tensor y = F::interpolate(x, F::InterpolateFuncOptions()
                                                .size(std::vector<int64_t>{out_height, out_width})
                                                .mode(torch::kBicubic)
                                                .align_corners(false)
                                                .antialias(true));
  // torch.round is half-to-even, like torchvision's float path.
  return y.clamp(0.0, 255.0).round().to(torch::kUInt8).squeeze(0).permute({1, 2, 0}).contiguous();
}

ResizeMode parse_resize_mode(const std::string& name) {
  if (name == "pil") return ResizeMode::kPil;
  if (name == "torch") return ResizeMode::kTorch;
  throw ConfigError("unknown resize mode '" + name + "'", "key preprocess.resize_mode", "use pil or torch");
}

// ------------------------------------------------------------------ rescale, normalize, patchify

torch::Tensor rescale_normalize(const torch::Tensor& rgb_HW3, const ImageProcessorConfig& cfg) {
  check_rgb(rgb_HW3, "rescale_normalize");
  // Every uint8 value maps to one float per channel; a lookup table applies the exact scalar recipe.
  float lut[3][256];
  for (int c = 0; c < 3; ++c) {
    const float mean = static_cast<float>(cfg.image_mean[c]);
    const float stdv = static_cast<float>(cfg.image_std[c]);
    for (int v = 0; v < 256; ++v) {
      float x = cfg.do_rescale ? static_cast<float>(v * cfg.rescale_factor) : static_cast<float>(v);
      if (cfg.do_normalize) x = (x - mean) / stdv;
      lut[c][v] = x;
    }
  }
  const torch::Tensor in = rgb_HW3.to(torch::kCPU).contiguous();
  const int64_t h = in.size(0), w = in.size(1), hw = h * w;
  torch::Tensor out = torch::empty({3, h, w}, torch::kFloat32);
  const uint8_t* src = in.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  for (int64_t i = 0; i < hw; ++i)
    for (int c = 0; c < 3; ++c) dst[c * hw + i] = lut[c][src[i * 3 + c]];
  return out;
}

torch::Tensor patchify(const torch::Tensor& image_CHW, const ImageProcessorConfig& cfg) {
  COORDEXP_CHECK(image_CHW.dim() == 3 && image_CHW.size(0) == 3 && image_CHW.scalar_type() == torch::kFloat32,
                 "patchify: expected float32 [3, H, W]");
  const int64_t p = cfg.patch_size, m = cfg.merge_size, tp = cfg.temporal_patch_size;
  const int64_t h = image_CHW.size(1), w = image_CHW.size(2);
  COORDEXP_CHECK(h % (p * m) == 0 && w % (p * m) == 0,
                 "patchify: " << h << "x" << w << " is not a multiple of " << p * m);
  const int64_t gh = h / p, gw = w / p, row_len = 3 * tp * p * p;
  // HF: view [gt=1, tp, C, gh/m, m, p, gw/m, m, p] of the repeated frame, permute to
  // [gt, gh/m, gw/m, m, m, C, tp, p, p]. Written as one pass that copies p-pixel runs, so the large
  // intermediate copies of reshape/permute are never made.
  const torch::Tensor img = image_CHW.to(torch::kCPU).contiguous();
  const float* src = img.data_ptr<float>();
  torch::Tensor out = torch::empty({gh * gw, row_len}, torch::kFloat32);
  float* dst = out.data_ptr<float>();
  const int64_t blocks_per_row = gw / m;
  at::parallel_for(0, gh * gw, 64, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t block = n / (m * m), in_block = n % (m * m);
      const int64_t r = (block / blocks_per_row) * m + in_block / m;  // patch row in the grid
      const int64_t q = (block % blocks_per_row) * m + in_block % m;  // patch column in the grid
      float* row = dst + n * row_len;
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t t = 0; t < tp; ++t)  // every temporal slot holds the same still frame
          for (int64_t y = 0; y < p; ++y)
            std::copy_n(src + (c * h + r * p + y) * w + q * p, p, row + ((c * tp + t) * p + y) * p);
    }
  });
  return out;
}

// ------------------------------------------------------------------ pipeline

ImagePreprocessor::ImagePreprocessor(ImageProcessorConfig cfg, const config::PreprocessOptions& opts)
    : cfg_(cfg), mode_(parse_resize_mode(opts.resize_mode)) {
  opts.validate();
  if (opts.min_pixels > 0) cfg_.min_pixels = opts.min_pixels;
  if (opts.max_pixels > 0) cfg_.max_pixels = opts.max_pixels;
  if (cfg_.min_pixels > cfg_.max_pixels)
    throw ConfigError("effective min_pixels " + std::to_string(cfg_.min_pixels) + " exceeds max_pixels " +
                          std::to_string(cfg_.max_pixels),
                      "key preprocess.min_pixels / preprocess.max_pixels",
                      "an override conflicts with preprocessor_config.json; set both overrides");
}

ImagePreprocessor ImagePreprocessor::from_model_dir(const std::string& model_dir,
                                                    const config::PreprocessOptions& opts) {
  return ImagePreprocessor(load_image_processor_config(model_dir), opts);
}

ImageGeometry ImagePreprocessor::plan(ImageSize original, const std::string& where) const {
  ImageGeometry g;
  g.original = original;
  if (cfg_.do_resize) {
    g.resized = smart_resize(original.height, original.width, cfg_.factor(), cfg_.min_pixels,
                             cfg_.max_pixels, where);
  } else {
    g.resized = original;
    if (original.height % cfg_.factor() != 0 || original.width % cfg_.factor() != 0)
      throw DataError("image " + std::to_string(original.height) + "x" + std::to_string(original.width) +
                          " is not a multiple of " + std::to_string(cfg_.factor()) + " and do_resize is false",
                      where, "resize the image offline or enable do_resize in preprocessor_config.json");
  }
  g.grid_thw = {1, g.resized.height / cfg_.patch_size, g.resized.width / cfg_.patch_size};
  g.num_patches = g.grid_thw[0] * g.grid_thw[1] * g.grid_thw[2];
  g.num_image_tokens = g.num_patches / (cfg_.merge_size * cfg_.merge_size);
  return g;
}

torch::Tensor ImagePreprocessor::resize(const torch::Tensor& rgb_HW3, const std::string& where) const {
  check_rgb(rgb_HW3, "ImagePreprocessor::resize");
  const ImageGeometry g = plan({rgb_HW3.size(0), rgb_HW3.size(1)}, where);
  if (g.resized == g.original) return rgb_HW3;  // already on the grid: never resample
  return mode_ == ResizeMode::kPil ? resize_bicubic_pil(rgb_HW3, g.resized.height, g.resized.width)
                                   : resize_bicubic_torch(rgb_HW3, g.resized.height, g.resized.width);
}

PreprocessedImages ImagePreprocessor::operator()(const std::vector<torch::Tensor>& rgb_images,
                                                 const std::vector<std::string>& names) const {
  COORDEXP_CHECK(names.empty() || names.size() == rgb_images.size(), "one name per image");
  PreprocessedImages out;
  std::vector<torch::Tensor> rows;
  std::vector<int64_t> grids;
  for (size_t i = 0; i < rgb_images.size(); ++i) {
    const std::string where = names.empty() ? "image " + std::to_string(i) : names[i];
    const torch::Tensor& img = rgb_images[i];
    check_rgb(img, "ImagePreprocessor");
    const ImageGeometry g = plan({img.size(0), img.size(1)}, where);
    rows.push_back(patchify(rescale_normalize(resize(img, where), cfg_), cfg_));
    grids.insert(grids.end(), g.grid_thw.begin(), g.grid_thw.end());
    out.images.push_back(g);
  }
  const int64_t n = static_cast<int64_t>(rgb_images.size());
  out.pixel_values = n > 0 ? torch::cat(rows, 0) : torch::empty({0, cfg_.patch_dim()}, torch::kFloat32);
  out.image_grid_thw = torch::tensor(grids, torch::kInt64).reshape({n, 3});
  return out;
}

}  // namespace coordexp::model
