// Epoch planning (pure) and the prefetching DataLoader. Determinism: the plan depends only on
// (lengths, options, epoch); workers fill per-batch slots that the consumer takes strictly in plan
// order, and a batch's outcome (samples kept, first error) is decided in slot order, never by timing.
#include "coordexp/data/loader.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "coordexp/util/error.h"

namespace coordexp::data {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform integer in [0, range) without modulo bias (Lemire's multiply-and-reject).
uint64_t bounded(uint64_t& state, uint64_t range) {
  unsigned __int128 m = static_cast<unsigned __int128>(splitmix64(state)) * range;
  auto low = static_cast<uint64_t>(m);
  if (low < range) {
    const uint64_t threshold = (0 - range) % range;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(splitmix64(state)) * range;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

// Streams of deterministic_permutation used by the plan.
uint64_t sample_stream(int64_t epoch) { return static_cast<uint64_t>(epoch) * 2; }
uint64_t batch_stream(int64_t epoch) { return static_cast<uint64_t>(epoch) * 2 + 1; }

// Samples cut into token-budget batches: windows sorted by length, then greedy.
std::vector<std::vector<int64_t>> token_budget_batches(const std::vector<int64_t>& order,
                                                       const std::vector<int64_t>& lengths,
                                                       const LoaderOptions& o) {
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> current;
  int64_t longest = 0;
  const auto window = static_cast<size_t>(o.length_group_window);
  for (size_t w = 0; w < order.size(); w += window) {
    std::vector<int64_t> group(order.begin() + static_cast<std::ptrdiff_t>(w),
                               order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), w + window)));
    std::stable_sort(group.begin(), group.end(), [&](int64_t a, int64_t b) {
      return lengths[static_cast<size_t>(a)] < lengths[static_cast<size_t>(b)];
    });
    for (const int64_t idx : group) {
      const int64_t len = lengths[static_cast<size_t>(idx)];
      const int64_t longer = std::max(longest, len);
      const bool over_budget = static_cast<int64_t>(current.size() + 1) * longer > o.max_batch_tokens;
      const bool full = o.batch_size > 0 && static_cast<int64_t>(current.size()) == o.batch_size;
      if (!current.empty() && (over_budget || full)) {
        batches.push_back(std::move(current));
        current.clear();
        longest = 0;
      }
      current.push_back(idx);
      longest = std::max(longest, len);
    }
  }
  if (!current.empty()) batches.push_back(std::move(current));
  return batches;
}

}  // namespace

std::vector<int64_t> deterministic_permutation(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<int64_t> p(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<int64_t>(i);
  uint64_t s = seed;
  uint64_t state = splitmix64(s) ^ stream;
  state = splitmix64(state);
  for (size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[bounded(state, i)]);
  return p;
}

LoaderOptions LoaderOptions::from_config(const config::DataOptions& data, int64_t batch_size, uint64_t seed, int rank,
                                         int world_size) {
  data.validate();
  LoaderOptions o;
  o.batch_size = batch_size;
  o.max_batch_tokens = data.max_batch_tokens;
  o.length_group_window = data.length_group_window;
  o.shuffle = data.shuffle;
  o.seed = seed;
  o.drop_last = data.drop_last;
  o.rank = rank;
  o.world_size = world_size;
  o.num_workers = data.num_workers;
  o.prefetch_batches = data.prefetch_batches;
  o.on_invalid = data.on_invalid == "skip" ? InvalidPolicy::kSkip : InvalidPolicy::kError;
  o.validate();
  return o;
}

void LoaderOptions::validate() const {
  if (max_batch_tokens < 0)
    throw ConfigError("must be >= 0, got " + std::to_string(max_batch_tokens), "key data.max_batch_tokens",
                      "0 turns token-budget batching off");
  if (batch_size < (max_batch_tokens > 0 ? 0 : 1))
    throw ConfigError("batch size must be >= 1 (>= 0 with data.max_batch_tokens), got " + std::to_string(batch_size),
                      "batch size", "set the trainer's batch size");
  if (length_group_window < 1)
    throw ConfigError("must be >= 1", "key data.length_group_window", "1 disables length grouping");
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw ConfigError("rank " + std::to_string(rank) + " outside world size " + std::to_string(world_size),
                      "data loader", "check RANK / WORLD_SIZE");
  if (num_workers < 0) throw ConfigError("must be >= 0", "key data.num_workers", "0 = calling thread");
  if (prefetch_batches < 1) throw ConfigError("must be >= 1", "key data.prefetch_batches", "use 1 or 2");
}

std::string LoaderState::to_json() const {
  nlohmann::json j;
  j["epoch"] = epoch;
  j["batch"] = batch;
  j["skipped"] = skipped;
  return j.dump();
}

LoaderState LoaderState::from_json(const std::string& text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    LoaderState s;
    s.epoch = j.at("epoch").get<int64_t>();
    s.batch = j.at("batch").get<int64_t>();
    if (j.contains("skipped")) s.skipped = j.at("skipped").get<ReasonCounts>();
    if (s.epoch < 0 || s.batch < 0) throw DataError("negative epoch or batch", "data loader state");
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw DataError(std::string("malformed data loader state: ") + e.what(), "data loader state",
                    "the checkpoint's trainer_state is damaged; resume from an older checkpoint");
  }
}

