// RolloutQueue: the versioned queue between the asynchronous Channel-B actor and the learner (seed
// 6.1.1, 10.6). Every item carries `ver`, the optimizer step of the weights that rolled it out. An
// item is raw (rolled out) until the preprocess worker turns it ready (parsed, matched, y_in and
// masks built). The learner consumes only ready items with ver >= current_ver - version_window;
// older items are dropped as stale. At most `limit` items (raw + ready) are held; pushing beyond
// drops the oldest (overflow). Every drop is counted by reason, and the dropped item's sample goes
// back to the producer (returned picks) to be rolled out again, so Channel-B still trains on every
// sample of its epoch once. Thread-safe: the actor's two threads and the learner share it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "coordexp/data/dataset.h"
#include "coordexp/rollout/generator.h"
#include "coordexp/train/b_sampler.h"
#include "coordexp/train/channel_b_step.h"

namespace coordexp::train {

// A sample handed to the producer, with its draw order (the position of its first draw): dropped
// samples are handed out again by that order, so samples are trained on in the sampler's order
// whenever the producer keeps up (exactly so with version_window 0).
struct QueuedPick {
  uint64_t order = 0;
  BSampler::Pick pick;
};

struct RolloutItem {
  uint64_t seq = 0;            // push order (set by the queue)
  uint64_t order = 0;          // QueuedPick::order of its sample
  int64_t ver = 0;             // optimizer step of the weights that produced the rollout
  BSampler::Pick pick;         // the training sample
  data::Sample sample;         // prompt ids + images, as the dataset built it
  rollout::GeneratedRow row;   // the rollout (answer ids)
  BTarget target;              // ready items: parse, match, y_in (train/channel_b_step.h)
  ChannelBDiagnostics diagnostics;  // of this rollout (counts; rollout_seconds = its share of the batch)
  bool ready = false;
};

// Counters and gauges for metrics (seed 10.8).
struct RolloutQueueStats {
  int64_t raw = 0, ready = 0;      // items held now
  int64_t ready_fresh = 0;         // ready items the learner may consume at the current version
  double lag_mean = 0.0;           // current_ver - ver over the items held (0 when empty)
  int64_t lag_max = 0;
  int64_t pushed = 0, consumed = 0;
  int64_t dropped_stale = 0, dropped_overflow = 0;
};

class RolloutQueue {
 public:
  // limit >= 1 items; version_window >= 0. `sampler` is this rank's Channel-B sample order (its
  // position and `outstanding` come from a checkpoint's producer_state(), or a fresh run).
  RolloutQueue(int64_t limit, int64_t version_window, BSampler sampler,
               std::vector<BSampler::Pick> outstanding = {});

  // The learner's weights version (its optimizer step); items older than version - window are
  // dropped (stale) now and on every later push.
  void set_version(int64_t version);
  int64_t version() const;

  // The actor's rollout thread: the next `n` samples to roll out, returned picks (of dropped items,
  // earliest draw first) first, then the sampler's; they count as in flight until push_raw. Items
  // must carry their QueuedPick's order.
  std::vector<QueuedPick> next_picks(int64_t n);
  // The actor's rollout thread: adds the batch's raw items (an item already stale is dropped right
  // away) and ends the in-flight batch. When the queue is full, the oldest item is dropped first
  // (overflow). Picks of the in-flight batch that produced no item (a skipped sample) are gone.
  void push_raw(std::vector<RolloutItem> items);
  // The preprocess worker: the oldest raw item, waiting until there is one or close() (nullopt).
  std::optional<RolloutItem> take_raw();
  // The preprocess worker: puts the item back, ready. An item dropped while it was being
  // preprocessed is not re-added (its pick was already returned).
  void put_ready(RolloutItem item);

  // Items held (raw or ready) that are fresh at the current version (the actor's throttle).
  int64_t fresh_held() const;
  // Ready items the learner may consume now (fresh at the current version).
  int64_t ready_fresh() const;
  // The learner: the `n` oldest fresh ready items, in push order; nullopt (nothing taken) when fewer
  // than n are ready.
  std::optional<std::vector<RolloutItem>> take_ready(int64_t n);
  // Waits until `n` fresh items are ready, close(), or `timeout_s` passed; returns ready_fresh() >= n.
  bool wait_ready(int64_t n, double timeout_s) const;

  // For checkpoints, taken atomically: the sampler position and every pick not yet consumed by the
  // learner (returned, held raw / in preprocessing / ready, in flight), oldest first. A resumed run
  // drops the rollouts and rolls these samples out again first.
  struct ProducerState {
    int64_t sampler_position = 0;
    std::vector<BSampler::Pick> outstanding;
  };
  ProducerState producer_state() const;

  RolloutQueueStats stats() const;
  void close();  // wakes every waiter; take_raw returns nullopt from now on
  bool closed() const;

 private:
  struct Slot {
    RolloutItem item;
    bool in_preprocess = false;  // handed to the preprocess worker
  };
  void drop_stale_locked();
  void return_locked(const RolloutItem& item) { returned_.emplace(item.order, item.pick); }
  bool fresh_locked(const RolloutItem& item) const { return item.ver >= version_ - window_; }
  int64_t ready_fresh_locked() const;

  const int64_t limit_, window_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  BSampler sampler_;
  std::deque<Slot> slots_;  // push order
  std::map<uint64_t, BSampler::Pick> returned_;  // by draw order
  std::vector<QueuedPick> in_flight_;
  uint64_t next_order_ = 0;
  int64_t version_ = 0;
  uint64_t next_seq_ = 0;
  bool closed_ = false;
  RolloutQueueStats counters_;  // pushed, consumed, dropped_*
};

}  // namespace coordexp::train
