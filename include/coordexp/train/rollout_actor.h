// RolloutActor: the asynchronous Channel-B producer of one rank (channel_b.producer: async; seed
// 6.1.1, 10.6, 10.7). Two background threads:
//  - rollout thread: at each batch boundary takes a requested weight refresh (copies the learner's
//    parameters into its own snapshot model under the learner's weights mutex, ver = the learner's
//    optimizer step), then rolls out the queue's next channel_b.batch_size samples with the
//    snapshot (no grad) and pushes them raw;
//  - preprocess worker: parse + Hungarian + gates + y_in + masks (B1-B3) of each raw item, off the
//    training thread, so a B step only runs the teacher-forced forward.
// Cost: a second copy of the weights (the snapshot; no gradients, no optimizer state) and the
// device time of the rollouts, which overlap the learner's steps (on CPU they run on other cores;
// on one GPU they share it). The rollout thread idles while the queue holds actor.ahead updates'
// worth of fresh items (at most queue_limit): more would go stale unused.
// An exception on either thread stops the actor; the learner sees it at its next call.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "coordexp/config/sections/actor.h"
#include "coordexp/data/dataset.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/channel_b_step.h"
#include "coordexp/train/rollout_queue.h"

namespace coordexp::train {

// The learner's parameters as the actor sees them: the model, the mutex the learner holds while it
// writes parameters (the optimizer update), and the weights' version (its optimizer step, written
// under the same mutex right after the update), so a snapshot and its ver always agree.
struct LearnerWeights {
  model::Qwen3VL* model = nullptr;
  std::mutex mutex;
  int64_t version = 0;
};

struct RolloutActorStats {
  int64_t snapshot_ver = -1;      // optimizer step of the snapshot's weights (-1 before the first)
  int64_t refreshes = 0;
  int64_t rollouts = 0;           // rollouts generated (pushed), this process
  int64_t rollout_tokens = 0;
  double rollout_seconds = 0.0;   // rollout thread busy generating
  double preprocess_seconds = 0.0;
  double sync_wait_seconds = 0.0; // learner time spent waiting for a refresh (max_lag)
};

class RolloutActor {
 public:
  // `learner` and `queue` must outlive the actor; the first snapshot is taken here.
  // `compute_threads`: intra-op threads of the actor's threads (the learner's count).
  // `update_items`: rollouts one B update consumes (channel_b.batch_size x grad_accum_steps).
  RolloutActor(LearnerWeights& learner, std::shared_ptr<const data::DetectionDataset> dataset,
               ChannelBSettings settings, config::ActorOptions options, RolloutQueue& queue, int compute_threads,
               int64_t update_items);
  ~RolloutActor();  // stop()
  RolloutActor(const RolloutActor&) = delete;
  RolloutActor& operator=(const RolloutActor&) = delete;

  // The learner, after the optimizer update that made `version` (LearnerWeights::version already
  // set, mutex released): asks for a refresh every sync_every steps, and waits for one when the
  // snapshot lags by >= max_lag. Returns the seconds waited. Rethrows an actor failure.
  double after_step(int64_t version);
  // The learner lacks fresh items and waits: a refresh at the next batch boundary regardless of
  // sync_every (with a small version_window the current snapshot may never produce fresh items).
  void request_refresh();
  // Rethrows the exception that stopped a thread, if any.
  void rethrow_if_failed();

  RolloutActorStats stats() const;
  data::ReasonCounts skipped() const;
  // Fault injection for tests: sleep this long before every rollout batch (a slow rank's actor).
  void set_batch_delay_ms(int ms) { batch_delay_ms_ = ms; }
  // Stops both threads (an in-progress rollout batch finishes first) and closes the queue.
  void stop();

 private:
  void rollout_loop();
  void preprocess_loop();
  void refresh_snapshot();  // rollout thread, at a batch boundary
  void fail(std::exception_ptr e);

  LearnerWeights& learner_;
  std::shared_ptr<const data::DetectionDataset> dataset_;
  ChannelBSettings settings_;
  config::ActorOptions options_;
  RolloutQueue& queue_;
  int compute_threads_;
  int64_t target_held_;  // fresh items kept ready
  std::atomic<int> batch_delay_ms_{0};
  std::optional<model::Qwen3VL> snapshot_;

  mutable std::mutex mu_;            // guards the fields below
  std::condition_variable cv_;
  bool refresh_requested_ = false;
  bool stopping_ = false;
  std::exception_ptr failure_;
  RolloutActorStats stats_;
  data::ReasonCounts skipped_;       // samples the dataset could not build

  std::thread rollout_thread_, preprocess_thread_;
};

}  // namespace coordexp::train