EpochPlan plan_epoch(const std::vector<int64_t>& lengths, const LoaderOptions& o, int64_t epoch) {
  const auto n = static_cast<int64_t>(lengths.size());
  const int64_t world = o.world_size;
  if (n == 0) throw DataError("the dataset has no samples", "data loader", "check data.train_jsonl and the skip counts");
  std::vector<int64_t> order(static_cast<size_t>(n));
  if (o.shuffle)
    order = deterministic_permutation(n, o.seed, sample_stream(epoch));
  else
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;

  EpochPlan plan;
  if (o.max_batch_tokens == 0) {
    // Fixed size: equal shards order[rank::world], then chunks of batch_size.
    if (o.drop_last) {
      const int64_t keep = n - n % (world * o.batch_size);
      plan.num_dropped = n - keep;
      order.resize(static_cast<size_t>(keep));
    } else {
      plan.num_padded = (world - n % world) % world;
      for (int64_t i = 0; i < plan.num_padded; ++i) order.push_back(order[static_cast<size_t>(i % n)]);
    }
    const size_t first_repeat = order.size() - static_cast<size_t>(plan.num_padded);
    std::vector<int64_t> shard;
    size_t shard_repeats = 0;  // the repeats are the shard's last entries
    for (size_t i = static_cast<size_t>(o.rank); i < order.size(); i += static_cast<size_t>(world)) {
      shard.push_back(order[i]);
      shard_repeats += i >= first_repeat ? 1 : 0;
    }
    for (size_t i = 0; i < shard.size(); i += static_cast<size_t>(o.batch_size)) {
      const size_t end = std::min(shard.size(), i + static_cast<size_t>(o.batch_size));
      plan.batches.emplace_back(shard.begin() + static_cast<std::ptrdiff_t>(i), shard.begin() + static_cast<std::ptrdiff_t>(end));
      const size_t first = shard.size() - shard_repeats;  // repeats in [first, size)
      if (end > first)
        plan.trailing_repeats[static_cast<int64_t>(plan.batches.size() - 1)] = static_cast<int64_t>(end - std::max(i, first));
    }
  } else {
    // Token budget: whole-epoch batches, shuffled, then batches rank, rank + world, ...
    auto batches = token_budget_batches(order, lengths, o);
    if (o.shuffle) {
      const auto perm = deterministic_permutation(static_cast<int64_t>(batches.size()), o.seed, batch_stream(epoch));
      std::vector<std::vector<int64_t>> shuffled;
      for (const int64_t i : perm) shuffled.push_back(std::move(batches[static_cast<size_t>(i)]));
      batches = std::move(shuffled);
    }
    const auto nb = static_cast<int64_t>(batches.size());
    std::vector<bool> repeat_batch(static_cast<size_t>(nb), false);  // whole batches repeat
    if (nb % world != 0) {
      if (o.drop_last) {
        for (int64_t i = nb - nb % world; i < nb; ++i)
          plan.num_dropped += static_cast<int64_t>(batches[static_cast<size_t>(i)].size());
        batches.resize(static_cast<size_t>(nb - nb % world));
      } else {
        for (int64_t i = 0; i < world - nb % world; ++i) {
          batches.push_back(batches[static_cast<size_t>(i % nb)]);
          repeat_batch.push_back(true);
          plan.num_padded += static_cast<int64_t>(batches.back().size());
        }
      }
    }
    for (size_t i = static_cast<size_t>(o.rank); i < batches.size(); i += static_cast<size_t>(world)) {
      if (repeat_batch[i])
        plan.trailing_repeats[static_cast<int64_t>(plan.batches.size())] = static_cast<int64_t>(batches[i].size());
      plan.batches.push_back(std::move(batches[i]));
    }
  }
  if (plan.batches.empty())
    throw DataError("epoch " + std::to_string(epoch) + " has no batch for rank " + std::to_string(o.rank) + ": " +
                        std::to_string(n) + " sample(s), world size " + std::to_string(world) + ", batch size " +
                        std::to_string(o.batch_size) + ", drop_last",
                    "data loader", "set data.drop_last: false or use more data");
  return plan;
}

