// Named states of the run's torch generators (rng_state.h). The CUDA generators come from
// at::globalContext().defaultGenerator(Device), which dispatches through the CUDA hooks: the same
// call in LibTorch 1.13 and 2.x, and never reached on a build or machine without CUDA.
#include "coordexp/train/rng_state.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/cuda.h>

#include <mutex>

namespace coordexp::train {

NamedGenerators run_generators() {
  NamedGenerators out;
  out.emplace_back("cpu", at::detail::getDefaultCPUGenerator());
  if (torch::cuda::is_available()) {
    const auto n = static_cast<int64_t>(torch::cuda::device_count());
    for (int64_t i = 0; i < n; ++i)
      out.emplace_back("cuda:" + std::to_string(i),
                       at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<at::DeviceIndex>(i))));
  }
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> generator_states(const NamedGenerators& generators) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, gen] : generators) {
    at::Generator g = gen;
    std::lock_guard<std::mutex> lock(g.mutex());
    out.emplace_back(name, g.get_state());
  }
  return out;
}

GeneratorRestore restore_generator_states(const NamedGenerators& generators,
                                          const std::map<std::string, torch::Tensor>& saved) {
  GeneratorRestore r;
  for (const auto& [name, gen] : generators) {
    const auto it = saved.find(name);
    if (it == saved.end()) {
      r.not_saved.push_back(name);
      continue;
    }
    at::Generator g = gen;
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(it->second.clone());
  }
  for (const auto& [name, t] : saved) {
    bool found = false;
    for (const auto& [n, g] : generators) found = found || n == name;
    if (!found) r.not_here.push_back(name);
  }
  return r;
}

}  // namespace coordexp::train
