// CPU compute threads: LibTorch's intra-op pool and the system BLAS's own pool, set together.
// Debian's LibTorch runs its matmuls in the system BLAS (BLIS after scripts/setup.sh), whose thread
// count LibTorch does not control: BLIS reads BLIS_NUM_THREADS (else OMP_NUM_THREADS) once, at its
// first call, and otherwise runs single-threaded. The build links BLIS's libblis.so.4 ahead of
// LibTorch (cmake/CoordexpDependencies.cmake) so the BLAS calls bind to a BLIS whose count can also
// change at run time. Official LibTorch builds use MKL, which follows at::set_num_threads; for them
// the variable is harmless.
#pragma once

#include <string>

namespace coordexp::util {

// Threads for one process: hardware threads / LOCAL_WORLD_SIZE (torchrun's processes per node), >= 1.
int default_compute_threads();

// at::set_num_threads(n), and n BLAS threads unless the user exported BLIS_NUM_THREADS before the
// first call: BLIS_NUM_THREADS = n for a BLIS not yet initialised, and the run-time setting for the
// BLIS serving LibTorch when blas_threads_settable(). Returns n.
int set_compute_threads(int n);

// True when the BLAS that LibTorch's sgemm_ calls bind to exposes BLIS's run-time thread API
// (the library defining the first `sgemm_` also defines bli_thread_set_num_threads).
bool blas_threads_settable();

// The BLAS's current thread count when settable, else -1.
int blas_threads();

// Path of the shared object that provides `sgemm_` to LibTorch ("" when none is loaded).
std::string blas_library();

// How busy the machine is besides this process: the CPUs this process may run on (its affinity
// mask) and the runnable tasks of other processes (/proc/stat procs_running minus this process's
// own tasks in state R). others_runnable < 0: unknown (no /proc).
struct CpuLoad {
  int cpus = 1;
  int others_runnable = -1;
};
CpuLoad sample_cpu_load();

// Compute threads that fit beside the other processes: cpus - others_runnable, clamped to
// [1, max_threads]; max_threads when the load is unknown. Pure.
int threads_for_load(int max_threads, const CpuLoad& load);

// Follows the load from one sample per training step, with hysteresis so a compile that comes and
// goes does not flip the count every step: fewer threads after `down_after` consecutive samples ask
// for fewer (a busy core makes every OpenMP/BLIS barrier wait for a descheduled worker: the step ran
// 10x slower), more after `up_after` consecutive samples leave room (docs/performance.md).
class LoadFollowingThreads {
 public:
  LoadFollowingThreads(int max_threads, int down_after = 2, int up_after = 5);
  // Feeds one sample; returns the thread count to use from now on.
  int observe(const CpuLoad& load);
  int current() const { return current_; }
  int max_threads() const { return max_; }

 private:
  int max_, down_after_, up_after_, current_;
  int streak_ = 0;       // consecutive samples that asked for a change in the same direction
  int streak_dir_ = 0;   // -1 fewer, +1 more, 0 none
  int streak_target_ = 0;  // the count asked for by the latest sample of the streak
};

// While alive: LibTorch intra-op threads = n and, when the BLAS is BLIS, BLIS's thread count = n
// at run time (bli_thread_set_num_threads, looked up with dlsym so no BLAS is linked); both are
// restored on destruction. n <= 0 changes nothing. Used around latency-bound work whose small ops
// lose more to waking/waiting for worker threads than they gain (KV-cache decode steps: on a
// loaded machine every op waits for a descheduled worker).
class ScopedComputeThreads {
 public:
  explicit ScopedComputeThreads(int n);
  ~ScopedComputeThreads();
  ScopedComputeThreads(const ScopedComputeThreads&) = delete;
  ScopedComputeThreads& operator=(const ScopedComputeThreads&) = delete;

 private:
  int saved_torch_ = 0;
  long saved_blis_ = -1;  // -1: BLIS not present or not changed
};

}  // namespace coordexp::util
