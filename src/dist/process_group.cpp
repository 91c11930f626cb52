// c10d process group (process_group.h): store rendezvous, Gloo or NCCL group creation, and the
// collectives. Small vectors and gradient buckets are staged in one flat tensor on the backend's
// device (CPU for Gloo, this rank's GPU for NCCL), so a step issues few collectives.
// Torch's CMake targets define USE_C10D_GLOO / USE_C10D_NCCL for the backends the LibTorch build
// has (Debian's 1.13 CPU build: Gloo; official CUDA builds: both); the c10d headers are guarded by them.
#ifndef USE_C10D_GLOO
#error "this LibTorch has no Gloo backend (USE_C10D_GLOO undefined); coordexp needs it for multi-process CPU runs"
#endif
#ifdef COORDEXP_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "coordexp/dist/process_group.h"

#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "coordexp/util/error.h"
#include "coordexp/util/torch_compat.h"

namespace coordexp::dist {
namespace {

// ProcessGroup (1.13) or Backend (2.x): see util/torch_compat.h.
using compat::CollectiveBackend;

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// Gloo's network device: GLOO_SOCKET_IFNAME (as in PyTorch), loopback for a loopback master (one
// machine), else the address this host's name resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device(const LaunchEnv& env) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (is_loopback(env.master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// The first line of an exception's message (c10::Error's what() appends a C++ backtrace).
std::string first_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error ? c10_error->what_without_backtrace() : e.what();
  if (const auto nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
  return text;
}

#ifdef USE_C10D_NCCL
// LibTorch's NCCL group enforces Options::timeout only with blocking wait (wait() polls and throws
// once the timeout has passed: our collectives' errors) or async error handling (a watchdog thread
// aborts the process). 1.13 reads NCCL_BLOCKING_WAIT / NCCL_ASYNC_ERROR_HANDLING, and without them
// a dead peer hangs the others forever; 2.2+ reads TORCH_NCCL_* (the old names deprecated; async
// error handling defaults to tearing the process down, without saying which step). Blocking wait
// gives every rank a thrown error naming the step and the collective; the cost is that the CPU
// waits for each gradient bucket before queueing the next. A user's own setting wins.
void enable_nccl_timeouts() {
  for (const char* v : {"TORCH_NCCL_BLOCKING_WAIT", "NCCL_BLOCKING_WAIT", "TORCH_NCCL_ASYNC_ERROR_HANDLING",
                        "NCCL_ASYNC_ERROR_HANDLING"})  // every name either version reads
    if (const char* value = std::getenv(v); value && *value) {
      spdlog::info("dist: {}={} is set in the environment: NCCL error handling left as configured "
                   "(unset it to get blocking wait, which enforces dist.timeout_s with a clear error)", v, value);
      return;
    }
  const char* const blocking_wait = compat::kNcclBlockingWaitEnv;
  ::setenv(blocking_wait, "1", /*overwrite=*/0);  // read by ProcessGroupNCCL's constructor
  spdlog::debug("dist: {}=1 (NCCL collectives time out after dist.timeout_s)", blocking_wait);
}
#endif

}  // namespace

bool nccl_available() {
#ifdef USE_C10D_NCCL
  return true;
#else
  return false;
#endif
}

std::string resolve_backend(const std::string& option, bool on_cuda) {
  if (option == "auto") return on_cuda && nccl_available() ? "nccl" : "gloo";
  if (option == "nccl") {
    if (!nccl_available())
      throw ConfigError("dist.backend is nccl but this build has no NCCL (LibTorch without CUDA)", "key dist.backend",
                        "use gloo or auto, or build against a CUDA LibTorch");
    if (!on_cuda)
      throw ConfigError("dist.backend is nccl but training runs on CPU", "key dist.backend",
                        "use gloo or auto on CPU (NCCL reduces CUDA tensors only)");
  }
  if (option != "gloo" && option != "nccl")
    throw ConfigError("dist.backend is '" + option + "'", "key dist.backend", "use auto, gloo or nccl");
  return option;
}

std::vector<std::vector<size_t>> plan_buckets(const std::vector<torch::Tensor>& tensors, int64_t bucket_bytes) {
  std::vector<std::vector<size_t>> buckets;
  int64_t filled = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const torch::Tensor& t = tensors[i];
    COORDEXP_CHECK(t.defined(), "tensor " << i << " is undefined");
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    const bool joins = !buckets.empty() && filled + bytes <= bucket_bytes &&
                       tensors[buckets.back().front()].scalar_type() == t.scalar_type() &&
                       tensors[buckets.back().front()].device() == t.device();
    if (!joins) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(i);
    filled += bytes;
  }
  return buckets;
}

