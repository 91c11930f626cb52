// `coordexp-train info`: what this build can use (LibTorch version, CUDA, threads, BLAS).
#include <torch/torch.h>

#include <iostream>

#include "apps/commands.h"

namespace coordexp::apps {

CommandRegistration add_version_info_command(CLI::App& app, const GlobalFlags&) {
  auto* sub = app.add_subcommand("info", "Print build and runtime facts (LibTorch, CUDA, threads)");
  return {sub, [] {
            std::cout << "coordexp-train " << COORDEXP_VERSION << "\n"
                      << "libtorch " << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << "." << TORCH_VERSION_PATCH << "\n"
                      << "cuda_available " << (torch::cuda::is_available() ? "true" : "false") << "\n"
                      << "intra_op_threads " << at::get_num_threads() << "\n";
            return 0;
          }};
}

}  // namespace coordexp::apps