// ---------------------------------------------------------------------------------------------

struct DataLoader::Impl {
  // One planned batch being built: its samples' outcomes in row order.
  struct Slot {
    int64_t epoch = 0;
    int64_t batch_index = 0;
    std::vector<int64_t> indices;
    std::vector<SampleResult> results;
    std::vector<std::exception_ptr> errors;  // a bug while building sample k
    size_t remaining = 0;
    bool done = false;
    Batch batch;
    std::exception_ptr error;                 // the batch's outcome when it failed
    std::vector<std::pair<std::string, std::string>> skips;  // (reason, message) in row order
  };
  struct Job {
    std::shared_ptr<Slot> slot;
    size_t k = 0;
  };

  std::shared_ptr<const DetectionDataset> dataset;
  LoaderOptions options;

  // Consumer side (the thread calling next()).
  int64_t epoch = 0, batch = 0;  // next batch to return
  ReasonCounts skipped;
  int64_t num_padded = 0, num_dropped = 0;
  std::map<int64_t, EpochPlan> plans;
  int64_t sched_epoch = 0, sched_batch = 0;  // next batch to schedule
  std::deque<std::shared_ptr<Slot>> inflight;  // scheduled, in consumption order

  // Shared with workers.
  std::mutex mu;
  std::condition_variable jobs_cv, done_cv;
  std::deque<Job> jobs;
  bool stop = false;
  std::vector<std::thread> workers;

  const EpochPlan& plan_of(int64_t e) {
    auto it = plans.find(e);
    if (it == plans.end()) it = plans.emplace(e, plan_epoch(dataset->sequence_lengths(), options, e)).first;
    return it->second;
  }

  // Moves (e, b) past the end of its epoch into the next one.
  void normalize(int64_t& e, int64_t& b) {
    while (b >= static_cast<int64_t>(plan_of(e).batches.size())) {
      b -= static_cast<int64_t>(plan_of(e).batches.size());
      ++e;
    }
  }

  // The dataset indices batch (e, b) is built from (padding repeats left out with exclude_repeats).
  std::vector<int64_t> batch_indices(int64_t e, int64_t b) {
    const EpochPlan& p = plan_of(e);
    const auto& all = p.batches[static_cast<size_t>(b)];
    const auto it = p.trailing_repeats.find(b);
    if (!options.exclude_repeats || it == p.trailing_repeats.end()) return all;
    return {all.begin(), all.end() - static_cast<std::ptrdiff_t>(it->second)};
  }

