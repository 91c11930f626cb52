// The asynchronous Channel-B actor (rollout_actor.h): a rollout thread with its own weight snapshot
// and a preprocess worker, both feeding the rank's RolloutQueue.
#include "coordexp/train/rollout_actor.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "coordexp/model/adapter.h"
#include "coordexp/util/error.h"
#include "coordexp/util/threads.h"

namespace coordexp::train {
namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// dst = src for every parameter (same keys: dst was created from src's config), adapters included
// (attached to dst on the first copy). With adapters the base is frozen: copied the first time only.
void copy_parameters(const model::Qwen3VL& src, model::Qwen3VL& dst) {
  torch::NoGradGuard no_grad;
  const bool first = !dst.has_adapters();
  if (src.has_adapters() && first) model::attach_adapters(dst, src.adapter_spec(), 0);
  if (!src.has_adapters() || first) {
    const auto from = src.named_parameters();
    auto to = dst.named_parameters();
    for (auto& [key, t] : to) t.copy_(from.at(key));
  }
  const auto from = src.adapter_parameters();
  for (auto& [key, t] : dst.adapter_parameters()) t.copy_(from.at(key));
}

}  // namespace

RolloutActor::RolloutActor(LearnerWeights& learner, std::shared_ptr<const data::DetectionDataset> dataset,
                           ChannelBSettings settings, config::ActorOptions options, RolloutQueue& queue,
                           int compute_threads, int64_t update_items)
    : learner_(learner),
      dataset_(std::move(dataset)),
      settings_(std::move(settings)),
      options_(options),
      queue_(queue),
      compute_threads_(compute_threads),
      target_held_(std::min<int64_t>(settings_.queue_limit, options_.ahead * std::max<int64_t>(update_items, 1))) {
  COORDEXP_CHECK(learner_.model != nullptr, "the actor needs the learner's model");
  options_.validate();
  // The actor thread must not change process-wide thread counts mid-step of the learner (decode's
  // ScopedComputeThreads sets BLIS's global count); its own intra-op count is set per thread below.
  settings_.generation.decode_threads = 0;
  {
    std::lock_guard<std::mutex> lock(learner_.mutex);
    snapshot_.emplace(model::Qwen3VL::create(learner_.model->config(), learner_.model->runtime()));
    copy_parameters(*learner_.model, *snapshot_);
    stats_.snapshot_ver = learner_.version;
  }
  stats_.refreshes = 1;
  rollout_thread_ = std::thread([this] { rollout_loop(); });
  preprocess_thread_ = std::thread([this] { preprocess_loop(); });
}

RolloutActor::~RolloutActor() { stop(); }

void RolloutActor::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  queue_.close();
  if (rollout_thread_.joinable()) rollout_thread_.join();
  if (preprocess_thread_.joinable()) preprocess_thread_.join();
}

void RolloutActor::fail(std::exception_ptr e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failure_) failure_ = e;
    stopping_ = true;
    cv_.notify_all();
  }
  queue_.close();
}

void RolloutActor::rethrow_if_failed() {
  std::exception_ptr e;
  {
    std::lock_guard<std::mutex> lock(mu_);
    e = failure_;
  }
  if (e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      throw std::runtime_error(std::string("the Channel-B rollout actor failed: ") + x.what());
    }
  }
}

void RolloutActor::request_refresh() {
  std::lock_guard<std::mutex> lock(mu_);
  refresh_requested_ = true;
  cv_.notify_all();
}

double RolloutActor::after_step(int64_t version) {
  rethrow_if_failed();
  std::unique_lock<std::mutex> lock(mu_);
  if (version % options_.sync_every == 0) refresh_requested_ = true;
  cv_.notify_all();
  if (version - stats_.snapshot_ver < options_.max_lag) return 0.0;
  refresh_requested_ = true;
  const double t0 = now_s();
  cv_.wait(lock, [&] { return stopping_ || version - stats_.snapshot_ver < options_.max_lag; });
  const double waited = now_s() - t0;
  stats_.sync_wait_seconds += waited;
  lock.unlock();
  rethrow_if_failed();
  return waited;
}

RolloutActorStats RolloutActor::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

data::ReasonCounts RolloutActor::skipped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return skipped_;
}

void RolloutActor::refresh_snapshot() {
  int64_t ver = 0;
  {
    std::lock_guard<std::mutex> lock(learner_.mutex);
    copy_parameters(*learner_.model, *snapshot_);
    ver = learner_.version;
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.snapshot_ver = ver;
  ++stats_.refreshes;
  refresh_requested_ = false;
  cv_.notify_all();
}

void RolloutActor::rollout_loop() {
  try {
    if (compute_threads_ > 0) at::set_num_threads(compute_threads_);  // per thread under OpenMP
    for (;;) {
      int64_t ver = 0;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (stopping_) return;
        if (refresh_requested_) {
          lock.unlock();
          refresh_snapshot();
          lock.lock();
        }
        ver = stats_.snapshot_ver;
        // Enough fresh rollouts ready: wait for consumption, staleness, a refresh or stop.
        if (queue_.fresh_held() >= target_held_) {
          cv_.wait_for(lock, std::chrono::milliseconds(20));
          continue;
        }
      }
      if (const int ms = batch_delay_ms_.load(); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      const std::vector<QueuedPick> queued = queue_.next_picks(settings_.batch_size);
      std::vector<BSampler::Pick> picks;
      for (const auto& q : queued) picks.push_back(q.pick);
      const double t0 = now_s();
      data::ReasonCounts skipped;
      BSamples in = load_b_samples(*dataset_, picks, &skipped);
      std::vector<RolloutItem> items;
      int64_t tokens = 0;
      double seconds = 0.0;
      if (!in.samples.empty()) {
        const rollout::GenerationResult rolled = rollout_b_samples(*snapshot_, in, ver, settings_);
        seconds = now_s() - t0;
        for (size_t i = 0; i < in.samples.size(); ++i) {
          RolloutItem item;
          item.ver = ver;
          item.pick = in.picks[i];
          // load_b_samples keeps the picks' order and skips some: find this one's draw order.
          for (const auto& q : queued)
            if (q.pick.index == item.pick.index && q.pick.epoch == item.pick.epoch) item.order = q.order;
          item.sample = std::move(in.samples[i]);
          item.row = rolled.rows[i];
          item.diagnostics.rollout_seconds = seconds / static_cast<double>(in.samples.size());
          tokens += static_cast<int64_t>(item.row.ids.size());
          items.push_back(std::move(item));
        }
      }
      const auto n = static_cast<int64_t>(items.size());
      queue_.push_raw(std::move(items));
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [reason, count] : skipped) skipped_[reason] += count;
      stats_.rollouts += n;
      stats_.rollout_tokens += tokens;
      stats_.rollout_seconds += seconds;
    }
  } catch (...) {
    fail(std::current_exception());
  }
}

void RolloutActor::preprocess_loop() {
  try {
    if (compute_threads_ > 0) at::set_num_threads(compute_threads_);
    for (;;) {
      std::optional<RolloutItem> item = queue_.take_raw();
      if (!item) return;  // closed
      const double t0 = now_s();
      item->target = build_b_target_for_row(item->row, dataset_->record(item->pick.index), item->sample, item->ver,
                                            dataset_->tokenizer(), settings_, item->diagnostics);
      item->diagnostics.build_seconds = now_s() - t0;
      queue_.put_ready(std::move(*item));
      std::lock_guard<std::mutex> lock(mu_);
      stats_.preprocess_seconds += now_s() - t0;
    }
  } catch (...) {
    fail(std::current_exception());
  }
}

}  // namespace coordexp::train
