// Pillow's Image.resize(BICUBIC) for uint8 RGB, reproduced byte for byte from the algorithm's
// definition (Pillow's Resample.c semantics, as described in the qwen3vl-tiny-a fixture README):
// separable passes (horizontal first), per-axis cubic weights (a = -0.5) widened by the downscale
// factor, normalised in double, quantised to 22-bit fixed point, uint8 output of every pass.
// It does not handle other filters, modes or boxes (Qwen's processors only use full-image bicubic).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "coordexp/model/vision_preprocess.h"
#include "coordexp/util/error.h"

namespace coordexp::model {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's fixed point for 8-bit images: 22 bits
constexpr double kCubicSupport = 2.0;       // the cubic kernel is zero outside |x| < 2

// Keys' cubic convolution kernel with a = -0.5 (Pillow's bicubic_filter).
double cubic_kernel(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Fixed-point taps for one output coordinate along one axis: input indices [first, first+count).
struct AxisTaps {
  std::vector<int64_t> first;
  std::vector<int64_t> count;
  std::vector<int64_t> offset;   // start of this output's taps in `weights`
  std::vector<int32_t> weights;  // round-half-away-from-zero(k * 2^22) of normalised weights
};

AxisTaps compute_axis_taps(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);  // antialias: widen the kernel when shrinking
  const double support = kCubicSupport * filterscale;
  const double inv_filterscale = 1.0 / filterscale;  // Pillow multiplies by the reciprocal

  AxisTaps taps;
  taps.first.resize(out_size);
  taps.count.resize(out_size);
  taps.offset.resize(out_size);
  std::vector<double> k;
  for (int64_t i = 0; i < out_size; ++i) {
    const double center = (static_cast<double>(i) + 0.5) * scale;
    // C casts truncate toward zero; the clamp makes that equal to floor for the lower bound.
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size);
    const int64_t n = hi - lo;
    COORDEXP_CHECK(n > 0, "empty bicubic footprint at output " << i);
    k.assign(static_cast<size_t>(n), 0.0);
    double sum = 0.0;
    for (int64_t x = 0; x < n; ++x) {
      k[x] = cubic_kernel((static_cast<double>(x + lo) - center + 0.5) * inv_filterscale);
      sum += k[x];
    }
    taps.first[i] = lo;
    taps.count[i] = n;
    taps.offset[i] = static_cast<int64_t>(taps.weights.size());
    for (int64_t x = 0; x < n; ++x) {
      const double w = sum != 0.0 ? k[x] / sum : k[x];
      const double fixed = w * static_cast<double>(1 << kPrecisionBits);
      taps.weights.push_back(static_cast<int32_t>(w < 0.0 ? fixed - 0.5 : fixed + 0.5));
    }
  }
  return taps;
}

// Pillow's clip8: rounding bias already added; negative -> 0, >= 256 -> 255.
inline uint8_t fixed_to_u8(int64_t acc) {
  if (acc <= 0) return 0;
  return static_cast<uint8_t>(std::min<int64_t>(acc >> kPrecisionBits, 255));
}

constexpr int64_t kRoundingBias = int64_t{1} << (kPrecisionBits - 1);

// [h, in_w, 3] -> [h, out_w, 3]
void resample_rows(const uint8_t* in, int64_t h, int64_t in_w, uint8_t* out, int64_t out_w) {
  const AxisTaps taps = compute_axis_taps(in_w, out_w);
  at::parallel_for(0, h, 16, [&](int64_t y0, int64_t y1) {
    for (int64_t y = y0; y < y1; ++y) {
      const uint8_t* row = in + y * in_w * 3;
      uint8_t* dst = out + y * out_w * 3;
      for (int64_t x = 0; x < out_w; ++x) {
        const int32_t* w = taps.weights.data() + taps.offset[x];
        const uint8_t* src = row + taps.first[x] * 3;
        int64_t acc[3] = {kRoundingBias, kRoundingBias, kRoundingBias};
        for (int64_t t = 0; t < taps.count[x]; ++t)
          for (int c = 0; c < 3; ++c) acc[c] += int64_t{src[t * 3 + c]} * w[t];
        for (int c = 0; c < 3; ++c) dst[x * 3 + c] = fixed_to_u8(acc[c]);
      }
    }
  });
}

// [in_h, w, 3] -> [out_h, w, 3]
void resample_cols(const uint8_t* in, int64_t in_h, int64_t w, uint8_t* out, int64_t out_h) {
  const AxisTaps taps = compute_axis_taps(in_h, out_h);
  const int64_t row_len = w * 3;
  at::parallel_for(0, out_h, 16, [&](int64_t y0, int64_t y1) {
    std::vector<int64_t> acc(static_cast<size_t>(row_len));
    for (int64_t y = y0; y < y1; ++y) {
      std::fill(acc.begin(), acc.end(), kRoundingBias);
      const int32_t* wt = taps.weights.data() + taps.offset[y];
      for (int64_t t = 0; t < taps.count[y]; ++t) {
        const uint8_t* src = in + (taps.first[y] + t) * row_len;
        const int64_t k = wt[t];
        for (int64_t j = 0; j < row_len; ++j) acc[j] += int64_t{src[j]} * k;
      }
      uint8_t* dst = out + y * row_len;
      for (int64_t j = 0; j < row_len; ++j) dst[j] = fixed_to_u8(acc[j]);
    }
  });
}

}  // namespace

torch::Tensor resize_bicubic_pil(const torch::Tensor& rgb_HW3, int64_t out_height, int64_t out_width) {
  COORDEXP_CHECK(rgb_HW3.dim() == 3 && rgb_HW3.size(2) == 3 && rgb_HW3.scalar_type() == torch::kUInt8,
                 "expected uint8 [H, W, 3], got " << rgb_HW3.sizes() << " " << rgb_HW3.scalar_type());
  COORDEXP_CHECK(out_height > 0 && out_width > 0, "bad output size " << out_height << "x" << out_width);
  const torch::Tensor in = rgb_HW3.to(torch::kCPU).contiguous();
  const int64_t in_h = in.size(0), in_w = in.size(1);
  COORDEXP_CHECK(in_h > 0 && in_w > 0, "empty input image");

  torch::Tensor current = in;
  if (out_width != in_w) {  // Pillow skips a pass whose axis keeps its size
    torch::Tensor next = torch::empty({in_h, out_width, 3}, torch::kUInt8);
    resample_rows(current.data_ptr<uint8_t>(), in_h, in_w, next.data_ptr<uint8_t>(), out_width);
    current = next;
  }
  if (out_height != in_h) {
    torch::Tensor next = torch::empty({out_height, out_width, 3}, torch::kUInt8);
    resample_cols(current.data_ptr<uint8_t>(), in_h, out_width, next.data_ptr<uint8_t>(), out_height);
    current = next;
  }
  return current.data_ptr() == rgb_HW3.data_ptr() ? current.clone() : current;
}

}  // namespace coordexp::model
