// Compute threads: the BLAS LibTorch calls can change its thread count at run time (so decode steps
// inside a multi-threaded trainer run single-threaded), checked by which threads burn CPU during a
// large matmul: with n = 1 only the calling thread does, with n = 2 another one does too.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <ATen/Parallel.h>

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "coordexp/util/threads.h"

namespace coordexp::util {
namespace {

// utime + stime (clock ticks) of every thread of this process, by thread id.
std::map<long, long> thread_cpu_ticks() {
  std::map<long, long> ticks;
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return ticks;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/stat");
    std::string line;
    std::getline(in, line);
    const auto close = line.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {  // fields 14 and 15 are utime and stime
      if (i == 14) utime = std::stol(field);
      if (i == 15) stime = std::stol(field);
    }
    ticks[std::stol(e->d_name)] = utime + stime;
  }
  ::closedir(dir);
  return ticks;
}

struct CpuSplit {
  long caller = 0;  // ticks of the calling thread
  long others = 0;  // ticks of every other thread of the process
};

// CPU ticks by thread while `reps` float32 [n, n] x [n, n] matmuls run on this thread.
CpuSplit cpu_during_matmuls(int64_t n, int reps) {
  const auto a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::mm(a, b);  // warm-up: thread pools started, pages touched
  const long self = ::syscall(SYS_gettid);
  const auto before = thread_cpu_ticks();
  for (int i = 0; i < reps; ++i) torch::mm(a, b);
  const auto after = thread_cpu_ticks();
  CpuSplit s;
  for (const auto& [tid, t] : after) {
    const auto it = before.find(tid);
    const long d = t - (it == before.end() ? 0 : it->second);
    (tid == self ? s.caller : s.others) += d;
  }
  return s;
}

TEST(ComputeThreads, BlasThreadCountChangesAtRunTime) {
#ifndef COORDEXP_BLAS_THREADS_EXPECTED
  if (!blas_threads_settable()) GTEST_SKIP() << "the BLAS LibTorch calls (" << blas_library()
                                             << ") has no run-time thread API";
#endif
  ASSERT_TRUE(blas_threads_settable())
      << "LibTorch's sgemm_ comes from " << blas_library()
      << ", not from a BLIS whose thread count can be set (see cmake/CoordexpDependencies.cmake)";
  {
    const ScopedComputeThreads two(2);
    EXPECT_EQ(blas_threads(), 2);
    const CpuSplit s = cpu_during_matmuls(1536, 4);
    ASSERT_GT(s.caller, 10) << "matmuls too short to measure";
    EXPECT_GT(s.others, s.caller / 4) << "2 threads: a second thread shares the work";
  }
  {
    const ScopedComputeThreads one(1);
    EXPECT_EQ(blas_threads(), 1);
    const CpuSplit s = cpu_during_matmuls(1536, 4);
    ASSERT_GT(s.caller, 10) << "matmuls too short to measure";
    EXPECT_LT(s.others, s.caller / 10) << "1 thread: the matmul stays on the calling thread";
  }
}

TEST(ComputeThreads, ScopeRestoresBothCounts) {
  const int torch_before = at::get_num_threads();
  const int blas_before = blas_threads();
  {
    const ScopedComputeThreads three(3);
    EXPECT_EQ(at::get_num_threads(), 3);
    if (blas_threads_settable()) EXPECT_EQ(blas_threads(), 3);
  }
  EXPECT_EQ(at::get_num_threads(), torch_before);
  EXPECT_EQ(blas_threads(), blas_before);
  const ScopedComputeThreads unchanged(0);
  EXPECT_EQ(at::get_num_threads(), torch_before);
}

// A scope is put around every generate call's decode loop, so entering and leaving one must cost
// far less than a decode step (at::set_num_threads pairs cost ~8.5 ms here: they rebuild caffe2's
// pthreadpool).
TEST(ComputeThreads, ScopeCostsMicrosecondsNotMilliseconds) {
  const ScopedComputeThreads two(2);
  torch::mm(torch::randn({256, 256}), torch::randn({256, 256}));  // pools started
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) {
    const ScopedComputeThreads one(1);
    EXPECT_EQ(at::get_num_threads(), 1);
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_LT(ms, 50.0) << "100 scopes took " << ms << " ms";
}

TEST(ComputeThreads, ThreadsForLoadLeaveTheBusyCoresAlone) {
  EXPECT_EQ(threads_for_load(2, {2, 0}), 2);
  EXPECT_EQ(threads_for_load(2, {2, 1}), 1);
  EXPECT_EQ(threads_for_load(2, {2, 5}), 1) << "never below one thread";
  EXPECT_EQ(threads_for_load(8, {16, 4}), 8) << "never above the configured count";
  EXPECT_EQ(threads_for_load(16, {16, 4}), 12);
  EXPECT_EQ(threads_for_load(4, {4, -1}), 4) << "unknown load: the configured count";
  EXPECT_EQ(threads_for_load(0, {4, 0}), 1);
}

TEST(ComputeThreads, FollowerGoesDownAfterTwoBusySamplesAndUpAfterFiveQuietOnes) {
  LoadFollowingThreads f(4, 2, 5);
  const CpuLoad quiet{4, 0}, two_busy{4, 2}, three_busy{4, 3};
  EXPECT_EQ(f.current(), 4);
  EXPECT_EQ(f.observe(two_busy), 4) << "one busy sample is not enough";
  EXPECT_EQ(f.observe(quiet), 4) << "the streak is broken";
  EXPECT_EQ(f.observe(two_busy), 4);
  EXPECT_EQ(f.observe(three_busy), 2) << "down after 2 samples, to the mildest request of the streak";
  for (int i = 0; i < 4; ++i) EXPECT_EQ(f.observe(quiet), 2) << "up needs 5 quiet samples, sample " << i;
  EXPECT_EQ(f.observe(quiet), 4);
  // Up steps take the lowest request of the streak.
  EXPECT_EQ(f.observe(three_busy), 4);
  EXPECT_EQ(f.observe(three_busy), 1);
  const CpuLoad one_busy{4, 1};
  for (int i = 0; i < 4; ++i) f.observe(i == 2 ? one_busy : quiet);
  EXPECT_EQ(f.observe(quiet), 3) << "one of the five samples still had a core busy";
}

// A real busy process beside this one is seen: with a spinning child the sample counts at least one
// other runnable task, and this process's own threads (the test's, OpenMP's) are not counted.
TEST(ComputeThreads, SampleSeesAnotherProcessSpinning) {
  const CpuLoad before = sample_cpu_load();
  ASSERT_GE(before.cpus, 1);
  ASSERT_GE(before.others_runnable, 0) << "/proc/stat and /proc/self/task are readable on Linux";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (volatile unsigned long i = 0;; ++i) {
    }
  }
  int seen = 0;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (sample_cpu_load().others_runnable >= 1) ++seen;
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_GE(seen, 18) << "a spinning process is runnable at (almost) every sample";
}

}  // namespace
}  // namespace coordexp::util