  std::shared_ptr<Slot> make_slot(int64_t e, int64_t b) {
    auto slot = std::make_shared<Slot>();
    slot->epoch = e;
    slot->batch_index = b;
    slot->indices = batch_indices(e, b);
    slot->results.resize(slot->indices.size());
    slot->errors.resize(slot->indices.size());
    slot->remaining = slot->indices.size();
    return slot;
  }

  void build_sample(Slot& slot, size_t k) {
    try {
      slot.results[k] = dataset->try_get(slot.indices[k], slot.epoch);
    } catch (...) {
      slot.errors[k] = std::current_exception();
    }
  }

  // Decides the batch from the samples' outcomes in row order and collates it.
  void finish(Slot& slot) {
    std::vector<Sample> samples;
    ReasonCounts skipped_here;
    for (size_t k = 0; k < slot.indices.size(); ++k) {
      if (slot.errors[k]) {
        slot.error = slot.errors[k];
        return;
      }
      SampleResult& r = slot.results[k];
      if (r.sample) {
        samples.push_back(std::move(*r.sample));
        continue;
      }
      if (options.on_invalid == InvalidPolicy::kError) {
        slot.error = std::make_exception_ptr(DataError(r.message));
        return;
      }
      ++skipped_here[r.reason];
      slot.skips.emplace_back(r.reason, r.message);
    }
    try {
      slot.batch = collate(std::move(samples), dataset->pad_id());
    } catch (...) {
      slot.error = std::current_exception();
      return;
    }
    slot.batch.epoch = slot.epoch;
    slot.batch.index = slot.batch_index;
    slot.batch.skipped = std::move(skipped_here);
    slot.results.clear();
  }

  void schedule() {
    if (options.num_workers == 0) return;
    bool added = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      while (static_cast<int>(inflight.size()) < options.prefetch_batches) {
        normalize(sched_epoch, sched_batch);
        auto slot = make_slot(sched_epoch, sched_batch);
        ++sched_batch;
        for (size_t k = 0; k < slot->indices.size(); ++k) jobs.push_back({slot, k});
        if (slot->indices.empty()) {  // only padding repeats, left out: no worker will finish it
          finish(*slot);
          slot->done = true;
        }
        inflight.push_back(std::move(slot));
        added = true;
      }
    }
    if (added) jobs_cv.notify_all();
  }

  void worker_loop() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu);
        jobs_cv.wait(lock, [&] { return stop || !jobs.empty(); });
        if (stop) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      build_sample(*job.slot, job.k);  // each k is written by exactly one worker
      bool last = false;
      {
        std::lock_guard<std::mutex> lock(mu);
        last = --job.slot->remaining == 0;
      }
      if (!last) continue;
      finish(*job.slot);
      {
        std::lock_guard<std::mutex> lock(mu);
        job.slot->done = true;
      }
      done_cv.notify_all();
    }
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    jobs_cv.notify_all();
    for (auto& t : workers)
      if (t.joinable()) t.join();
  }

  // Counts and logs what the returned batch skipped; advances the consumer position.
  void consume(Slot& slot) {
    if (slot.batch_index == 0) {
      const EpochPlan& p = plan_of(slot.epoch);
      num_padded += p.num_padded;
      num_dropped += p.num_dropped;
      if (p.num_padded + p.num_dropped > 0)
        spdlog::info("data: epoch {}: {} sample slot(s) padded with repeats, {} sample(s) dropped (data.drop_last={})",
                     slot.epoch, p.num_padded, p.num_dropped, options.drop_last);
    }
    constexpr int64_t kMaxWarningsPerReason = 20;
    for (const auto& [reason, message] : slot.skips) {
      const int64_t seen = ++skipped[reason];
      if (seen <= kMaxWarningsPerReason)
        spdlog::warn("data: skipped sample (data.on_invalid=skip): {}", message);
      if (seen == kMaxWarningsPerReason)
        spdlog::warn("data: further '{}' skips are only counted (metric data_skipped_{})", reason, reason);
    }
    batch = slot.batch_index + 1;
    epoch = slot.epoch;
    normalize(epoch, batch);
    plans.erase(plans.begin(), plans.lower_bound(std::min(epoch, sched_epoch)));
  }
};

