// Both branches of every version-sensitive LibTorch call (torch_compat.h). The 1.13 branch is what
// Debian's libtorch-dev compiles and the tests run; the 2.x branches follow the 2.x headers
// (aten/src/ATen/autocast_mode.h, aten/src/ATen/native/transformers/attention.cpp; see
// docs/dependencies.md). Nothing here allocates on a device (but the 1.13 causal attention bias) or
// changes global state beyond the thread-local autocast flags the setters are asked to change.
#include "coordexp/util/torch_compat.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>

#include <limits>

#include "coordexp/util/error.h"

#if COORDEXP_TORCH_AT_LEAST(2, 0)
#include <ATen/ops/scaled_dot_product_attention.h>
#else
#include <ATen/ops/_scaled_dot_product_attention.h>
#include <ATen/ops/full.h>
#include <ATen/ops/triu.h>
#endif

namespace coordexp::compat {
namespace {

void require_cpu_or_cuda(c10::DeviceType device, const char* what) {
  COORDEXP_CHECK(device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA,
                 "compat::" << what << ": only CPU and CUDA autocast are supported, got "
                            << c10::DeviceTypeName(device));
}

}  // namespace

bool cuda_available() { return torch::cuda::is_available(); }

int cuda_device_count() { return cuda_available() ? static_cast<int>(torch::cuda::device_count()) : 0; }

c10::Device select_device(const std::string& option, const std::string& key) {
  if (option == "cpu") return c10::Device(c10::DeviceType::CPU);
  if (option == "auto") return cuda_available() ? c10::Device(c10::DeviceType::CUDA) : c10::Device(c10::DeviceType::CPU);
  if (option == "cuda") {
    if (!cuda_available())
      throw ConfigError("device 'cuda' requested but CUDA is not available (this LibTorch was built without "
                        "CUDA, or no GPU is visible)",
                        "key " + key,
                        "use cpu or auto, or build against a CUDA LibTorch (docs/dependencies.md) on a machine "
                        "with a GPU");
    return c10::Device(c10::DeviceType::CUDA);
  }
  throw ConfigError("device is '" + option + "'", "key " + key, "use auto, cpu or cuda");
}

#if COORDEXP_TORCH_AT_LEAST(2, 4)

bool autocast_enabled(c10::DeviceType device) {
  require_cpu_or_cuda(device, "autocast_enabled");
  return at::autocast::is_autocast_enabled(device);
}
void set_autocast_enabled(c10::DeviceType device, bool enabled) {
  require_cpu_or_cuda(device, "set_autocast_enabled");
  at::autocast::set_autocast_enabled(device, enabled);
}
c10::ScalarType autocast_dtype(c10::DeviceType device) {
  require_cpu_or_cuda(device, "autocast_dtype");
  return at::autocast::get_autocast_dtype(device);
}
void set_autocast_dtype(c10::DeviceType device, c10::ScalarType dtype) {
  require_cpu_or_cuda(device, "set_autocast_dtype");
  at::autocast::set_autocast_dtype(device, dtype);
}

#else  // 1.13 .. 2.3: one function per device

bool autocast_enabled(c10::DeviceType device) {
  require_cpu_or_cuda(device, "autocast_enabled");
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
void set_autocast_enabled(c10::DeviceType device, bool enabled) {
  require_cpu_or_cuda(device, "set_autocast_enabled");
  if (device == c10::DeviceType::CUDA) at::autocast::set_enabled(enabled);
  else at::autocast::set_cpu_enabled(enabled);
}
c10::ScalarType autocast_dtype(c10::DeviceType device) {
  require_cpu_or_cuda(device, "autocast_dtype");
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                         : at::autocast::get_autocast_cpu_dtype();
}
void set_autocast_dtype(c10::DeviceType device, c10::ScalarType dtype) {
  require_cpu_or_cuda(device, "set_autocast_dtype");
  if (device == c10::DeviceType::CUDA) at::autocast::set_autocast_gpu_dtype(dtype);
  else at::autocast::set_autocast_cpu_dtype(dtype);
}

#endif

at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const at::Tensor& mask, bool is_causal) {
  COORDEXP_CHECK(!(is_causal && mask.defined()), "scaled_dot_product_attention: is_causal takes no mask");
#if COORDEXP_TORCH_AT_LEAST(2, 0)
  const c10::optional<at::Tensor> m = mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt;
  // (query, key, value, attn_mask, dropout_p, is_causal[, scale (2.1+), enable_gqa (2.5+)]).
  return at::scaled_dot_product_attention(q, k, v, m, /*dropout_p=*/0.0, is_causal);
#else
  // 1.13's is_causal is not relied on: its math kernel costs the same with an explicit bias.
  c10::optional<at::Tensor> m = mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt;
  if (is_causal) {
    const int64_t L = q.size(-2), S = k.size(-2);
    m = at::full({L, S}, -std::numeric_limits<double>::infinity(), q.options()).triu(1);
  }
  // (query, key, value, attn_mask, dropout_p, need_attn_weights, is_causal) -> (out, weights).
  return std::get<0>(at::_scaled_dot_product_attention(q, k, v, m, /*dropout_p=*/0.0, /*need_attn_weights=*/false,
                                                       /*is_causal=*/false));
#endif
}

at::Generator default_generator(const c10::Device& device) {
  if (device.is_cpu()) return at::detail::getDefaultCPUGenerator();
  COORDEXP_CHECK(device.is_cuda(), "default_generator: CPU or CUDA only, got " << device.str());
  COORDEXP_CHECK(cuda_available(), "default_generator(" << device.str() << ") on a build or machine without CUDA");
  return at::globalContext().defaultGenerator(device);
}

}  // namespace coordexp::compat
