// Compute-thread setup (threads.h): LibTorch intra-op threads plus the BLIS environment variable.
#include "coordexp/util/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

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

namespace {

// BLIS's run-time thread API (dim_t is a 64-bit integer in Debian's BLIS), when BLIS is loaded.
using BlisSetThreads = void (*)(long);
using BlisGetThreads = long (*)();

BlisSetThreads blis_set() {
  static const auto f = reinterpret_cast<BlisSetThreads>(::dlsym(RTLD_DEFAULT, "bli_thread_set_num_threads"));
  return f;
}
BlisGetThreads blis_get() {
  static const auto f = reinterpret_cast<BlisGetThreads>(::dlsym(RTLD_DEFAULT, "bli_thread_get_num_threads"));
  return f;
}

}  // namespace

ScopedComputeThreads::ScopedComputeThreads(int n) {
  if (n <= 0) return;
  saved_torch_ = at::get_num_threads();
  if (saved_torch_ != n) at::set_num_threads(n);
  if (blis_set() && blis_get()) {
    saved_blis_ = blis_get()();
    if (saved_blis_ != n) blis_set()(n);
    else saved_blis_ = -1;
  }
}

ScopedComputeThreads::~ScopedComputeThreads() {
  if (saved_torch_ > 0 && at::get_num_threads() != saved_torch_) at::set_num_threads(saved_torch_);
  if (saved_blis_ > 0) blis_set()(saved_blis_);
}

}  // namespace coordexp::util
