// Compute-thread setup (threads.h): LibTorch's intra-op threads and the system BLAS's threads.
#include "coordexp/util/threads.h"

#include <ATen/Parallel.h>
#include <dirent.h>
#include <dlfcn.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace coordexp::util {

namespace {

// BLIS's run-time thread API (dim_t is a 64-bit integer in Debian's BLIS), when BLIS is loaded.
using BlisSetThreads = void (*)(long);
using BlisGetThreads = long (*)();

void* global_symbol(const char* name) { return ::dlsym(RTLD_DEFAULT, name); }

// The shared object that defines `address`, or "" when none does.
std::string defining_object(void* address) {
  Dl_info info{};
  if (!address || ::dladdr(address, &info) == 0 || !info.dli_fname) return "";
  return info.dli_fname;
}

// The thread API, only when the library that exports it is also the one LibTorch's BLAS calls bind
// to (the first `sgemm_` in global lookup order, which is what lazy binding resolves). Debian's
// BLIS libblas.so.3 hides BLIS's own API, so a BLIS found elsewhere would be a second, idle copy:
// setting its threads would change nothing.
struct BlisThreadApi {
  BlisSetThreads set = nullptr;
  BlisGetThreads get = nullptr;
  std::string gemm_provider;
};

const BlisThreadApi& blis_api() {
  static const BlisThreadApi api = [] {
    BlisThreadApi a;
    void* set = global_symbol("bli_thread_set_num_threads");
    void* get = global_symbol("bli_thread_get_num_threads");
    a.gemm_provider = defining_object(global_symbol("sgemm_"));
    if (set && get && !a.gemm_provider.empty() && defining_object(set) == a.gemm_provider) {
      a.set = reinterpret_cast<BlisSetThreads>(set);
      a.get = reinterpret_cast<BlisGetThreads>(get);
    }
    return a;
  }();
  return api;
}

// OpenMP's per-thread team size, when LibTorch's intra-op pool is OpenMP (Debian's and the official
// builds). Preferred to at::set_num_threads for a temporary change: that one also resizes caffe2's
// pthreadpool (QNNPACK/XNNPACK, idle in fp32 training), which destroys and creates its threads: a
// set-and-restore pair measured 8.5 ms against 0.1 us for omp_set_num_threads, i.e. more than a
// tiny model's whole decode of a few tokens. at::get_num_threads() reads omp_get_max_threads().
using OmpSetThreads = void (*)(int);
OmpSetThreads omp_set() {
  static const auto f = reinterpret_cast<OmpSetThreads>(global_symbol("omp_set_num_threads"));
  return f;
}

void set_intra_op_threads_temporarily(int n) {
  if (OmpSetThreads f = omp_set()) f(n);
  else at::set_num_threads(n);
}

// BLIS reports -1 until a count is set at run time ("none set": it then uses BLIS_NUM_THREADS, else
// OMP_NUM_THREADS, else 1). The count it actually runs with, so a scope can restore it.
long blis_effective_threads() {
  const long v = blis_api().get();
  if (v > 0) return v;
  for (const char* var : {"BLIS_NUM_THREADS", "OMP_NUM_THREADS"})
    if (const char* e = std::getenv(var); e && std::atol(e) > 0) return std::atol(e);
  return 1;
}

}  // namespace

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
  if (!user_chose_blas_threads) {
    ::setenv("BLIS_NUM_THREADS", std::to_string(n).c_str(), 1);  // a BLIS initialised later
    if (blis_api().set) blis_api().set(n);                         // the BLIS already serving LibTorch
  }
  return n;
}

bool blas_threads_settable() { return blis_api().set != nullptr; }

int blas_threads() { return blis_api().get ? static_cast<int>(blis_effective_threads()) : -1; }

std::string blas_library() { return blis_api().gemm_provider; }

namespace {

// Tasks (threads) of this process whose state is R (running or runnable), from /proc/self/task.
int own_runnable_tasks() {
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/stat");
    std::string line;
    std::getline(in, line);
    const auto close = line.rfind(')');  // "pid (comm) S ...": comm may hold spaces and parentheses
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'R') ++n;
  }
  ::closedir(dir);
  return n;
}

// procs_running of /proc/stat: tasks runnable on the whole machine right now, -1 when unreadable.
int machine_runnable_tasks() {
  std::ifstream in("/proc/stat");
  std::string key;
  long value = -1;
  for (std::string line; std::getline(in, line);) {
    std::istringstream row(line);
    if (row >> key && key == "procs_running" && row >> value) return static_cast<int>(value);
  }
  return -1;
}

}  // namespace

CpuLoad sample_cpu_load() {
  CpuLoad load;
  cpu_set_t set;
  CPU_ZERO(&set);
  load.cpus = ::sched_getaffinity(0, sizeof set, &set) == 0 ? std::max(1, CPU_COUNT(&set))
                                                            : std::max(1u, std::thread::hardware_concurrency());
  const int own = own_runnable_tasks(), all = machine_runnable_tasks();
  if (own >= 0 && all >= 0) load.others_runnable = std::max(0, all - own);
  return load;
}

int threads_for_load(int max_threads, const CpuLoad& load) {
  max_threads = std::max(1, max_threads);
  if (load.others_runnable < 0) return max_threads;
  return std::clamp(load.cpus - load.others_runnable, 1, max_threads);
}

LoadFollowingThreads::LoadFollowingThreads(int max_threads, int down_after, int up_after)
    : max_(std::max(1, max_threads)), down_after_(std::max(1, down_after)), up_after_(std::max(1, up_after)),
      current_(max_) {}

int LoadFollowingThreads::observe(const CpuLoad& load) {
  const int want = threads_for_load(max_, load);
  const int dir = want < current_ ? -1 : want > current_ ? 1 : 0;
  if (dir == 0) {
    streak_ = 0, streak_dir_ = 0;
    return current_;
  }
  streak_ = dir == streak_dir_ ? streak_ + 1 : 1;
  streak_dir_ = dir;
  // Going down, the streak's mildest request wins (the latest is no lower than needed by then).
  streak_target_ = streak_ == 1 ? want : dir < 0 ? std::max(streak_target_, want) : std::min(streak_target_, want);
  if (streak_ >= (dir < 0 ? down_after_ : up_after_)) {
    current_ = streak_target_;
    streak_ = 0, streak_dir_ = 0;
  }
  return current_;
}

ScopedComputeThreads::ScopedComputeThreads(int n) {
  if (n <= 0) return;
  saved_torch_ = at::get_num_threads();
  if (saved_torch_ != n) set_intra_op_threads_temporarily(n);
  if (const BlisThreadApi& api = blis_api(); api.set) {
    saved_blis_ = blis_effective_threads();
    if (saved_blis_ != n) api.set(n);
    else saved_blis_ = -1;
  }
}

ScopedComputeThreads::~ScopedComputeThreads() {
  if (saved_torch_ > 0 && at::get_num_threads() != saved_torch_) set_intra_op_threads_temporarily(saved_torch_);
  if (saved_blis_ > 0) blis_api().set(saved_blis_);
}

}  // namespace coordexp::util
