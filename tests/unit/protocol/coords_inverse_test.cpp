// protocol::box_to_pixels / norm_box_to_pixels, the inverse of box_from_pixels: random GT boxes on
// images of many sizes go pixels -> bins -> pixels and land within one bin of the GT (half a bin
// with round, one bin with outward) for both pixel extents; exact bins come back exactly; the
// result stays inside the image and out-of-range inputs are clamped.
#include <gtest/gtest.h>

#include <random>

#include "coordexp/protocol/coords.h"

namespace cp = coordexp::protocol;

TEST(CoordsInverse, PixelsToBinsToPixelsWithinOneBin) {
  std::mt19937_64 rng(17);
  for (auto extent : {cp::PixelExtent::kSize, cp::PixelExtent::kSizeMinusOne})
    for (auto rounding : {cp::BoxRounding::kRound, cp::BoxRounding::kOutward}) {
      const cp::CoordConvention conv{extent, rounding};
      for (int trial = 0; trial < 20000; ++trial) {
        const int w = 2 + static_cast<int>(rng() % 4000), h = 2 + static_cast<int>(rng() % 4000);
        const double ew = cp::pixel_extent(w, extent), eh = cp::pixel_extent(h, extent);
        std::uniform_real_distribution<double> ux(0.0, ew), uy(0.0, eh);
        double x1 = ux(rng), x2 = ux(rng), y1 = uy(rng), y2 = uy(rng);
        if (x1 > x2) std::swap(x1, x2);
        if (y1 > y2) std::swap(y1, y2);
        const auto bins = cp::box_from_pixels({x1, y1, x2, y2}, w, h, conv);
        const auto px = cp::box_to_pixels({bins[0].bin, bins[1].bin, bins[2].bin, bins[3].bin}, w, h, conv);
        const double gt[4] = {x1, y1, x2, y2};
        for (int i = 0; i < 4; ++i) {
          const double bin_px = (i % 2 == 0 ? ew : eh) / 999.0;
          // round: half a bin; outward: one bin (floor/ceil, or a collapsed side nudged open by one).
          const double tol = (rounding == cp::BoxRounding::kRound ? 0.5 : 1.0) * bin_px * (1 + 1e-6);
          ASSERT_LE(std::abs(px[i] - gt[i]), tol) << "w " << w << " h " << h << " coord " << i;
          ASSERT_GE(px[i], 0.0);
          ASSERT_LE(px[i], i % 2 == 0 ? ew : eh);
        }
      }
    }
}

TEST(CoordsInverse, ExactBinsAndClamping) {
  const cp::CoordConvention conv{};
  // A box whose pixels are exact bins comes back exactly: bin k of a 999-pixel image is pixel k.
  const auto px = cp::box_to_pixels({0, 10, 500, 999}, 999, 999, conv);
  EXPECT_DOUBLE_EQ(px[0], 0.0);
  EXPECT_DOUBLE_EQ(px[1], 10.0);
  EXPECT_DOUBLE_EQ(px[2], 500.0);
  EXPECT_DOUBLE_EQ(px[3], 999.0);
  const auto clamped = cp::box_to_pixels({-5, 0, 1200, 999}, 640, 480, conv);
  EXPECT_DOUBLE_EQ(clamped[0], 0.0);
  EXPECT_DOUBLE_EQ(clamped[2], 640.0);
  EXPECT_DOUBLE_EQ(clamped[3], 480.0);
  const auto n = cp::norm_box_to_pixels({0.25, -0.5, 1.5, std::nan("")}, 640, 480, conv);
  EXPECT_DOUBLE_EQ(n[0], 160.0);
  EXPECT_DOUBLE_EQ(n[1], 0.0);
  EXPECT_DOUBLE_EQ(n[2], 640.0);
  EXPECT_DOUBLE_EQ(n[3], 0.0);
  const auto m1 = cp::norm_box_to_pixels({0.5, 0.5, 1.0, 1.0}, 641, 481, {cp::PixelExtent::kSizeMinusOne});
  EXPECT_DOUBLE_EQ(m1[0], 320.0);
  EXPECT_DOUBLE_EQ(m1[3], 480.0);
}
