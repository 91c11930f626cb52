// Channel-B sampler (b_sampler.h): per-epoch Fisher-Yates permutations drawn with rollout::RowRng
// (SplitMix64, platform-independent), rank-strided picks.
#include "coordexp/train/b_sampler.h"

#include <numeric>

#include "coordexp/rollout/sampling.h"
#include "coordexp/util/error.h"

namespace coordexp::train {

BSampler::BSampler(int64_t dataset_size, uint64_t seed, int rank, int world_size, int64_t position)
    : size_(dataset_size), seed_(seed), rank_(rank), world_(world_size), position_(position) {
  COORDEXP_CHECK(size_ > 0, "Channel-B sampler over an empty dataset");
  COORDEXP_CHECK(world_ >= 1 && rank_ >= 0 && rank_ < world_, "rank " << rank_ << " of " << world_);
  COORDEXP_CHECK(position_ >= 0, "negative sampler position " << position_);
}

const std::vector<int64_t>& BSampler::permutation(int64_t epoch) {
  if (epoch == cached_epoch_) return cached_perm_;
  cached_perm_.resize(static_cast<size_t>(size_));
  std::iota(cached_perm_.begin(), cached_perm_.end(), int64_t{0});
  // A distinct stream per epoch; the constant keeps B's order unrelated to the loader's shuffle.
  rollout::RowRng rng(seed_ ^ (0xB5AD4ECEDA1CE2A9ULL + static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ULL));
  for (int64_t i = size_ - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(i + 1));
    std::swap(cached_perm_[static_cast<size_t>(i)], cached_perm_[static_cast<size_t>(j)]);
  }
  cached_epoch_ = epoch;
  return cached_perm_;
}

std::vector<BSampler::Pick> BSampler::next(int64_t n) {
  COORDEXP_CHECK(n >= 0, "negative sample count");
  std::vector<Pick> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const int64_t g = position_ + j * world_ + rank_;
    const int64_t epoch = g / size_;
    out.push_back({permutation(epoch)[static_cast<size_t>(g % size_)], epoch});
  }
  position_ += n * world_;
  return out;
}

}  // namespace coordexp::train
