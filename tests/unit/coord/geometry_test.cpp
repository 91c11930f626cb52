// Box geometry: canonicalization semantics, SmoothL1 / IoU / CIoU / GIoU against the scalar float64
// reference on random boxes, finite-difference gradients (CIoU against the reference with alpha frozen,
// since alpha carries no gradient), and finite values/gradients for degenerate boxes.
#include <gtest/gtest.h>

#include "coordexp/coord/geometry.h"
#include "gradcheck.h"
#include "reference.h"

namespace coordexp::coord {
namespace {

using reference::Box;
constexpr double kBoxEps = 1e-4;

Box row(const torch::Tensor& b, int64_t i) {
  const torch::Tensor r = b[i].to(torch::kDouble).contiguous();
  return {r[0].item<double>(), r[1].item<double>(), r[2].item<double>(), r[3].item<double>()};
}

// Random boxes in [0,1] with random corner order (half of them swapped), shape [n, 4].
torch::Tensor random_boxes(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::rand({n, 4}, torch::kDouble);
}

TEST(CoordGeometry, CanonicalizationKeepsSwappedWidthAndEnforcesEps) {
  const torch::Tensor b = torch::tensor({{0.6, 0.2, 0.3, 0.5},     // x swapped
                                         {0.1, 0.7, 0.4, 0.2},     // y swapped
                                         {0.3, 0.3, 0.3, 0.3},     // a point
                                         {0.2, 0.1, 0.2 + 1e-6, 0.9}},  // thinner than eps
                                        torch::kDouble);
  const torch::Tensor c = canonicalize_boxes(b, kBoxEps);
  const torch::Tensor expected = torch::tensor({{0.3, 0.2, 0.6, 0.5},
                                                {0.1, 0.2, 0.4, 0.7},
                                                {0.3, 0.3, 0.3 + kBoxEps, 0.3 + kBoxEps},
                                                {0.2, 0.1, 0.2 + kBoxEps, 0.9}},
                                               torch::kDouble);
  EXPECT_TRUE(torch::equal(c, expected)) << c;
  for (int64_t i = 0; i < 4; ++i) {
    const Box r = reference::canonical(row(b, i), kBoxEps);
    for (int j = 0; j < 4; ++j) EXPECT_EQ(c[i][j].item<double>(), r[j]);
  }
}

TEST(CoordGeometry, LossesMatchScalarReferenceOnRandomBoxes) {
  const int64_t n = 300;
  const torch::Tensor pred = canonicalize_boxes(random_boxes(n, 1), kBoxEps);
  torch::Tensor gt = canonicalize_boxes(random_boxes(n, 2), kBoxEps);
  gt.narrow(0, 0, 20).copy_(pred.narrow(0, 0, 20));  // some identical pairs
  for (double delta : {0.0, 0.05, 0.1, 1.0}) {
    const torch::Tensor h = smooth_l1_per_box(pred, gt, delta);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(h[i].item<double>(), reference::smooth_l1(row(pred, i), row(gt, i), delta), 1e-14);
  }
  const torch::Tensor iou = box_iou(pred, gt), ci = ciou(pred, gt), gi = giou(pred, gt);
  const torch::Tensor ci_loss = iou_loss_per_box(pred, gt, IouKind::kCiou), gi_loss = iou_loss_per_box(pred, gt, IouKind::kGiou);
  for (int64_t i = 0; i < n; ++i) {
    const Box p = row(pred, i), g = row(gt, i);
    EXPECT_NEAR(iou[i].item<double>(), reference::iou(p, g), 1e-13) << i;
    EXPECT_NEAR(ci[i].item<double>(), reference::ciou(p, g), 1e-13) << i;
    EXPECT_NEAR(gi[i].item<double>(), reference::giou(p, g), 1e-13) << i;
    EXPECT_NEAR(ci_loss[i].item<double>(), 1.0 - reference::ciou(p, g), 1e-13);
    EXPECT_NEAR(gi_loss[i].item<double>(), 1.0 - reference::giou(p, g), 1e-13);
    EXPECT_GE(ci[i].item<double>(), -1.0);
    EXPECT_LE(ci[i].item<double>(), 1.0);
  }
  EXPECT_NEAR(iou[0].item<double>(), 1.0, 1e-6);  // identical boxes
  EXPECT_NEAR(ci_loss[0].item<double>(), 0.0, 1e-6);
  // float32 agrees with float64 to float precision.
  EXPECT_LT((ciou(pred.to(torch::kFloat), gt.to(torch::kFloat)).to(torch::kDouble) - ci).abs().max().item<double>(), 1e-5);
}

TEST(CoordGeometry, GradientsMatchCentralDifferences) {
  const torch::Tensor pred = random_boxes(12, 3), gt = canonicalize_boxes(random_boxes(12, 4), kBoxEps);
  auto canon = [](const torch::Tensor& b) { return canonicalize_boxes(b, kBoxEps); };
  for (double delta : {0.0, 0.1})
    EXPECT_EQ(testing::expect_gradients_match(
                  [&](const auto& x) { return smooth_l1_per_box(canon(x[0]), x[1], delta); }, {pred, gt}),
              0);
  EXPECT_EQ(testing::expect_gradients_match([&](const auto& x) { return giou(canon(x[0]), canon(x[1])); }, {pred, gt}), 0);

  // CIoU: autograd (alpha without gradient) vs central differences of the scalar reference with alpha
  // frozen at the evaluation point, per box and coordinate.
  const torch::Tensor x = pred.clone().requires_grad_(true);
  const torch::Tensor loss = iou_loss_per_box(canon(x), gt, IouKind::kCiou);
  const torch::Tensor grad = torch::autograd::grad({loss.sum()}, {x})[0];
  for (int64_t i = 0; i < 12; ++i) {
    const Box p0 = row(pred, i), g = row(gt, i);
    const double alpha = reference::ciou_alpha(reference::canonical(p0, kBoxEps), g);
    for (int j = 0; j < 4; ++j) {
      Box pp = p0, pm = p0;
      pp[j] += 1e-6;
      pm[j] -= 1e-6;
      const double fd = -(reference::ciou(reference::canonical(pp, kBoxEps), g, alpha) -
                          reference::ciou(reference::canonical(pm, kBoxEps), g, alpha)) / 2e-6;
      EXPECT_NEAR(grad[i][j].item<double>(), fd, 1e-7 + 1e-5 * std::abs(fd)) << "box " << i << " coord " << j;
    }
  }
}

TEST(CoordGeometry, DegenerateBoxesGiveFiniteValuesAndGradients) {
  const torch::Tensor pred = torch::tensor({{0.5, 0.5, 0.5, 0.5},     // zero area
                                            {0.8, 0.9, 0.2, 0.1},     // swapped
                                            {0.1, 0.2, 0.3, 0.4},     // identical to GT
                                            {0.0, 0.0, 0.0, 1.0},     // zero width on the border
                                            {0.9, 0.9, 1.0, 1.0},     // far from GT
                                            {0.3, 0.3, 0.3, 0.3}},    // point equal to a point GT
                                           torch::kDouble);
  const torch::Tensor gt_raw = torch::tensor({{0.1, 0.1, 0.6, 0.6},
                                              {0.2, 0.1, 0.8, 0.9},
                                              {0.1, 0.2, 0.3, 0.4},
                                              {0.0, 0.0, 0.5, 0.5},
                                              {0.0, 0.0, 0.1, 0.1},
                                              {0.3, 0.3, 0.3, 0.3}},   // zero-area GT
                                             torch::kDouble);
  for (auto dtype : {torch::kDouble, torch::kFloat})
    for (IouKind kind : {IouKind::kCiou, IouKind::kGiou}) {
      const torch::Tensor x = pred.to(dtype).requires_grad_(true);
      const torch::Tensor p = canonicalize_boxes(x, kBoxEps), g = canonicalize_boxes(gt_raw.to(dtype), kBoxEps);
      const torch::Tensor l = iou_loss_per_box(p, g, kind) + smooth_l1_per_box(p, g, 0.1);
      EXPECT_TRUE(torch::isfinite(l).all().item<bool>()) << l;
      const torch::Tensor grad = torch::autograd::grad({l.sum()}, {x})[0];
      EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << grad;
      EXPECT_NEAR(l[2].item<double>(), 0.0, 1e-6);  // identical
      EXPECT_NEAR(l[5].item<double>(), 0.0, 1e-3);  // identical eps-sized boxes: IoU = 1e-8 / (1e-8 + 1e-12)
      // Swapped pred equals the canonical one exactly.
      EXPECT_TRUE(torch::equal(p[1], torch::tensor({0.2, 0.1, 0.8, 0.9}, dtype)));
    }
}

}  // namespace
}  // namespace coordexp::coord
