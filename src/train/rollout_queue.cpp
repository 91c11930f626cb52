// The versioned rollout queue (rollout_queue.h): one deque of slots in push order under one mutex;
// staleness is checked whenever the version moves or an item arrives.
#include "coordexp/train/rollout_queue.h"

#include <algorithm>
#include <chrono>

#include "coordexp/util/error.h"

namespace coordexp::train {

RolloutQueue::RolloutQueue(int64_t limit, int64_t version_window, BSampler sampler,
                           std::vector<BSampler::Pick> outstanding)
    : limit_(limit), window_(version_window), sampler_(std::move(sampler)) {
  COORDEXP_CHECK(limit >= 1 && version_window >= 0, "queue limit " << limit << ", version window " << version_window);
  for (const auto& p : outstanding) returned_.emplace(next_order_++, p);
}

void RolloutQueue::set_version(int64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  version_ = version;
  drop_stale_locked();
  cv_.notify_all();
}

int64_t RolloutQueue::version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return version_;
}

void RolloutQueue::drop_stale_locked() {
  // Items are not ordered by ver in general (a refresh can happen between pushes), so scan all.
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (fresh_locked(it->item)) {
      ++it;
      continue;
    }
    return_locked(it->item);
    ++counters_.dropped_stale;
    it = slots_.erase(it);
  }
}

std::vector<QueuedPick> RolloutQueue::next_picks(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<QueuedPick> out;
  while (!returned_.empty() && static_cast<int64_t>(out.size()) < n) {
    out.push_back({returned_.begin()->first, returned_.begin()->second});
    returned_.erase(returned_.begin());
  }
  if (static_cast<int64_t>(out.size()) < n)
    for (const auto& p : sampler_.next(n - static_cast<int64_t>(out.size()))) out.push_back({next_order_++, p});
  in_flight_ = out;
  return out;
}

void RolloutQueue::push_raw(std::vector<RolloutItem> items) {
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_.clear();
  for (RolloutItem& item : items) {
    ++counters_.pushed;
    item.seq = next_seq_++;
    item.ready = false;
    if (!fresh_locked(item)) {
      return_locked(item);
      ++counters_.dropped_stale;
      continue;
    }
    while (static_cast<int64_t>(slots_.size()) >= limit_) {
      return_locked(slots_.front().item);
      ++counters_.dropped_overflow;
      slots_.pop_front();
    }
    slots_.push_back(Slot{std::move(item), false});
  }
  cv_.notify_all();
}

std::optional<RolloutItem> RolloutQueue::take_raw() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (closed_) return std::nullopt;
    for (Slot& s : slots_)
      if (!s.item.ready && !s.in_preprocess) {
        s.in_preprocess = true;
        RolloutItem out;
        out.seq = s.item.seq;
        out.order = s.item.order;
        out.ver = s.item.ver;
        out.pick = s.item.pick;
        out.sample = std::move(s.item.sample);
        out.row = std::move(s.item.row);
        out.diagnostics = s.item.diagnostics;
        return out;
      }
    cv_.wait(lock);
  }
}

void RolloutQueue::put_ready(RolloutItem item) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Slot& s : slots_)
    if (s.item.seq == item.seq) {
      item.ready = true;
      s.item = std::move(item);
      s.in_preprocess = false;
      cv_.notify_all();
      return;
    }
  // Dropped (stale or overflow) while it was being preprocessed: its pick is already returned.
}

int64_t RolloutQueue::ready_fresh_locked() const {
  int64_t n = 0;
  for (const Slot& s : slots_)
    if (s.item.ready && fresh_locked(s.item)) ++n;
  return n;
}

int64_t RolloutQueue::fresh_held() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  for (const Slot& s : slots_)
    if (fresh_locked(s.item)) ++n;
  return n;
}

int64_t RolloutQueue::ready_fresh() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_fresh_locked();
}

std::optional<std::vector<RolloutItem>> RolloutQueue::take_ready(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ready_fresh_locked() < n) return std::nullopt;
  std::vector<RolloutItem> out;
  for (auto it = slots_.begin(); it != slots_.end() && static_cast<int64_t>(out.size()) < n;) {
    if (it->item.ready && fresh_locked(it->item)) {
      out.push_back(std::move(it->item));
      it = slots_.erase(it);
    } else {
      ++it;
    }
  }
  counters_.consumed += static_cast<int64_t>(out.size());
  cv_.notify_all();
  return out;
}

bool RolloutQueue::wait_ready(int64_t n, double timeout_s) const {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s));
  cv_.wait_until(lock, deadline, [&] { return closed_ || ready_fresh_locked() >= n; });
  return ready_fresh_locked() >= n;
}

RolloutQueue::ProducerState RolloutQueue::producer_state() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<uint64_t, BSampler::Pick> all = returned_;
  for (const Slot& s : slots_) all.emplace(s.item.order, s.item.pick);
  for (const QueuedPick& q : in_flight_) all.emplace(q.order, q.pick);
  ProducerState p;
  p.sampler_position = sampler_.position();
  for (const auto& [order, pick] : all) p.outstanding.push_back(pick);
  return p;
}

RolloutQueueStats RolloutQueue::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  RolloutQueueStats s = counters_;
  s.raw = s.ready = 0;
  s.lag_max = 0;
  double lag_sum = 0.0;
  for (const Slot& slot : slots_) {
    (slot.item.ready ? s.ready : s.raw) += 1;
    const int64_t lag = version_ - slot.item.ver;
    lag_sum += static_cast<double>(lag);
    s.lag_max = std::max(s.lag_max, lag);
  }
  s.lag_mean = slots_.empty() ? 0.0 : lag_sum / static_cast<double>(slots_.size());
  s.ready_fresh = ready_fresh_locked();
  return s;
}

void RolloutQueue::close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

bool RolloutQueue::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

}  // namespace coordexp::train
