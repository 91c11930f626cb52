// Box geometry on normalized [0,1] xyxy boxes (seed 5.5.2 (3)): canonicalization with a minimum side,
// SmoothL1, IoU, CIoU and GIoU per box pair. Pure, batched over N boxes, differentiable and finite for
// degenerate inputs (swapped, zero-area, identical). Reductions over objects live in losses.h.
#pragma once

#include <torch/torch.h>

namespace coordexp::coord {

// Safeguard added to the denominators union, enclosing area and enclosing diagonal^2 of IoU/CIoU/GIoU
// (torchvision's placement). Canonical boxes have sides >= box_eps (>= 1e-6), so every denominator is
// >= 1e-12 already; the value is kept far below box_eps^2 (1e-8 by default) so that identical tiny
// boxes still score IoU ~ 1 (torchvision's 1e-7 would cap a 1-bin box at IoU 0.91).
constexpr double kIouEps = 1e-12;

enum class IouKind { kCiou, kGiou };

// (x1, y1, x2, y2) -> (x_lo, y_lo, x_hi, y_hi) with x_lo = min(x1,x2), x_hi = max(max(x1,x2), x_lo + eps),
// same for y. A swapped box keeps its width |x2 - x1|; a degenerate side becomes eps. boxes_N4: [..., 4].
torch::Tensor canonicalize_boxes(const torch::Tensor& boxes_N4, double eps);

// Sum over the 4 coordinates of SmoothL1(pred - gt; delta): 0.5 d^2 / delta if |d| < delta, else
// |d| - 0.5 delta (delta = 0: |d|). Returns [N].
torch::Tensor smooth_l1_per_box(const torch::Tensor& pred_N4, const torch::Tensor& gt_N4, double delta);

// Plain IoU of canonical boxes, [N].
torch::Tensor box_iou(const torch::Tensor& pred_N4, const torch::Tensor& gt_N4);
// CIoU = IoU - rho^2 / c^2 - alpha v (Zheng et al. 2020), v = 4/pi^2 (atan(w_gt/h_gt) - atan(w/h))^2,
// alpha = v / (1 - IoU + v + kIouEps) taken without gradient (trade-off weight, as in torchvision/mmdet). [N]
torch::Tensor ciou(const torch::Tensor& pred_N4, const torch::Tensor& gt_N4);
// GIoU = IoU - (C - U) / C with C the enclosing box area. [N]
torch::Tensor giou(const torch::Tensor& pred_N4, const torch::Tensor& gt_N4);
// 1 - CIoU or 1 - GIoU per box, [N]. Inputs must be canonical (see canonicalize_boxes).
torch::Tensor iou_loss_per_box(const torch::Tensor& pred_N4, const torch::Tensor& gt_N4, IouKind kind);

}  // namespace coordexp::coord