struct ProcessGroup::Impl {
  LaunchEnv env;
  GroupOptions options;
  std::string backend_name;
  torch::Device device = torch::kCPU;  // where collectives' tensors live
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<CollectiveBackend> group;
  int64_t num_collectives = 0;

  std::string context;          // set_context(): "step 12", "" = setup
  int64_t num_checkpoint_barriers = 0;

  // "step 12: gradient all-reduce (bucket 1 of 3; collective #57) failed on rank 0 of 2 after
  // 0.1 s." — what a failed collective's error starts with.
  std::string failure(const std::string& what, double seconds) const {
    char took[32];
    std::snprintf(took, sizeof took, "%.1f", seconds);
    return "dist: " + (context.empty() ? std::string("setup") : context) + ": " + what + " (collective #" +
           std::to_string(num_collectives) + ") failed on rank " + std::to_string(env.rank) + " of " +
           std::to_string(env.world_size) + " after " + took + " s. ";
  }

  // Waits for one collective; failures (a dead peer, the timeout) become errors that name the step
  // and the collective and say what to do.
  void finish(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
    ++num_collectives;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      work->wait();
    } catch (const std::exception& e) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      throw std::runtime_error(failure(what, s) + "Another rank probably stopped or crashed (see its log: "
                               "train.rank<k>.log in train.output_dir), or did not reach this point within "
                               "dist.timeout_s = " + std::to_string(options.timeout_s) + " s. Cause: " + first_line(e));
    }
  }

  void all_reduce(torch::Tensor& t, const std::string& what) {
    std::vector<at::Tensor> v{t};
    c10d::AllreduceOptions sum;
    sum.reduceOp = c10d::ReduceOp::SUM;  // the default, spelled out: every caller sums
    finish(group->allreduce(v, sum), what);
  }

  template <class T>
  void all_reduce_vector(std::vector<T>& values, c10::ScalarType dtype, const char* type_name) {
    if (values.empty()) return;
    torch::Tensor t = torch::from_blob(values.data(), {static_cast<int64_t>(values.size())}, dtype).to(device);
    all_reduce(t, "all-reduce of " + std::to_string(values.size()) + " " + type_name + " value(s)");  // on CPU `t` is `values`' own memory
    if (t.device() != torch::kCPU) t = t.cpu();
    if (t.data_ptr() != static_cast<void*>(values.data()))
      std::memcpy(values.data(), t.data_ptr(), values.size() * sizeof(T));
  }

  torch::Tensor broadcast_tensor(torch::Tensor t) {
    std::vector<at::Tensor> v{t};
    finish(group->broadcast(v), "broadcast from rank 0");
    return t;
  }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const LaunchEnv& env, const GroupOptions& options,
                                                    bool on_cuda) {
  COORDEXP_CHECK(options.timeout_s > 0 && options.save_timeout_s > 0 && options.bucket_bytes > 0,
                 "timeout_s " << options.timeout_s << ", save_timeout_s " << options.save_timeout_s
                              << ", bucket_bytes " << options.bucket_bytes);
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  impl->options = options;
  impl->backend_name = resolve_backend(options.backend, on_cuda);
  const std::chrono::milliseconds timeout(static_cast<int64_t>(options.timeout_s) * 1000);
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
#ifdef COORDEXP_WITH_CUDA
  // One GPU per local rank: the model's "cuda" device (the current one) becomes cuda:LOCAL_RANK.
  if (on_cuda) c10::cuda::set_device(static_cast<c10::DeviceIndex>(env.local_rank));
#endif

  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = env.rank == 0 && !env.agent_store;
    so.numWorkers = static_cast<size_t>(env.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    if (env.agent_store)  // torchrun's own prefix for the workers of this restart attempt
      impl->store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count),
                                                           impl->store);
    if (impl->backend_name == "gloo") {
      auto go = c10d::ProcessGroupGloo::Options::create(timeout);
      go->devices.push_back(gloo_device(env));
      impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world_size, go);
    } else {
#ifdef USE_C10D_NCCL
      impl->device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
      enable_nccl_timeouts();
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = timeout;
      impl->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, env.rank, env.world_size, no);
