// Central-difference gradient checker in float64 for the coord tests (torch::autograd::gradcheck
// exists only in Python). It compares autograd's gradient of sum(f(x) * r), r a fixed random
// projection, with central differences of sum(g(x) * r), where g defaults to f (g differs for
// straight-through functions, whose backward must equal the soft function's derivative).
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace coordexp::coord::testing {

using TensorFn = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;

struct GradCheckOptions {
  double step = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  std::vector<bool> wrt;  // which inputs to check (default: all)
  // Elements per input checked by central differences: all when numel <= this, else an even stride
  // over the flattened input (the autograd side is always the full gradient of the projection).
  int64_t max_elements = 400;
};

// Returns the number of mismatching elements (and reports the first few through gtest).
inline int expect_gradients_match(const TensorFn& f, const std::vector<torch::Tensor>& inputs, const TensorFn& g = {},
                                  GradCheckOptions opt = {}) {
  const TensorFn& numeric_fn = g ? g : f;
  std::vector<torch::Tensor> xs;
  for (const auto& x : inputs) xs.push_back(x.detach().to(torch::kDouble).clone().requires_grad_(true));
  if (opt.wrt.empty()) opt.wrt.assign(xs.size(), true);

  const torch::Tensor out = f(xs);
  torch::manual_seed(1234);
  const torch::Tensor r = torch::randn(out.sizes(), torch::kDouble);
  const torch::Tensor loss = (out * r).sum();
  std::vector<torch::Tensor> checked;
  for (size_t i = 0; i < xs.size(); ++i)
    if (opt.wrt[i]) checked.push_back(xs[i]);
  const auto grads = torch::autograd::grad({loss}, checked, {}, false, false, /*allow_unused=*/true);

  int failures = 0;
  size_t gi = 0;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> ys;
  for (const auto& x : xs) ys.push_back(x.detach().clone().contiguous());
  auto eval = [&] { return (numeric_fn(ys) * r).sum().item<double>(); };
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!opt.wrt[i]) continue;
    const torch::Tensor ana = grads[gi].defined() ? grads[gi].contiguous() : torch::zeros_like(xs[i]);
    ++gi;
    double* y = ys[i].data_ptr<double>();
    const double* a = ana.data_ptr<double>();
    const int64_t n = xs[i].numel();
    const int64_t stride = n <= opt.max_elements ? 1 : (n + opt.max_elements - 1) / opt.max_elements;
    for (int64_t j = (stride > 1 ? static_cast<int64_t>(i) % stride : 0); j < n; j += stride) {
      const double saved = y[j];
      y[j] = saved + opt.step;
      const double plus = eval();
      y[j] = saved - opt.step;
      const double minus = eval();
      y[j] = saved;
      const double num = (plus - minus) / (2 * opt.step);
      if (!std::isfinite(a[j]) || std::abs(a[j] - num) > opt.atol + opt.rtol * std::abs(num)) {
        if (++failures <= 5)
          ADD_FAILURE() << "input " << i << " element " << j << ": autograd " << a[j] << " vs central difference " << num;
      }
    }
  }
  return failures;
}

}  // namespace coordexp::coord::testing
