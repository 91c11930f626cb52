// The torch random generators a training run draws from, and their states as named tensors for a
// checkpoint's trainer_state/rng.safetensors: "cpu" (the default CPU generator) and "cuda:<i>" (the
// default generator of each visible CUDA device, when CUDA is available). Compiles and runs without
// CUDA (the CUDA generators are reached through ATen's hooks, never CUDA headers).
#pragma once

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace coordexp::train {

using NamedGenerators = std::vector<std::pair<std::string, at::Generator>>;

// "cpu", then "cuda:0", "cuda:1", ... for each device torch::cuda::device_count() reports.
NamedGenerators run_generators();

// Each generator's state (uint8 tensor, on the CPU), under its name.
std::vector<std::pair<std::string, torch::Tensor>> generator_states(const NamedGenerators& generators);

// What restore_generator_states could not match.
struct GeneratorRestore {
  std::vector<std::string> not_saved;  // generators of this run the checkpoint has no state for
  std::vector<std::string> not_here;   // states in the checkpoint for generators this run lacks
};
// Sets every generator whose name has a state in `saved`; the rest are reported, not changed.
GeneratorRestore restore_generator_states(const NamedGenerators& generators,
                                          const std::map<std::string, torch::Tensor>& saved);

}  // namespace coordexp::train
