// The coordinate-transform module against hand-computed values: k = round(999 c) (ties to even),
// clamping, k/999 back, both pixel extents, outward rounding with its never-collapse nudge.
#include <gtest/gtest.h>

#include <cmath>

#include "coordexp/protocol/coords.h"
#include "coordexp/util/error.h"

namespace {

using namespace coordexp::protocol;

TEST(Coords, BinsAndNormalizedValues) {
  EXPECT_EQ(norm_to_bin(0.0), 0);
  EXPECT_EQ(norm_to_bin(1.0), 999);
  EXPECT_EQ(norm_to_bin(-0.2), 0);
  EXPECT_EQ(norm_to_bin(1.7), 999);
  EXPECT_EQ(norm_to_bin(std::nan("")), 0);
  EXPECT_EQ(norm_to_bin(0.5), 500);               // 499.5 -> even
  EXPECT_EQ(norm_to_bin(0.5 / 999.0), 0);         // 0.5 -> even
  EXPECT_EQ(norm_to_bin(1.5 / 999.0), 2);         // 1.5 -> even
  EXPECT_EQ(norm_to_bin(0.1), 100);               // 99.9
  EXPECT_DOUBLE_EQ(bin_to_norm(999), 1.0);        // k/999, never /1000
  EXPECT_DOUBLE_EQ(bin_to_norm(500), 500.0 / 999.0);
  for (int k = 0; k <= 999; ++k) {
    ASSERT_EQ(norm_to_bin(bin_to_norm(k)), k);
    ASSERT_EQ(norm_to_bin_floor(bin_to_norm(k)), k);  // float noise must not move exact bins
    ASSERT_EQ(norm_to_bin_ceil(bin_to_norm(k)), k);
    EXPECT_DOUBLE_EQ(coord_from_bin(k).c_gt, k / 999.0);
  }
  EXPECT_EQ(norm_to_bin_floor(0.9999), 998);
  EXPECT_EQ(norm_to_bin_ceil(0.0001), 1);
  EXPECT_THROW(coord_from_bin(1000), coordexp::InternalError);
}

TEST(Coords, PixelExtents) {
  EXPECT_DOUBLE_EQ(pixel_extent(640, PixelExtent::kSize), 640.0);
  EXPECT_DOUBLE_EQ(pixel_extent(640, PixelExtent::kSizeMinusOne), 639.0);
  EXPECT_DOUBLE_EQ(pixel_to_norm(320, 640, PixelExtent::kSize), 0.5);
  EXPECT_DOUBLE_EQ(pixel_to_norm(639, 640, PixelExtent::kSizeMinusOne), 1.0);
  EXPECT_DOUBLE_EQ(norm_to_pixel(0.25, 641, PixelExtent::kSizeMinusOne), 160.0);
  EXPECT_DOUBLE_EQ(bin_to_pixel(999, 640, PixelExtent::kSize), 640.0);
  EXPECT_DOUBLE_EQ(bin_to_pixel(999, 640, PixelExtent::kSizeMinusOne), 639.0);
  // pixel -> bin -> pixel moves a point by at most half a bin.
  for (PixelExtent e : {PixelExtent::kSize, PixelExtent::kSizeMinusOne}) {
    for (double x = 0; x <= 639; x += 0.37) {
      const int k = norm_to_bin(pixel_to_norm(x, 640, e));
      ASSERT_LE(std::abs(bin_to_pixel(k, 640, e) - x), 0.5 * pixel_extent(640, e) / 999 + 1e-9);
    }
  }
  const auto px = bins_to_pixels({0, 999, 500, 250}, 1000, 500, PixelExtent::kSize);
  EXPECT_DOUBLE_EQ(px[1], 500.0);
  EXPECT_DOUBLE_EQ(px[2], 500.0 * 1000 / 999);
}

TEST(Coords, BoxRoundingModes) {
  const CoordConvention round{PixelExtent::kSize, BoxRounding::kRound};
  const CoordConvention outward{PixelExtent::kSize, BoxRounding::kOutward};
  // W = H = 999 so that c*999 = x: fractional pixels show the rounding directly.
  auto bins = [](const std::array<CoordValue, 4>& b) {
    return std::vector<int>{b[0].bin, b[1].bin, b[2].bin, b[3].bin};
  };
  EXPECT_EQ(bins(box_from_pixels({10.6, 20.4, 30.4, 40.6}, 999, 999, round)),
            (std::vector<int>{11, 20, 30, 41}));
  EXPECT_EQ(bins(box_from_pixels({10.6, 20.4, 30.4, 40.6}, 999, 999, outward)),
            (std::vector<int>{10, 20, 31, 41}));
  const auto b = box_from_pixels({10.6, 20.4, 30.4, 40.6}, 999, 999, outward);
  EXPECT_DOUBLE_EQ(b[0].c_gt, 10.6 / 999);  // c_gt keeps the continuous value
  // Collapsed sides open by one bin, inward at the border.
  EXPECT_EQ(bins(box_from_pixels({5, 7, 5, 7}, 999, 999, outward)), (std::vector<int>{5, 7, 6, 8}));
  EXPECT_EQ(bins(box_from_pixels({999, 999, 999, 999}, 999, 999, outward)),
            (std::vector<int>{998, 998, 999, 999}));
  EXPECT_EQ(bins(box_from_pixels({5, 7, 5, 7}, 999, 999, round)), (std::vector<int>{5, 7, 5, 7}));
  // Polygons always round.
  const auto p = poly_from_pixels({10.6, 20.4, 30.4, 40.6, 0, 0}, 999, 999, PixelExtent::kSize);
  EXPECT_EQ(p[0].bin, 11);
  EXPECT_EQ(p[1].bin, 20);
}

TEST(Coords, ConventionFromConfig) {
  coordexp::config::ProtocolOptions o;
  EXPECT_EQ(coord_convention(o).pixel_extent, PixelExtent::kSize);
  EXPECT_EQ(coord_convention(o).box_rounding, BoxRounding::kRound);
  o.pixel_extent = "size_minus_one";
  o.box_rounding = "outward";
  EXPECT_EQ(coord_convention(o).pixel_extent, PixelExtent::kSizeMinusOne);
  EXPECT_EQ(coord_convention(o).box_rounding, BoxRounding::kOutward);
  o.box_rounding = "floor";
  try {
    coord_convention(o);
    FAIL();
  } catch (const coordexp::ConfigError& e) {
    EXPECT_EQ(e.where(), "key protocol.box_rounding");
  }
}

}  // namespace
