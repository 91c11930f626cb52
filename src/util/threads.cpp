// Compute-thread setup (threads.h): LibTorch intra-op threads plus the BLIS environment variable.
#include "coordexp/util/threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

namespace coordexp::util {

int default_compute_threads() {
  const char* local_world = std::getenv("LOCAL_WORLD_SIZE");
  const int procs = local_world ? std::max(1, std::atoi(local_world)) : 1;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / procs);
}

int set_compute_threads(int n) {
  n = std::max(1, n);
  at::set_num_threads(n);
  // Captured at the first call: a value the user exported wins over ours, ours can be replaced.
  static const bool user_chose_blas_threads = std::getenv("BLIS_NUM_THREADS") != nullptr;
  if (!user_chose_blas_threads) ::setenv("BLIS_NUM_THREADS", std::to_string(n).c_str(), 1);
  return n;
}

}  // namespace coordexp::util
