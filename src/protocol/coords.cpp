// Pixel <-> normalized <-> norm1000 bin conversions (see include/coordexp/protocol/coords.h).
#include "coordexp/protocol/coords.h"

#include <algorithm>
#include <cmath>

#include "coordexp/util/error.h"

namespace coordexp::protocol {
namespace {

constexpr double kBinTolerance = 1e-9;

int clamp_bin(double k) {
  if (!(k > 0.0)) return 0;  // also maps NaN to 0
  if (k >= kMaxCoordBin) return kMaxCoordBin;
  return static_cast<int>(k);
}

}  // namespace

CoordConvention coord_convention(const config::ProtocolOptions& options) {
  options.validate();
  CoordConvention c;
  c.pixel_extent = options.pixel_extent == "size_minus_one" ? PixelExtent::kSizeMinusOne
                                                            : PixelExtent::kSize;
  c.box_rounding = options.box_rounding == "outward" ? BoxRounding::kOutward : BoxRounding::kRound;
  return c;
}

double pixel_extent(int size_px, PixelExtent extent) {
  return extent == PixelExtent::kSize ? static_cast<double>(size_px)
                                      : static_cast<double>(size_px) - 1.0;
}

double pixel_to_norm(double x_px, int size_px, PixelExtent extent) {
  return x_px / pixel_extent(size_px, extent);
}

double norm_to_pixel(double c, int size_px, PixelExtent extent) {
  return c * pixel_extent(size_px, extent);
}

// std::nearbyint in the default rounding mode rounds half to even.
int norm_to_bin(double c) { return clamp_bin(std::nearbyint(kMaxCoordBin * c)); }
int norm_to_bin_floor(double c) { return clamp_bin(std::floor(kMaxCoordBin * c + kBinTolerance)); }
int norm_to_bin_ceil(double c) { return clamp_bin(std::ceil(kMaxCoordBin * c - kBinTolerance)); }

double bin_to_norm(int k) { return static_cast<double>(k) / kMaxCoordBin; }

double bin_to_pixel(int k, int size_px, PixelExtent extent) {
  return norm_to_pixel(bin_to_norm(k), size_px, extent);
}

CoordValue coord_from_bin(int k) {
  COORDEXP_CHECK(k >= 0 && k <= kMaxCoordBin, "bin " << k);
  return {k, bin_to_norm(k)};
}

std::array<CoordValue, 4> box_from_pixels(const std::array<double, 4>& xyxy_px, int width,
                                          int height, const CoordConvention& convention) {
  std::array<CoordValue, 4> out;
  for (int i = 0; i < 4; ++i) {
    const int size = i % 2 == 0 ? width : height;
    out[i].c_gt = std::clamp(pixel_to_norm(xyxy_px[i], size, convention.pixel_extent), 0.0, 1.0);
  }
  if (convention.box_rounding == BoxRounding::kRound) {
    for (auto& v : out) v.bin = norm_to_bin(v.c_gt);
    return out;
  }
  out[0].bin = norm_to_bin_floor(out[0].c_gt);
  out[1].bin = norm_to_bin_floor(out[1].c_gt);
  out[2].bin = norm_to_bin_ceil(out[2].c_gt);
  out[3].bin = norm_to_bin_ceil(out[3].c_gt);
  // Nudge a collapsed side open by one bin, towards the inside of [0, 999].
  for (int lo = 0; lo < 2; ++lo) {
    CoordValue& a = out[lo];
    CoordValue& b = out[lo + 2];
    if (b.bin > a.bin) continue;
    if (a.bin < kMaxCoordBin) {
      b.bin = a.bin + 1;
    } else {
      a.bin = kMaxCoordBin - 1;
      b.bin = kMaxCoordBin;
    }
  }
  return out;
}

std::array<double, 4> box_to_pixels(const std::array<int, 4>& bins, int width, int height,
                                    const CoordConvention& convention) {
  std::array<double, 4> out;
  for (int i = 0; i < 4; ++i)
    out[i] = bin_to_pixel(std::clamp(bins[i], 0, kMaxCoordBin), i % 2 == 0 ? width : height, convention.pixel_extent);
  return out;
}

std::array<double, 4> norm_box_to_pixels(const std::array<double, 4>& xyxy_norm, int width, int height,
                                         const CoordConvention& convention) {
  std::array<double, 4> out;
  for (int i = 0; i < 4; ++i) {
    const double c = std::isfinite(xyxy_norm[i]) ? std::clamp(xyxy_norm[i], 0.0, 1.0) : 0.0;
    out[i] = norm_to_pixel(c, i % 2 == 0 ? width : height, convention.pixel_extent);
  }
  return out;
}

std::vector<CoordValue> poly_from_pixels(const std::vector<double>& xy_px, int width, int height,
                                         PixelExtent extent) {
  std::vector<CoordValue> out(xy_px.size());
  for (size_t i = 0; i < xy_px.size(); ++i) {
    const int size = i % 2 == 0 ? width : height;
    out[i].c_gt = std::clamp(pixel_to_norm(xy_px[i], size, extent), 0.0, 1.0);
    out[i].bin = norm_to_bin(out[i].c_gt);
  }
  return out;
}

std::vector<double> bins_to_pixels(const std::vector<int>& bins, int width, int height,
                                   PixelExtent extent) {
  std::vector<double> out(bins.size());
  for (size_t i = 0; i < bins.size(); ++i)
    out[i] = bin_to_pixel(bins[i], i % 2 == 0 ? width : height, extent);
  return out;
}

}  // namespace coordexp::protocol
