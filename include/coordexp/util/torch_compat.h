// The LibTorch calls whose API differs between Debian's LibTorch 1.13 (CPU, what this machine builds
// and tests) and the official LibTorch 2.x builds (CUDA, NCCL): device selection, autocast entry
// points, scaled_dot_product_attention, default generators and the c10d collective base class / NCCL
// error-handling variables. Each has both branches, chosen by TORCH_VERSION_MAJOR/MINOR (torch/
// version.h) and COORDEXP_WITH_CUDA; docs/dependencies.md lists every item and where each 2.x fact
// was read. Policy (which device, which precision) is not decided here.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <torch/version.h>

#include <string>

// True when the LibTorch being compiled against is at least major.minor.
#define COORDEXP_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

namespace coordexp::compat {

// ---- devices -------------------------------------------------------------------------------------

// Whether this build has CUDA and at least one device is visible (false on a CPU-only LibTorch).
bool cuda_available();
// Visible CUDA devices (0 without CUDA).
int cuda_device_count();
// The device for a config value: "cpu"; "cuda" (the current CUDA device; ConfigError naming `key`
// when this build or machine has none); "auto" (cuda when available, else cpu). Any other value is
// a ConfigError naming `key`.
c10::Device select_device(const std::string& option, const std::string& key);

// ---- autocast ------------------------------------------------------------------------------------
// 1.13 and 2.0-2.3: per-device functions (at::autocast::is_enabled / set_enabled /
// get_autocast_gpu_dtype for CUDA, is_cpu_enabled / ... for CPU). 2.4+: one set taking the device
// type (is_autocast_enabled(kCUDA), get_autocast_dtype(kCPU), ...), the old names deprecated with a
// warning on every call. Only CPU and CUDA are supported here (InternalError for other types).
// Flags and dtypes are thread-local in both versions; setting the CUDA ones works on a CPU build.

bool autocast_enabled(c10::DeviceType device);
void set_autocast_enabled(c10::DeviceType device, bool enabled);
c10::ScalarType autocast_dtype(c10::DeviceType device);
void set_autocast_dtype(c10::DeviceType device, c10::ScalarType dtype);

// ---- attention -----------------------------------------------------------------------------------
// softmax(q k^T / sqrt(E) + mask) v. q [..., L, E], k/v [..., S, E] with the same head count;
// mask: undefined, or additive float of q's dtype broadcastable to [..., L, S]. 1.13:
// at::_scaled_dot_product_attention (returns (out, weights)); 2.x: at::scaled_dot_product_attention
// (returns out; the underscore name is gone). Both pick the math kernel on CPU. is_causal (mask
// then undefined): query i sees keys [0, i]; 2.x passes it to the kernel (its fused flash /
// memory-efficient kernels need it instead of a float mask), 1.13 builds the -inf bias itself.
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                        const at::Tensor& mask, bool is_causal = false);

// ---- generators ----------------------------------------------------------------------------------
// The default generator of `device` (CPU, or CUDA with an index; InternalError for a CUDA device on
// a build without CUDA). get_state()/set_state() on it are the same call in 1.13 and 2.x.
at::Generator default_generator(const c10::Device& device);

// ---- c10d ----------------------------------------------------------------------------------------
// 2.x moved the collectives from ProcessGroup onto per-device Backend objects (ProcessGroupGloo /
// ProcessGroupNCCL derive from Backend and their Options from Backend::Options); allreduce,
// broadcast and barrier keep their signatures. Options::create(timeout) (Gloo),
// Options::create() + ->timeout (NCCL), the (store, rank, size, options) constructors and
// ReduceOp::SUM are spelled the same in both.
#if COORDEXP_TORCH_AT_LEAST(2, 0)
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

// The environment variables ProcessGroupNCCL's constructor reads: TORCH_NCCL_* since 2.2 (the
// NCCL_* names still read there, with a deprecation warning), NCCL_* before.
#if COORDEXP_TORCH_AT_LEAST(2, 2)
inline constexpr const char* kNcclBlockingWaitEnv = "TORCH_NCCL_BLOCKING_WAIT";
inline constexpr const char* kNcclAsyncErrorHandlingEnv = "TORCH_NCCL_ASYNC_ERROR_HANDLING";
#else
inline constexpr const char* kNcclBlockingWaitEnv = "NCCL_BLOCKING_WAIT";
inline constexpr const char* kNcclAsyncErrorHandlingEnv = "NCCL_ASYNC_ERROR_HANDLING";
#endif

}  // namespace coordexp::compat
