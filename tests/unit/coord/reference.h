// Independent scalar float64 reference implementations for the coord tests: box canonicalization,
// SmoothL1, IoU, CIoU (with an optional frozen alpha), GIoU, expectation decode, DFL, W1 and entropy.
// Written from the formulas in the seed (2.3, 5.5.2) with plain loops, sharing no code with src/coord.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace coordexp::coord::reference {

using Box = std::array<double, 4>;
constexpr double kEps = 1e-12;

inline Box canonical(const Box& b, double eps) {
  const double xl = std::min(b[0], b[2]), yl = std::min(b[1], b[3]);
  return {xl, yl, std::max(std::max(b[0], b[2]), xl + eps), std::max(std::max(b[1], b[3]), yl + eps)};
}

inline double smooth_l1(const Box& p, const Box& g, double delta) {
  double s = 0;
  for (int i = 0; i < 4; ++i) {
    const double d = std::abs(p[i] - g[i]);
    s += (delta > 0 && d < delta) ? 0.5 * d * d / delta : d - 0.5 * delta;
  }
  return s;
}

inline double area(const Box& b) { return (b[2] - b[0]) * (b[3] - b[1]); }
inline double inter(const Box& p, const Box& g) {
  const double w = std::max(0.0, std::min(p[2], g[2]) - std::max(p[0], g[0]));
  const double h = std::max(0.0, std::min(p[3], g[3]) - std::max(p[1], g[1]));
  return w * h;
}
inline double iou(const Box& p, const Box& g) {
  const double i = inter(p, g);
  return i / (area(p) + area(g) - i + kEps);
}

inline double ciou_v(const Box& p, const Box& g) {
  const double d = std::atan((g[2] - g[0]) / (g[3] - g[1])) - std::atan((p[2] - p[0]) / (p[3] - p[1]));
  return 4.0 / (M_PI * M_PI) * d * d;
}
inline double ciou_alpha(const Box& p, const Box& g) {
  const double v = ciou_v(p, g);
  return v / (1.0 - iou(p, g) + v + kEps);
}
// alpha < 0: computed at (p, g); otherwise the given (frozen) value.
inline double ciou(const Box& p, const Box& g, double alpha = -1.0) {
  const double cx = 0.5 * (p[0] + p[2]) - 0.5 * (g[0] + g[2]);
  const double cy = 0.5 * (p[1] + p[3]) - 0.5 * (g[1] + g[3]);
  const double cw = std::max(p[2], g[2]) - std::min(p[0], g[0]);
  const double ch = std::max(p[3], g[3]) - std::min(p[1], g[1]);
  const double a = alpha < 0 ? ciou_alpha(p, g) : alpha;
  return iou(p, g) - (cx * cx + cy * cy) / (cw * cw + ch * ch + kEps) - a * ciou_v(p, g);
}

inline double giou(const Box& p, const Box& g) {
  const double i = inter(p, g), u = area(p) + area(g) - i;
  const double c = (std::max(p[2], g[2]) - std::min(p[0], g[0])) * (std::max(p[3], g[3]) - std::min(p[1], g[1]));
  return i / (u + kEps) - (c - u) / (c + kEps);
}

inline std::vector<double> softmax(const std::vector<double>& s, double tau) {
  double m = -INFINITY;
  for (double x : s) m = std::max(m, x / tau);
  std::vector<double> p(s.size());
  double z = 0;
  for (size_t k = 0; k < s.size(); ++k) z += (p[k] = std::exp(s[k] / tau - m));
  for (double& x : p) x /= z;
  return p;
}
inline std::vector<double> log_softmax(const std::vector<double>& s, double tau) {
  double m = -INFINITY;
  for (double x : s) m = std::max(m, x / tau);
  double z = 0;
  for (double x : s) z += std::exp(x / tau - m);
  std::vector<double> out(s.size());
  for (size_t k = 0; k < s.size(); ++k) out[k] = s[k] / tau - m - std::log(z);
  return out;
}

inline double expectation(const std::vector<double>& p) {
  double c = 0;
  for (size_t k = 0; k < p.size(); ++k) c += p[k] * static_cast<double>(k) / 999.0;
  return c;
}

// DFL with explicit bins and fraction (the caller states the two-bin target).
inline double dfl(const std::vector<double>& s, double tau, int g0, int g1, double a) {
  const auto lp = log_softmax(s, tau);
  return -(1 - a) * lp[g0] - a * lp[g1];
}
inline double w1(const std::vector<double>& p, double c) {
  double e = 0;
  for (size_t k = 0; k < p.size(); ++k) e += p[k] * std::abs(static_cast<double>(k) / 999.0 - c);
  return e;
}
inline double entropy(const std::vector<double>& s, double tau) {
  const auto lp = log_softmax(s, tau);
  double h = 0;
  for (double l : lp) h -= std::exp(l) * l;
  return h;
}

}  // namespace coordexp::coord::reference
