// Box canonicalization, SmoothL1, IoU, CIoU and GIoU on normalized xyxy boxes (see geometry.h).
// Written with elementwise ops only so every input (including zero-area and identical boxes) keeps
// finite values and finite gradients; no sqrt (rho^2 / c^2 are used squared).
#include "coordexp/coord/geometry.h"

#include <cmath>

#include "coordexp/util/error.h"

namespace coordexp::coord {

namespace {
void check_boxes(const torch::Tensor& a, const torch::Tensor& b) {
  COORDEXP_CHECK(a.dim() >= 1 && a.size(-1) == 4, "boxes must be [..., 4], got " << a.sizes());
  COORDEXP_CHECK(a.sizes() == b.sizes(), "pred and gt boxes differ in shape: " << a.sizes() << " vs " << b.sizes());
}

struct Sides {
  torch::Tensor x1, y1, x2, y2;
};
Sides sides(const torch::Tensor& b) {
  return {b.select(-1, 0), b.select(-1, 1), b.select(-1, 2), b.select(-1, 3)};
}

struct Overlap {
  torch::Tensor inter, uni, iou;
};
Overlap overlap(const Sides& p, const Sides& g) {
  const torch::Tensor iw = (torch::minimum(p.x2, g.x2) - torch::maximum(p.x1, g.x1)).clamp_min(0.0);
  const torch::Tensor ih = (torch::minimum(p.y2, g.y2) - torch::maximum(p.y1, g.y1)).clamp_min(0.0);
  const torch::Tensor inter = iw * ih;
  const torch::Tensor uni = (p.x2 - p.x1) * (p.y2 - p.y1) + (g.x2 - g.x1) * (g.y2 - g.y1) - inter;
  return {inter, uni, inter / (uni + kIouEps)};
}
}  // namespace

torch::Tensor canonicalize_boxes(const torch::Tensor& boxes_N4, double eps) {
  COORDEXP_CHECK(boxes_N4.dim() >= 1 && boxes_N4.size(-1) == 4, "boxes must be [..., 4], got " << boxes_N4.sizes());
  COORDEXP_CHECK(eps > 0.0, "box eps must be positive, got " << eps);
  const Sides b = sides(boxes_N4);
  const torch::Tensor x_lo = torch::minimum(b.x1, b.x2);
  const torch::Tensor y_lo = torch::minimum(b.y1, b.y2);
  const torch::Tensor x_hi = torch::maximum(torch::maximum(b.x1, b.x2), x_lo + eps);
  const torch::Tensor y_hi = torch::maximum(torch::maximum(b.y1, b.y2), y_lo + eps);
  return torch::stack({x_lo, y_lo, x_hi, y_hi}, -1);
}

torch::Tensor smooth_l1_per_box(const torch::Tensor& pred_N4, const torch::Tensor& gt_N4, double delta) {
  check_boxes(pred_N4, gt_N4);
  COORDEXP_CHECK(delta >= 0.0, "SmoothL1 delta must be >= 0, got " << delta);
  const torch::Tensor d = (pred_N4 - gt_N4).abs();
  if (delta == 0.0) return d.sum(-1);
  // The quadratic branch is evaluated on min(d, delta) so the unselected branch never sees large values.
  const torch::Tensor dq = d.clamp_max(delta);
  return torch::where(d < delta, 0.5 * dq * dq / delta, d - 0.5 * delta).sum(-1);
}

torch::Tensor box_iou(const torch::Tensor& pred_N4, const torch::Tensor& gt_N4) {
  check_boxes(pred_N4, gt_N4);
  return overlap(sides(pred_N4), sides(gt_N4)).iou;
}

torch::Tensor ciou(const torch::Tensor& pred_N4, const torch::Tensor& gt_N4) {
  check_boxes(pred_N4, gt_N4);
  const Sides p = sides(pred_N4), g = sides(gt_N4);
  const torch::Tensor iou = overlap(p, g).iou;
  const torch::Tensor cw = torch::maximum(p.x2, g.x2) - torch::minimum(p.x1, g.x1);
  const torch::Tensor ch = torch::maximum(p.y2, g.y2) - torch::minimum(p.y1, g.y1);
  const torch::Tensor c2 = cw * cw + ch * ch + kIouEps;
  const torch::Tensor dx = (p.x1 + p.x2) - (g.x1 + g.x2);  // 2 * center offset
  const torch::Tensor dy = (p.y1 + p.y2) - (g.y1 + g.y2);
  const torch::Tensor rho2 = 0.25 * (dx * dx + dy * dy);
  const torch::Tensor dphi = torch::atan((g.x2 - g.x1) / (g.y2 - g.y1)) - torch::atan((p.x2 - p.x1) / (p.y2 - p.y1));
  const torch::Tensor v = (4.0 / (M_PI * M_PI)) * dphi * dphi;
  const torch::Tensor alpha = (v / (1.0 - iou + v + kIouEps)).detach();
  return iou - rho2 / c2 - alpha * v;
}

torch::Tensor giou(const torch::Tensor& pred_N4, const torch::Tensor& gt_N4) {
  check_boxes(pred_N4, gt_N4);
  const Sides p = sides(pred_N4), g = sides(gt_N4);
  const Overlap o = overlap(p, g);
  const torch::Tensor hull = (torch::maximum(p.x2, g.x2) - torch::minimum(p.x1, g.x1)) *
                             (torch::maximum(p.y2, g.y2) - torch::minimum(p.y1, g.y1));
  return o.iou - (hull - o.uni) / (hull + kIouEps);
}

torch::Tensor iou_loss_per_box(const torch::Tensor& pred_N4, const torch::Tensor& gt_N4, IouKind kind) {
  return 1.0 - (kind == IouKind::kGiou ? giou(pred_N4, gt_N4) : ciou(pred_N4, gt_N4));
}

}  // namespace coordexp::coord