DataLoader::DataLoader(std::shared_ptr<const DetectionDataset> dataset, LoaderOptions options, LoaderState start)
    : impl_(std::make_unique<Impl>()) {
  COORDEXP_CHECK(dataset, "data loader needs a dataset");
  options.validate();
  if (start.epoch < 0 || start.batch < 0)
    throw DataError("negative epoch or batch in the loader state", "data loader state", "resume from another checkpoint");
  impl_->dataset = std::move(dataset);
  impl_->options = options;
  impl_->epoch = start.epoch;
  impl_->batch = start.batch;
  impl_->skipped = std::move(start.skipped);
  impl_->normalize(impl_->epoch, impl_->batch);
  impl_->sched_epoch = impl_->epoch;
  impl_->sched_batch = impl_->batch;
  for (int i = 0; i < options.num_workers; ++i) impl_->workers.emplace_back([this] { impl_->worker_loop(); });
  try {
    impl_->schedule();
  } catch (...) {
    impl_->shutdown();
    throw;
  }
}

DataLoader::~DataLoader() { impl_->shutdown(); }

Batch DataLoader::next() {
  Impl& m = *impl_;
  std::shared_ptr<Impl::Slot> slot;
  if (m.options.num_workers == 0) {
    slot = m.make_slot(m.epoch, m.batch);
    for (size_t k = 0; k < slot->indices.size(); ++k) m.build_sample(*slot, k);
    m.finish(*slot);
  } else {
    m.schedule();
    std::unique_lock<std::mutex> lock(m.mu);
    slot = m.inflight.front();
    m.done_cv.wait(lock, [&] { return slot->done; });
  }
  // A failed batch stays first in line: the position does not move and next() fails again.
  if (slot->error) std::rethrow_exception(slot->error);
  if (m.options.num_workers > 0) {
    std::lock_guard<std::mutex> lock(m.mu);
    m.inflight.pop_front();
  }
  m.consume(*slot);
  m.schedule();
  return std::move(slot->batch);
}

std::vector<Batch> DataLoader::peek_tokens(int64_t n) {
  Impl& m = *impl_;
  std::vector<Batch> out;
  int64_t e = m.epoch, b = m.batch;
  for (int64_t i = 0; i < n; ++i, ++b) {
    m.normalize(e, b);
    std::vector<Sample> samples;
    for (const int64_t index : m.batch_indices(e, b)) {
      SampleResult r = m.dataset->try_get_tokens(index, e);
      if (r.sample) samples.push_back(std::move(*r.sample));
    }
    Batch batch = collate(std::move(samples), m.dataset->pad_id());
    batch.epoch = e;
    batch.index = b;
    out.push_back(std::move(batch));
  }
  return out;
}

LoaderState DataLoader::state() const {
  LoaderState s;
  s.epoch = impl_->epoch;
  s.batch = impl_->batch;
  s.skipped = impl_->skipped;
  return s;
}

int64_t DataLoader::batches_in_epoch(int64_t epoch) const {
  return static_cast<int64_t>(impl_->plan_of(epoch).batches.size());
}

const EpochPlan& DataLoader::plan(int64_t epoch) const { return impl_->plan_of(epoch); }

std::map<std::string, int64_t> DataLoader::counters() const {
  std::map<std::string, int64_t> c;
  for (const auto& [reason, n] : impl_->dataset->load_report().invalid) c["data_invalid_" + reason] = n;
  for (const auto& [reason, n] : impl_->skipped) c["data_skipped_" + reason] = n;
  c["data_padded_samples"] = impl_->num_padded;
  c["data_dropped_samples"] = impl_->num_dropped;
  return c;
}

}  // namespace coordexp::data
