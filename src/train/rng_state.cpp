// Named states of the run's torch generators (rng_state.h). The generators come from
// compat::default_generator (util/torch_compat.h: the CUDA ones through the CUDA hooks), never asked
// for a CUDA device on a build or machine without CUDA.
#include "coordexp/train/rng_state.h"

#include "coordexp/util/torch_compat.h"

#include <mutex>

namespace coordexp::train {

NamedGenerators run_generators() {
  NamedGenerators out;
  out.emplace_back("cpu", compat::default_generator(at::Device(at::kCPU)));
  for (int i = 0; i < compat::cuda_device_count(); ++i)
    out.emplace_back("cuda:" + std::to_string(i),
                     compat::default_generator(at::Device(at::kCUDA, static_cast<at::DeviceIndex>(i))));
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
