// The collectives a training step needs, behind a small interface so data parallelism plugs in
// from outside: summing supervised-item counts before the forward, summing gradients and metric
// sums after the backward, agreeing on rank 0's choices (resume checkpoint, stop), and a barrier
// around checkpoint writes (with its own timeout). LocalReducer is the single-process identity; ProcessGroupReducer
// (process_group_reducer.h) runs them over a c10d process group (src/dist).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace coordexp::train {

class StepReducer {
 public:
  virtual ~StepReducer() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Element-wise sums over ranks, in place. Every rank calls these in the same order with vectors
  // of the same length.
  virtual void sum(std::vector<int64_t>& values) = 0;
  virtual void sum(std::vector<double>& values) = 0;
  // Sums each gradient tensor over ranks, in place (each rank's loss is already divided by the
  // global count, so the sum is the global-batch gradient). Every rank passes the same list of
  // shapes (all defined).
  virtual void sum_gradients(const std::vector<torch::Tensor>& grads) = 0;
  // Replaces `value` with rank 0's value on every rank.
  virtual void broadcast(std::string& value) = 0;
  // Returns once every rank has called it.
  virtual void barrier() = 0;
  // The barrier around a checkpoint write (rank 0 writes, the others wait): its own, longer
  // timeout (dist.save_timeout_s) where there is one.
  virtual void checkpoint_barrier() { barrier(); }
  // What the ranks are doing ("step 12"): a collective that fails names it in its error.
  virtual void set_context(const std::string& /*context*/) {}
};

class LocalReducer final : public StepReducer {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void sum(std::vector<int64_t>&) override {}
  void sum(std::vector<double>&) override {}
  void sum_gradients(const std::vector<torch::Tensor>&) override {}
  void broadcast(std::string&) override {}
  void barrier() override {}
};

}  // namespace coordexp::train
