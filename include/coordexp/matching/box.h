// Pair geometry for matching on normalized [0,1] xyxy boxes in plain doubles: bounding box of a point
// list, IoU, GIoU and the mean absolute coordinate difference. No gradients (matching is stop-grad);
// the differentiable versions used by L_geo live in coordexp/coord/geometry.h.
#pragma once

#include <array>
#include <vector>

namespace coordexp::matching {

using Box = std::array<double, 4>;  // (x1, y1, x2, y2), x1 <= x2 and y1 <= y2

// Sides shorter than this are widened to it inside iou/giou, so areas are > 0 and identical
// degenerate boxes (x1 == x2, e.g. one bin wide) still score IoU 1. 1e-6 is 1/1000 of a bin.
inline constexpr double kMinBoxSide = 1e-6;

// Axis-aligned bounding box of flat points (x, y, x, y, ...): a bbox's two corners in any order,
// or a polygon's vertices. COORDEXP_CHECK: an even count >= 4.
Box bounding_box(const std::vector<double>& flat_xy);

// Intersection over union, in [0, 1].
double iou(const Box& a, const Box& b);
// Generalized IoU = IoU - (C - U) / C with C the enclosing box's area, in (-1, 1].
double giou(const Box& a, const Box& b);
// Mean of |a_k - b_k| over the 4 coordinates (in [0, 1] for normalized boxes).
double mean_l1(const Box& a, const Box& b);

}  // namespace coordexp::matching
