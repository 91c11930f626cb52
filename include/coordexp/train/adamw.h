// AdamW over row slices of parameters (param_groups.h), with per-group learning-rate / weight-decay
// multipliers and freezing, plus the global gradient-norm helpers the training step needs (norm,
// clipping, first non-finite gradient). Our own implementation rather than torch::optim::AdamW: LibTorch
// 1.13 keys optimizer state by TensorImpl address and serializes it as a TorchScript archive (not
// deterministic bytes, not safetensors), and it cannot give rows of one tensor their own settings. The
// update is the same arithmetic as torch::optim::AdamW (tested bit for bit). No schedule here.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "coordexp/train/param_groups.h"
#include "coordexp/util/safetensors.h"

namespace coordexp::train {

struct GroupSettings {
  double lr_mult = 1.0;            // group lr = base lr x lr_mult
  double weight_decay_mult = 1.0;  // group weight decay = weight_decay x weight_decay_mult
  bool frozen = false;             // no update, no optimizer state
  double weight_decay_abs = -1.0;  // >= 0: this group's weight decay, instead of weight_decay x weight_decay_mult
};

struct AdamWSettings {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled: p -= lr x wd x p before the Adam update (decay slices only)
  // One pass per element where the kernel applies (float32 contiguous CPU slices on a CPU with AVX2 +
  // FMA, LibTorch's AVX2/AVX512 kernels in use): the arithmetic of the tensor-op update, operation for
  // operation, so the result is the same bit for bit (tests/unit/train/optim_test.cpp); elsewhere, and
  // with fused = false, the tensor-op update.
  bool fused = true;
  std::array<GroupSettings, kNumParamGroups> groups{};
  const GroupSettings& of(ParamGroup g) const { return groups[static_cast<int>(g)]; }
};

class AdamW {
 public:
  // Keeps the slices of groups that are not frozen. Tensors with no trainable slice get
  // requires_grad(false) (autograd skips them); the others get requires_grad(true). Moments are
  // float32 on the parameter's device whatever the parameter dtype (the update is computed in float32).
  // A slice whose parameter is not float32 (model.dtype: bfloat16) also gets a float32 master copy,
  // taken from the parameter at its first update: updates accumulate in the master and the parameter
  // is overwritten with the master rounded to its dtype after every step (updates below the
  // parameter's rounding step are not lost). From then on the master, not the parameter, is the truth.
  AdamW(const std::vector<ParamSlice>& slices, AdamWSettings settings);

  const std::vector<ParamSlice>& trainable() const { return slices_; }
  const AdamWSettings& settings() const { return settings_; }
  // Changes multipliers (e.g. after a resume with --set); freezing is fixed at construction.
  void set_group_multipliers(ParamGroup g, double lr_mult, double weight_decay_mult);

  // One update at base learning rate `lr`. A slice without a gradient is left alone (no decay, no
  // moment update, its step count unchanged), as torch.optim does.
  void step(double lr);
  // Whether step() uses the one-pass kernel on this machine for float32 CPU slices.
  static bool fused_kernel_available();
  // Drops the gradients of every trainable tensor (set to none).
  void zero_grad();

  // "<state_key>.exp_avg" and ".exp_avg_sq" (float32, [rows...]) and ".step" (int64, 0-dim), plus
  // ".master" (float32, [rows...]) for lower-precision parameters, in slice order; slices that have not
  // been updated yet have no entries.
  util::NamedTensors state_tensors() const;
  // Restores state_tensors() of an optimizer over the same slices. A loaded master is copied into the
  // parameter (rounded to its dtype). State without a master for a lower-precision parameter (written by
  // a float32 run) starts the master from the parameter; a master for a float32 parameter (written by a
  // bfloat16 run) becomes its value. Throws FormatError naming `where` and the tensor for an entry of an
  // unknown slice, a wrong shape/dtype, or a partial entry.
  void load_state_tensors(const std::map<std::string, torch::Tensor>& named, const std::string& where);
  // The float32 master of trainable slice `i` (undefined for float32 parameters, and before the
  // slice's first update).
  const torch::Tensor& master(size_t i) const { return state_.at(i).master; }

 private:
  struct SliceState {
    torch::Tensor exp_avg, exp_avg_sq;  // undefined until the first update
    torch::Tensor master;               // float32 copy of a non-float32 parameter's rows (same time)
    int64_t step = 0;
  };
  std::vector<ParamSlice> slices_;
  std::vector<SliceState> state_;
  AdamWSettings settings_;
};

// L2 norm of the gradients of `slices` together (slices without a gradient count as zero). Each
// slice's norm is computed in float32 and the squares are summed in double, in slice order.
double grad_norm(const std::vector<ParamSlice>& slices);
// Multiplies every slice's gradient by `factor`.
void scale_grads(const std::vector<ParamSlice>& slices, double factor);
// The factor global-norm clipping applies: max_norm / (norm + 1e-6) when norm > max_norm > 0, else 1.
double clip_factor(double norm, double max_norm);
// state_key of the first slice whose gradient has a NaN/Inf ("" when all are finite).
std::string first_nonfinite_grad(const std::vector<ParamSlice>& slices);

}  // namespace coordexp::train