#endif
    }
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {
    throw std::runtime_error("dist: rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                             " could not set up the " + impl->backend_name + " process group with the rendezvous at " +
                             where + " (MASTER_ADDR:MASTER_PORT) within dist.timeout_s = " +
                             std::to_string(options.timeout_s) + " s. Check that every rank got the same "
                             "MASTER_ADDR/MASTER_PORT/WORLD_SIZE, that rank 0 is running and the port is free and "
                             "reachable. Cause: " + e.what());
  }
  spdlog::info("dist: rank {} of {} (local {} of {}) joined the {} process group at {}", env.rank, env.world_size,
               env.local_rank, env.local_world_size, impl->backend_name, where);
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::world_size() const { return impl_->env.world_size; }
const std::string& ProcessGroup::backend() const { return impl_->backend_name; }
int64_t ProcessGroup::num_collectives() const { return impl_->num_collectives; }

void ProcessGroup::all_reduce_sum(std::vector<int64_t>& values) {
  impl_->all_reduce_vector(values, torch::kInt64, "int64");
}
void ProcessGroup::all_reduce_sum(std::vector<double>& values) {
  impl_->all_reduce_vector(values, torch::kFloat64, "float64");
}

void ProcessGroup::all_reduce_sum(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  const auto buckets = plan_buckets(tensors, impl_->options.bucket_bytes);
  for (size_t b = 0; b < buckets.size(); ++b) {
    const auto& bucket = buckets[b];
    const std::string what =
        "gradient all-reduce (bucket " + std::to_string(b + 1) + " of " + std::to_string(buckets.size()) + ")";
    const torch::Tensor& first = tensors[bucket.front()];
    if (bucket.size() == 1 && first.is_contiguous() && first.device() == impl_->device) {
      torch::Tensor t = first;  // reduced in place, no staging copy
      impl_->all_reduce(t, what);
      continue;
    }
    std::vector<torch::Tensor> flat_parts;
    for (size_t i : bucket) flat_parts.push_back(tensors[i].reshape({-1}));
    torch::Tensor flat = torch::cat(flat_parts).to(impl_->device);
    impl_->all_reduce(flat, what);
    int64_t offset = 0;
    for (size_t i : bucket) {
      const torch::Tensor& t = tensors[i];
      t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

int64_t ProcessGroup::broadcast(int64_t value) {
  torch::Tensor t = torch::full({1}, value, torch::TensorOptions().dtype(torch::kInt64).device(impl_->device));
  return impl_->broadcast_tensor(t).cpu().item<int64_t>();
}

std::string ProcessGroup::broadcast(const std::string& value) {
  const int64_t size = broadcast(static_cast<int64_t>(value.size()));
  if (size == 0) return {};
  torch::Tensor bytes = torch::empty({size}, torch::kUInt8);
  if (rank() == 0) std::memcpy(bytes.data_ptr(), value.data(), value.size());
  bytes = impl_->broadcast_tensor(bytes.to(impl_->device)).cpu();
  return std::string(static_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(size));
}

void ProcessGroup::barrier() { impl_->finish(impl_->group->barrier(), "barrier"); }

// Through the store: Gloo's barrier ignores BarrierOptions::timeout (it runs under the group's
// timeout) and NCCL's is an all-reduce under the same timeout, so neither can wait longer than
// dist.timeout_s. Every rank adds 1 to a counter; the last one to arrive sets the done key.
void ProcessGroup::checkpoint_barrier() {
  Impl& d = *impl_;
  ++d.num_collectives;
  const std::string key = "coordexp/checkpoint_barrier/" + std::to_string(d.num_checkpoint_barriers++);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    if (d.store->add(key, 1) == d.env.world_size) d.store->set(key + "/done", std::vector<uint8_t>{1});
    d.store->wait({key + "/done"}, std::chrono::milliseconds(static_cast<int64_t>(d.options.save_timeout_s) * 1000));
  } catch (const std::exception& e) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    throw std::runtime_error(d.failure("checkpoint barrier (the ranks wait while rank 0 writes)", s) +
                             "Rank 0 probably crashed while saving (see train.log), or the save took longer than "
                             "dist.save_timeout_s = " + std::to_string(d.options.save_timeout_s) +
                             " s (raise it for a slow disk). Cause: " + first_line(e));
  }
}

void ProcessGroup::set_context(std::string context) { impl_->context = std::move(context); }

}  // namespace coordexp::dist
