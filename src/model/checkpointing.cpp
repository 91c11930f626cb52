// Recompute-in-backward autograd Function (see checkpointing.h). The block closure travels to
// backward inside a capsule in the context's saved_data; parameters are explicit Function inputs
// so autograd routes their gradients (no re-entrant .backward() call into .grad fields).
#include "coordexp/model/checkpointing.h"

#include "coordexp/model/autocast.h"
#include "coordexp/util/error.h"

namespace coordexp::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BlockHolder : torch::CustomClassHolder {
  BlockHolder(BlockFn f, std::vector<torch::Tensor> p) : fn(std::move(f)), params(std::move(p)) {}
  BlockFn fn;
  std::vector<torch::Tensor> params;  // handles (not saved variables): fn reads these same tensors
};

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor x, torch::TensorList /*params: autograd inputs only*/,
                               c10::intrusive_ptr<BlockHolder> holder) {
    ctx->save_for_backward({x});
    ctx->saved_data["block"] = c10::IValue::make_capsule(holder);
    const AutocastState ac = AutocastState::current();
    ctx->saved_data["autocast_cuda"] = ac.cuda_enabled;
    ctx->saved_data["autocast_cuda_dtype"] = static_cast<int64_t>(ac.cuda_dtype);
    ctx->saved_data["autocast_cpu"] = ac.cpu_enabled;
    ctx->saved_data["autocast_cpu_dtype"] = static_cast<int64_t>(ac.cpu_dtype);
    // Function::apply runs forward with grad mode off, so fn records no graph here.
    return holder->fn(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    const auto& params = holder->params;
    const int64_t num_params = static_cast<int64_t>(params.size());
    // Autocast is thread-local and the backward engine may run on another thread (CUDA: a
    // long-lived device thread): rerun under the forward's autocast state, as a full scope (nesting
    // level and cache clearing included, like the forward's) so no cast of a weight outlives it.
    AutocastState at_forward;
    at_forward.cuda_enabled = ctx->saved_data["autocast_cuda"].toBool();
    at_forward.cuda_dtype = static_cast<at::ScalarType>(ctx->saved_data["autocast_cuda_dtype"].toInt());
    at_forward.cpu_enabled = ctx->saved_data["autocast_cpu"].toBool();
    at_forward.cpu_dtype = static_cast<at::ScalarType>(ctx->saved_data["autocast_cpu_dtype"].toInt());

    torch::Tensor x = saved[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      AutocastScope autocast(at_forward);
      torch::AutoGradMode enable(true);
      y = holder->fn(x);
    }
    // Inputs of the rerun graph: x plus every parameter that requires grad (in input order).
    variable_list inputs{x};
    std::vector<int64_t> slot;  // index into params for inputs[1..]
    for (int64_t i = 0; i < num_params; ++i)
      if (params[i].requires_grad()) {
        inputs.push_back(params[i]);
        slot.push_back(i);
      }
    auto grads = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    variable_list out(1 + num_params + 1);  // x, params..., holder (not a tensor)
    out[0] = grads[0];
    for (size_t j = 0; j < slot.size(); ++j) out[1 + slot[j]] = grads[1 + j];
    return out;
  }
};

}  // namespace

torch::Tensor checkpointed(const BlockFn& fn, const torch::Tensor& x,
                           const std::vector<torch::Tensor>& params) {
  bool needs_grad = x.requires_grad();
  for (const auto& p : params) needs_grad = needs_grad || p.requires_grad();
  if (!torch::GradMode::is_enabled() || !needs_grad) return fn(x);
  return CheckpointFunction::apply(x, torch::TensorList(params), c10::make_intrusive<BlockHolder>(fn, params));
}

}  // namespace coordexp::model
