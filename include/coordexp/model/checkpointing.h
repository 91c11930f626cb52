// Activation (gradient) checkpointing for LibTorch C++, which has no torch.utils.checkpoint: a
// custom autograd Function runs a block without recording its graph and, in backward, reruns the
// block with grad enabled to get gradients for the block input and its parameters. Qwen3-VL has no
// dropout, so the rerun is deterministic without saving/restoring RNG state; the CPU and CUDA
// autocast state is captured at forward time and the rerun runs inside an AutocastScope with it
// (autocast.h: nesting level and cast-cache clearing as in the forward). Not for blocks with side effects.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

namespace coordexp::model {

using BlockFn = std::function<torch::Tensor(const torch::Tensor&)>;

// y = fn(x), storing only x. `params` must list every tensor that requires grad and that fn reads
// other than x (typically the block's parameters); gradients reach them and x (also through
// torch::autograd::grad). Falls back to a plain call when grad mode is off or nothing needs grad.
torch::Tensor checkpointed(const BlockFn& fn, const torch::Tensor& x,
                           const std::vector<torch::Tensor>& params);

}  // namespace coordexp::model
