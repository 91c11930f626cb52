// The one coordinate-transform module: pixel <-> normalized [0,1] <-> norm1000 bin (0..999), used by
// data loading, rendering, parsing, evaluation and visualization so every path agrees on one
// convention. Bins map back to k/999 (never /1000). Pure functions: no I/O, no LibTorch, no state.
// It does not validate records (coordexp/data/jsonl.h does) and knows nothing of tokens.
#pragma once

#include <array>
#include <vector>

#include "coordexp/config/sections/protocol.h"

namespace coordexp::protocol {

inline constexpr int kNumCoordBins = 1000;
inline constexpr int kMaxCoordBin = kNumCoordBins - 1;

// Denominator of pixel -> [0,1]: W (kSize, seed default) or W-1 (kSizeMinusOne, pixel centres).
enum class PixelExtent { kSize, kSizeMinusOne };
// kRound: round(999c) for every coordinate. kOutward: floor for x1,y1 and ceil for x2,y2, then
// nudged so x2 > x1 and y2 > y1. Polygons always use kRound (there is no "outward" for a vertex).
enum class BoxRounding { kRound, kOutward };

struct CoordConvention {
  PixelExtent pixel_extent = PixelExtent::kSize;
  BoxRounding box_rounding = BoxRounding::kRound;
};

// From the validated `protocol` config section.
CoordConvention coord_convention(const config::ProtocolOptions& options);

// A GT coordinate: its bin and the continuous normalized value it came from. c_gt = x/extent for
// pixel sources, k/999 for bin sources; DFL/W1 and the geometry losses use c_gt, CE uses bin.
struct CoordValue {
  int bin = 0;        // 0..999
  double c_gt = 0.0;  // [0, 1]
};

// Pixel extent along one axis: size_px (kSize) or size_px - 1 (kSizeMinusOne). Callers guarantee
// the result is > 0 (the JSONL validator rejects images too small for the convention).
double pixel_extent(int size_px, PixelExtent extent);

// c = x / extent (no clamping).
double pixel_to_norm(double x_px, int size_px, PixelExtent extent);
// x = c * extent.
double norm_to_pixel(double c, int size_px, PixelExtent extent);

// k = round(999c) clamped to [0, 999]. Ties round to even (like Python/NumPy round), so bins agree
// with data converted by Python tools.
int norm_to_bin(double c);
// Outward rounding helpers: floor / ceil of 999c, clamped. A 1e-9 tolerance keeps values that are
// a bin up to float noise (e.g. 999 * (k/999)) on that bin.
int norm_to_bin_floor(double c);
int norm_to_bin_ceil(double c);
// k / 999.
double bin_to_norm(int k);
// (k / 999) * extent: where a bin lands in pixels (visualization, evaluation in pixel space).
double bin_to_pixel(int k, int size_px, PixelExtent extent);

// A coordinate that is already a bin (coord token or norm1000 data): c_gt = k/999.
CoordValue coord_from_bin(int k);

// Box [x1, y1, x2, y2] in pixels (already clamped to [0, extent], x1 <= x2, y1 <= y2) -> bins with
// c_gt, per the convention's pixel_extent and box_rounding.
std::array<CoordValue, 4> box_from_pixels(const std::array<double, 4>& xyxy_px, int width,
                                          int height, const CoordConvention& convention);
// Flat polygon [x1, y1, x2, y2, ...] in pixels (already clamped) -> bins with c_gt (round).
std::vector<CoordValue> poly_from_pixels(const std::vector<double>& xy_px, int width, int height,
                                         PixelExtent extent);
// The inverse of box_from_pixels, for reading predicted boxes: bins [x1, y1, x2, y2] -> pixels,
// each coordinate k/999 * extent (the bin's own value, for both rounding modes), in [0, extent].
// GT pixels -> box_from_pixels -> box_to_pixels lands within one bin (extent / 999 px) of the GT:
// half a bin for kRound, one bin for kOutward.
std::array<double, 4> box_to_pixels(const std::array<int, 4>& bins, int width, int height,
                                    const CoordConvention& convention);
// The same for continuous normalized coordinates (e.g. CoordExp expectation decode), clamped to
// [0, 1] first: c * extent.
std::array<double, 4> norm_box_to_pixels(const std::array<double, 4>& xyxy_norm, int width, int height,
                                         const CoordConvention& convention);
// Bins (flat x, y, x, y, ...) -> pixels in an image of width x height.
std::vector<double> bins_to_pixels(const std::vector<int>& bins, int width, int height,
                                   PixelExtent extent);

}  // namespace coordexp::protocol
