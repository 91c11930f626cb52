// Plain-double box geometry for matching costs and gates (see box.h).
#include "coordexp/matching/box.h"

#include <algorithm>
#include <cmath>

#include "coordexp/util/error.h"

namespace coordexp::matching {

namespace {

Box widened(const Box& b) {
  return {b[0], b[1], std::max(b[2], b[0] + kMinBoxSide), std::max(b[3], b[1] + kMinBoxSide)};
}
double area(const Box& b) { return (b[2] - b[0]) * (b[3] - b[1]); }

struct Overlap {
  double inter = 0.0;
  double uni = 0.0;
};
Overlap overlap(const Box& a, const Box& b) {
  const double w = std::max(0.0, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  const double h = std::max(0.0, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  const double inter = w * h;
  return {inter, area(a) + area(b) - inter};
}

}  // namespace

Box bounding_box(const std::vector<double>& flat_xy) {
  COORDEXP_CHECK(flat_xy.size() >= 4 && flat_xy.size() % 2 == 0,
                 "bounding_box needs an even number >= 4 of values, got " << flat_xy.size());
  Box b{flat_xy[0], flat_xy[1], flat_xy[0], flat_xy[1]};
  for (size_t k = 2; k < flat_xy.size(); k += 2) {
    b[0] = std::min(b[0], flat_xy[k]);
    b[2] = std::max(b[2], flat_xy[k]);
    b[1] = std::min(b[1], flat_xy[k + 1]);
    b[3] = std::max(b[3], flat_xy[k + 1]);
  }
  return b;
}

double iou(const Box& a, const Box& b) {
  const Overlap o = overlap(widened(a), widened(b));
  return o.inter / o.uni;
}

double giou(const Box& a, const Box& b) {
  const Box wa = widened(a), wb = widened(b);
  const Overlap o = overlap(wa, wb);
  const Box enclosing{std::min(wa[0], wb[0]), std::min(wa[1], wb[1]), std::max(wa[2], wb[2]),
                      std::max(wa[3], wb[3])};
  const double c = area(enclosing);
  return o.inter / o.uni - (c - o.uni) / c;
}

double mean_l1(const Box& a, const Box& b) {
  return (std::abs(a[0] - b[0]) + std::abs(a[1] - b[1]) + std::abs(a[2] - b[2]) + std::abs(a[3] - b[3])) / 4.0;
}

}  // namespace coordexp::matching
