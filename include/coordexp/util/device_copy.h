// Host -> device copies that leave the host free to go on: a CPU tensor bound for a CUDA device is
// staged in pinned memory and copied with non_blocking (a copy from pageable memory waits for the
// device's stream, i.e. for every kernel queued before it). Not for device -> host reads, which
// always wait for the device.
#pragma once

#include <torch/torch.h>

namespace coordexp::util {

// `t` on `device`: t itself when it is already there (no op at all); a CPU tensor for a CUDA device
// through pinned memory without waiting (the caching host allocator keeps the staging buffer until
// the copy is done); otherwise t.to(device). An undefined tensor stays undefined.
inline torch::Tensor host_to_device(const torch::Tensor& t, const torch::Device& device) {
  if (!t.defined() || t.device() == device) return t;
  if (t.device().is_cpu() && device.is_cuda()) return t.pin_memory().to(device, /*non_blocking=*/true);
  return t.to(device);
}

}  // namespace coordexp::util
