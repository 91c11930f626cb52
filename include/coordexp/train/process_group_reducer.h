// StepReducer over a c10d process group (coordexp/dist): the trainer's counts, metric sums and
// gradients are summed across the torchrun ranks; gradients go in flat buckets (dist.bucket_mb).
// Creating the group (rendezvous) is the caller's job (apps/cmd_train.cpp).
#pragma once

#include <memory>

#include "coordexp/dist/process_group.h"
#include "coordexp/train/reducer.h"

namespace coordexp::train {

class ProcessGroupReducer final : public StepReducer {
 public:
  explicit ProcessGroupReducer(std::shared_ptr<dist::ProcessGroup> group) : group_(std::move(group)) {}

  int rank() const override { return group_->rank(); }
  int world_size() const override { return group_->world_size(); }
  void sum(std::vector<int64_t>& values) override { group_->all_reduce_sum(values); }
  void sum(std::vector<double>& values) override { group_->all_reduce_sum(values); }
  void sum_gradients(const std::vector<torch::Tensor>& grads) override { group_->all_reduce_sum(grads); }
  void broadcast(std::string& value) override { value = group_->broadcast(value); }
  void barrier() override { group_->barrier(); }
  void checkpoint_barrier() override { group_->checkpoint_barrier(); }
  void set_context(const std::string& context) override { group_->set_context(context); }

  dist::ProcessGroup& group() { return *group_; }

 private:
  std::shared_ptr<dist::ProcessGroup> group_;
};

}  // namespace coordexp::train
