// The Channel-B sampler: which training samples a B step rolls out, independent of the Channel-A /
// Stage-1 loader's position (seed 6.1.1: B has its own data source). The training set is walked in
// epochs; epoch e is a permutation of all indices drawn from (seed, e) with SplitMix64 (the same on
// every platform). Global position g maps to (epoch g / N, slot g % N); a call for n samples per rank
// hands rank r the slots g + j * world + r (j < n) and advances g by n * world, so ranks never share a
// sample within an epoch and the whole state is the one integer g (checkpointed, resume-exact).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace coordexp::train {

class BSampler {
 public:
  // `dataset_size` > 0; `position` = a saved position() (0 at the start of a run).
  BSampler(int64_t dataset_size, uint64_t seed, int rank, int world_size, int64_t position = 0);

  struct Pick {
    int64_t index = 0;  // dataset index
    int64_t epoch = 0;  // B epoch it was drawn in (also the object-order epoch of the sample)
  };
  // This rank's next `n` samples; every rank must call with the same n.
  std::vector<Pick> next(int64_t n);

  int64_t position() const { return position_; }

 private:
  const std::vector<int64_t>& permutation(int64_t epoch);

  int64_t size_;
  uint64_t seed_;
  int rank_, world_;
  int64_t position_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_perm_;
};

}  // namespace coordexp::train
