// A c10d process group for data-parallel training: the rendezvous store (rank 0 hosts a TCPStore at
// MASTER_ADDR:MASTER_PORT unless torchrun's agent already does), a Gloo (CPU) or NCCL (CUDA builds)
// group, and the few collectives training needs — sums of small integer/double vectors, bucketed
// sums of gradient tensors, broadcasts from rank 0, barrier. Works on plain tensors; never sees a model.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "coordexp/dist/launch_env.h"

namespace coordexp::dist {

// How the group is set up; the CLI fills it from the config's `dist:` section.
struct GroupOptions {
  std::string backend = "auto";              // auto (nccl on CUDA when available, else gloo) | gloo | nccl
  int timeout_s = 1800;                      // rendezvous and per-collective timeout, seconds (> 0)
  int save_timeout_s = 7200;                 // checkpoint_barrier()'s timeout, seconds (> 0)
  int64_t bucket_bytes = int64_t{25} << 20;  // cap of one flat gradient bucket (> 0)
};

// "gloo" or "nccl" for dist.backend on a CPU or CUDA run. Throws ConfigError (key dist.backend) for
// nccl on CPU or in a build without NCCL.
std::string resolve_backend(const std::string& backend_option, bool training_on_cuda);

// True when this LibTorch build was compiled with the NCCL backend available to coordexp.
bool nccl_available();

// Groups tensors into buckets for bucketed all-reduce: consecutive tensors of the same dtype and
// device, each bucket at most `bucket_bytes` (a tensor larger than that is a bucket of its own).
// Returns index lists covering 0..n-1 in order. Undefined tensors are not allowed.
std::vector<std::vector<size_t>> plan_buckets(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes);

class ProcessGroup {
 public:
  // Joins (or hosts, on rank 0) the rendezvous and creates the group; blocks until all
  // env.world_size ranks joined. A CUDA run first makes cuda:env.local_rank the current device. NCCL:
  // turns on blocking wait (TORCH_NCCL_BLOCKING_WAIT=1 on LibTorch >= 2.2, NCCL_BLOCKING_WAIT=1
  // before) unless the environment already sets it or async error handling, so a collective that
  // does not finish within timeout_s throws instead of hanging. Throws
  // ConfigError for a bad backend choice and std::runtime_error naming MASTER_ADDR:MASTER_PORT when
  // the rendezvous fails or times out (options.timeout_s).
  static std::unique_ptr<ProcessGroup> connect(const LaunchEnv& env, const GroupOptions& options,
                                               bool training_on_cuda);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int world_size() const;
  const std::string& backend() const;  // "gloo" | "nccl"

  // Element-wise sums over ranks, in place. Every rank must call the same collectives in the same
  // order with the same lengths / shapes / dtypes (a mismatch hangs until the timeout or errors).
  void all_reduce_sum(std::vector<int64_t>& values);
  void all_reduce_sum(std::vector<double>& values);
  // Sums each tensor over ranks in place, flattened into buckets of options.bucket_bytes (one
  // collective per bucket). Tensors may be non-contiguous views; all must be defined.
  void all_reduce_sum(const std::vector<torch::Tensor>& tensors);
  // Rank 0's value on every rank (returned; the argument is ignored on ranks > 0).
  int64_t broadcast(int64_t value);
  std::string broadcast(const std::string& value);
  void barrier();
  // A barrier that waits up to options.save_timeout_s (through the rendezvous store, so neither
  // Gloo's nor NCCL's per-collective timeout applies): the ranks waiting while rank 0 writes a
  // checkpoint.
  void checkpoint_barrier();

  // What the ranks are doing ("step 12"); failed collectives name it in their error, e.g. "dist:
  // step 12: gradient all-reduce (bucket 1 of 3) on rank 0 of 2 failed ...". Empty = setup.
  void set_context(std::string context);

  int64_t num_collectives() const;  // collectives issued so far (tests check the bucketing)

 private:
  struct Impl;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coordexp::dist
