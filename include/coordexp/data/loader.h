// The data loader: a deterministic epoch plan (shuffle from (seed, epoch), fixed-size or
// token-budget batches, rank sharding with drop_last or padding) executed by a small thread pool
// that builds samples (image decode + resize + tokenize) and collates batches ahead of the consumer.
// Batches come out in plan order whatever the thread timing, so output is independent of
// num_workers, and a LoaderState {epoch, batch} resumes exactly. Applies data.on_invalid to samples
// that fail to build (error: DataError from next(); skip: dropped from the batch and counted).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "coordexp/config/sections/data.h"
#include "coordexp/data/collate.h"
#include "coordexp/data/dataset.h"

namespace coordexp::data {

struct LoaderOptions {
  // Samples per batch on each rank; with max_batch_tokens > 0 the cap on samples (0 = no cap).
  int64_t batch_size = 1;
  // > 0: token-budget batching: samples x longest sequence (image tokens included) <= this.
  int64_t max_batch_tokens = 0;
  // Token-budget batching sorts by length within windows of this many shuffled samples.
  int64_t length_group_window = 256;
  bool shuffle = true;
  uint64_t seed = 0;
  // Uneven end of an epoch: drop the incomplete tail (true) or pad by repeating the epoch's first
  // samples (fixed size) / batches so every rank has the same number of batches (false).
  bool drop_last = false;
  // With drop_last false: leave the padding repeats out of the batches (they keep their place in the
  // plan, so every rank still gets the same number of batches, some smaller or empty). Validation
  // sets it so each sample is counted once; training keeps them (false).
  bool exclude_repeats = false;
  int rank = 0;
  int world_size = 1;
  int num_workers = 2;        // 0 = build on the calling thread inside next()
  int prefetch_batches = 2;   // batches in flight ahead of the consumer
  InvalidPolicy on_invalid = InvalidPolicy::kError;

  // From the data section; batch size, seed and the rank layout belong to the trainer.
  static LoaderOptions from_config(const config::DataOptions& data, int64_t batch_size, uint64_t seed,
                                   int rank = 0, int world_size = 1);
  void validate() const;  // ConfigError naming the key
};

// Position of a loader: the next batch next() returns is batch `batch` of epoch `epoch` of this
// rank. Plus the skip counts consumed so far (so resumed runs keep counting). Serializable as JSON.
struct LoaderState {
  int64_t epoch = 0;
  int64_t batch = 0;
  ReasonCounts skipped;

  std::string to_json() const;
  static LoaderState from_json(const std::string& json);  // DataError on malformed text
  bool operator==(const LoaderState& o) const {
    return epoch == o.epoch && batch == o.batch && skipped == o.skipped;
  }
};

// One epoch's batches for one rank (dataset indices in row order).
struct EpochPlan {
  std::vector<std::vector<int64_t>> batches;
  // Padding repeats (drop_last false) always fill the last slots of a batch: batch index -> how many
  // of its last slots are repeats, for the (at most world_size) batches that have any.
  std::map<int64_t, int64_t> trailing_repeats;
  int64_t num_padded = 0;   // sample slots filled with repeated samples (all ranks together)
  int64_t num_dropped = 0;  // samples left out of the epoch (all ranks together)
};

// The plan is a pure function of the lengths, the options and the epoch: every rank computes the
// whole epoch's batches and takes batches rank, rank + world_size, ... (disjoint across ranks
// unless padded). Fixed size: consecutive chunks of the (shuffled) order. Token budget: windows of
// length_group_window samples sorted by length (stable), cut greedily at the budget, then all
// batches shuffled. Throws DataError when a rank would get no batch.
EpochPlan plan_epoch(const std::vector<int64_t>& sequence_lengths, const LoaderOptions& options, int64_t epoch);

// A permutation of 0..n-1 from (seed, stream): the same on every platform (own generator and
// Fisher-Yates, not std::shuffle).
std::vector<int64_t> deterministic_permutation(int64_t n, uint64_t seed, uint64_t stream);

class DataLoader {
 public:
  // Starts the workers and begins prefetching at `start`. A state at or past the end of its epoch
  // continues with the next epoch.
  DataLoader(std::shared_ptr<const DetectionDataset> dataset, LoaderOptions options, LoaderState start = {});
  ~DataLoader();  // stops and joins the workers (finishing the samples they are building)
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch of this rank; after an epoch's last batch the next epoch begins (endless).
  // Throws DataError (file:line: reason) for a sample that fails with on_invalid=error; the
  // position then stays at that batch. With skip, a batch may hold fewer samples, even none
  // (Batch::skipped says why); the batch count per epoch never changes.
  Batch next();
  // The token metadata of the next n batches next() will return, without moving the position or
  // loading pixels (DetectionDataset::try_get_tokens, collated; pixel_values empty). Built on the
  // calling thread. Samples try_get_tokens refuses are left out (next() then reports them as usual);
  // a sample next() later finds unreadable (image_unreadable / image_size_mismatch) is in it.
  std::vector<Batch> peek_tokens(int64_t n);

  LoaderState state() const;                     // position after the last batch next() returned
  int64_t batches_in_epoch(int64_t epoch) const; // this rank's batch count (fixed unless token budget)
  const EpochPlan& plan(int64_t epoch) const;    // cached per epoch; thread-compatible (caller thread)

  // Counters for logs and metrics: "data_invalid_<reason>" (records dropped at load),
  // "data_skipped_<reason>" (samples skipped while building, as consumed), "data_padded_samples" and
  // "data_dropped_samples" (epochs planned so far on this rank's behalf, whole world).
  std::map<std::string, int64_t> counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coordexp::data
