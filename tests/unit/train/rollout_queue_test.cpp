// RolloutQueue (train/rollout_queue.h) and the queue schedule of StepRouter (train/step_router.h):
// freshness by version window, drop-oldest at the limit, every drop counted by reason and its sample
// handed back (so no sample is lost or duplicated, checked by a 3-thread stress run), the producer
// state a checkpoint keeps, and the routing rule over two simulated ranks (threads sharing an
// in-memory reducer): B only when every rank is ready, the same kinds on both ranks, the realized
// ratio kept below b_ratio.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "coordexp/train/rollout_queue.h"
#include "coordexp/train/step_router.h"

namespace coordexp::train {
namespace {

// The producer's side: draws `n` samples from the queue and makes raw items of them at `ver`.
std::vector<RolloutItem> draw(RolloutQueue& q, int64_t n, int64_t ver) {
  std::vector<RolloutItem> out;
  for (const QueuedPick& p : q.next_picks(n)) {
    RolloutItem it;
    it.ver = ver;
    it.order = p.order;
    it.pick = p.pick;
    out.push_back(std::move(it));
  }
  return out;
}

BSampler sampler() { return BSampler(1000, 11, 0, 1); }

// Marks every raw item ready (what the preprocess worker does, without the work).
void make_all_ready(RolloutQueue& q) {
  while (q.stats().raw > 0) {
    auto it = q.take_raw();
    ASSERT_TRUE(it.has_value());
    q.put_ready(std::move(*it));
  }
}

std::vector<int64_t> indices(const std::vector<BSampler::Pick>& picks) {
  std::vector<int64_t> out;
  for (const auto& p : picks) out.push_back(p.index);
  return out;
}
std::vector<int64_t> indices(const std::vector<QueuedPick>& picks) {
  std::vector<int64_t> out;
  for (const auto& p : picks) out.push_back(p.pick.index);
  return out;
}
std::vector<int64_t> indices(const std::vector<RolloutItem>& items) {
  std::vector<int64_t> out;
  for (const auto& it : items) out.push_back(it.pick.index);
  return out;
}
// The sampler's first n indices.
std::vector<int64_t> sampler_order(int64_t n) {
  BSampler s = sampler();
  return indices(s.next(n));
}

TEST(RolloutQueue, StaleItemsAreDroppedCountedAndTheirSamplesRolledOutAgainFirst) {
  const auto order = sampler_order(6);
  RolloutQueue q(/*limit=*/10, /*version_window=*/1, sampler());
  auto a = draw(q, 1, 0), b = draw(q, 1, 1), c = draw(q, 1, 2);
  for (auto* v : {&a, &b, &c}) q.push_raw(std::move(*v));
  make_all_ready(q);
  EXPECT_EQ(q.ready_fresh(), 3);
  q.set_version(2);  // fresh: ver >= 1
  EXPECT_EQ(q.stats().dropped_stale, 1);
  EXPECT_EQ(q.stats().ready, 2);
  EXPECT_EQ(q.ready_fresh(), 2);
  q.set_version(3);  // fresh: ver >= 2
  EXPECT_EQ(q.stats().dropped_stale, 2);
  EXPECT_EQ(q.ready_fresh(), 1);
  // The dropped samples come back before any new one, in draw order.
  EXPECT_EQ(indices(q.next_picks(3)), (std::vector<int64_t>{order[0], order[1], order[3]}));
  // An item already stale when pushed is dropped right away.
  q.push_raw(draw(q, 1, 1));
  EXPECT_EQ(q.stats().dropped_stale, 3);
  EXPECT_EQ(q.stats().raw, 0);
}

TEST(RolloutQueue, ReturnedSamplesComeBackInDrawOrderWhateverOrderTheyWereDropped) {
  const auto order = sampler_order(4);
  RolloutQueue q(10, 0, sampler());
  auto early = draw(q, 2, 0);  // samples 0, 1 at ver 0
  auto late = draw(q, 2, 1);   // samples 2, 3 at ver 1 (a refresh in between)
  q.push_raw(std::move(early));
  q.push_raw(std::move(late));  // stale at version 0? no: ver 1 >= 0
  q.set_version(1);             // drops 0, 1 (ver 0)
  q.set_version(2);             // drops 2, 3
  EXPECT_EQ(indices(q.next_picks(4)), order);
  // The same when the later samples were dropped first.
  RolloutQueue r(10, 0, sampler());
  auto x = draw(r, 2, 1);
  auto y = draw(r, 2, 0);
  r.push_raw(std::move(y));  // stale at version 0? no; ver 0 is fresh at version 0
  r.push_raw(std::move(x));
  r.set_version(1);  // drops y (samples 2, 3)
  r.set_version(2);  // drops x (samples 0, 1)
  EXPECT_EQ(indices(r.next_picks(4)), order);
}

TEST(RolloutQueue, FullQueueDropsTheOldestAndCountsOverflow) {
  const auto order = sampler_order(5);
  RolloutQueue q(3, 5, sampler());
  q.push_raw(draw(q, 3, 0));
  make_all_ready(q);
  q.push_raw(draw(q, 2, 1));
  const auto s = q.stats();
  EXPECT_EQ(s.dropped_overflow, 2);
  EXPECT_EQ(s.dropped_stale, 0);
  EXPECT_EQ(s.raw + s.ready, 3);
  make_all_ready(q);
  const auto taken = q.take_ready(3);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(indices(*taken), (std::vector<int64_t>{order[2], order[3], order[4]}));
  EXPECT_EQ(indices(q.next_picks(2)), (std::vector<int64_t>{order[0], order[1]}));  // the overflowed ones
}

TEST(RolloutQueue, TakesOnlyWholeUpdatesOfReadyFreshItemsInPushOrder) {
  const auto order = sampler_order(3);
  RolloutQueue q(10, 0, sampler());
  q.push_raw(draw(q, 3, 0));
  EXPECT_FALSE(q.take_ready(1).has_value());  // raw items are not ready
  auto first = q.take_raw();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->pick.index, order[0]);
  q.put_ready(std::move(*first));
  EXPECT_EQ(q.ready_fresh(), 1);
  EXPECT_FALSE(q.take_ready(2).has_value());  // nothing taken when the update cannot be filled
  EXPECT_EQ(q.stats().ready, 1);
  EXPECT_FALSE(q.wait_ready(2, 0.05));
  make_all_ready(q);
  EXPECT_TRUE(q.wait_ready(2, 0.05));
  const auto two = q.take_ready(2);
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(indices(*two), (std::vector<int64_t>{order[0], order[1]}));
  EXPECT_EQ(q.stats().consumed, 2);
}

TEST(RolloutQueue, AnItemDroppedDuringPreprocessingIsNotReAdded) {
  RolloutQueue q(10, 0, sampler());
  q.push_raw(draw(q, 1, 0));
  auto it = q.take_raw();
  ASSERT_TRUE(it.has_value());
  const int64_t idx = it->pick.index;
  q.set_version(1);  // stale while the worker holds it
  q.put_ready(std::move(*it));
  EXPECT_EQ(q.stats().ready, 0);
  EXPECT_EQ(q.stats().dropped_stale, 1);
  EXPECT_EQ(indices(q.producer_state().outstanding), (std::vector<int64_t>{idx}));  // once, as returned
}

TEST(RolloutQueue, LagStatsAndProducerStateCoverEveryUnconsumedSample) {
  const auto order = sampler_order(4);
  RolloutQueue q(10, 4, sampler(), /*outstanding=*/{{900, 0}});
  auto resumed = draw(q, 1, 0);
  EXPECT_EQ(resumed[0].pick.index, 900);  // a resumed run's samples first
  auto v2 = draw(q, 1, 2);
  q.push_raw(std::move(resumed));
  q.push_raw(std::move(v2));
  q.set_version(3);
  const auto s = q.stats();
  EXPECT_EQ(s.lag_max, 3);
  EXPECT_DOUBLE_EQ(s.lag_mean, 2.0);
  q.next_picks(2);  // drawn from the sampler, not pushed yet: in flight
  const auto p = q.producer_state();
  EXPECT_EQ(p.sampler_position, 3);
  EXPECT_EQ(indices(p.outstanding), (std::vector<int64_t>{900, order[0], order[1], order[2]}));
}

// Producer (draws picks, pushes raw), preprocess worker and learner on three threads with drops of
// both kinds: at the end every drawn sample was consumed exactly once or is still outstanding.
TEST(RolloutQueue, ThreeThreadsLoseAndDuplicateNoSample) {
  RolloutQueue q(6, 1, BSampler(100000, 5, 0, 1));
  std::atomic<int64_t> version{0};
  std::atomic<bool> done{false};
  std::set<int64_t> drawn;
  std::multiset<int64_t> consumed;
  std::mutex m;
  std::thread producer([&] {
    for (int b = 0; b < 400; ++b) {
      auto items = draw(q, 3, version.load());
      {
        std::lock_guard<std::mutex> l(m);
        for (const auto& it : items) drawn.insert(it.pick.index);
      }
      q.push_raw(std::move(items));
      std::this_thread::sleep_for(std::chrono::microseconds(50));  // interleave with the learner
    }
    done = true;
  });
  std::thread worker([&] {
    while (auto it = q.take_raw()) q.put_ready(std::move(*it));
  });
  std::mt19937 rng(3);
  while (!done) {
    if (auto got = q.take_ready(2)) {
      std::lock_guard<std::mutex> l(m);
      for (const auto& it : *got) consumed.insert(it.pick.index);
    }
    if (rng() % 4 == 0) q.set_version(++version);
    std::this_thread::yield();
  }
  // Drain: let the worker finish, then take what is still fresh.
  while (q.stats().raw > 0) std::this_thread::yield();
  while (auto got = q.take_ready(1)) consumed.insert((*got)[0].pick.index);
  q.close();
  producer.join();
  worker.join();
  const auto s = q.stats();
  EXPECT_GT(s.dropped_stale + s.dropped_overflow, 0);
  EXPECT_GT(s.consumed, 0);
  std::multiset<int64_t> settled = consumed;
  for (const auto& x : q.producer_state().outstanding) settled.insert(x.index);
  for (int64_t idx : drawn) EXPECT_EQ(settled.count(idx), 1u) << "sample " << idx;
  EXPECT_EQ(settled.size(), drawn.size());
}

// Two ranks as two threads: sums meet at a generation barrier.
class TwoThreadReducer {
 public:
  class Rank final : public StepReducer {
   public:
    Rank(TwoThreadReducer& shared, int rank) : shared_(shared), rank_(rank) {}
    int rank() const override { return rank_; }
    int world_size() const override { return 2; }
    void sum(std::vector<int64_t>& v) override { shared_.sum(v); }
    void sum(std::vector<double>&) override { FAIL(); }
    void sum_gradients(const std::vector<torch::Tensor>&) override { FAIL(); }
    void broadcast(std::string&) override { FAIL(); }
    void barrier() override {}

   private:
    TwoThreadReducer& shared_;
    int rank_;
  };

  void sum(std::vector<int64_t>& v) {
    std::unique_lock<std::mutex> l(mu_);
    const int64_t gen = generation_;
    if (arrived_ == 0) acc_.assign(v.size(), 0);
    for (size_t i = 0; i < v.size(); ++i) acc_[i] += v[i];
    if (++arrived_ == 2) {
      result_ = acc_;
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(l, [&] { return generation_ != gen; });
    }
    v = result_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int64_t generation_ = 0;
  std::vector<int64_t> acc_, result_;
};

TEST(StepRouter, QueueRuleNeedsEveryRankReadyAndKeepsTheRatioBelowRho) {
  EXPECT_TRUE(queue_wants_b(0, 0, 0.25));
  EXPECT_FALSE(queue_wants_b(0, 0, 0.0));
  EXPECT_TRUE(queue_wants_b(4, 0, 0.25));
  EXPECT_FALSE(queue_wants_b(4, 1, 0.25));  // 1/4 is not below 0.25
  EXPECT_TRUE(queue_wants_b(5, 1, 0.25));
  EXPECT_FALSE(queue_wants_b(20, 1, 0.05));
  EXPECT_TRUE(queue_wants_b(21, 1, 0.05));

  config::Stage2Options o;
  o.schedule = "queue";
  o.b_ratio = 0.5;
  TwoThreadReducer shared;
  const int kSteps = 200;
  // Deliberately unequal fill: rank 0 is ready 80% of the time, rank 1 40%.
  std::vector<std::vector<StepKind>> kinds(2);
  std::vector<std::vector<bool>> ready(2, std::vector<bool>(kSteps));
  std::mt19937 rng(9);
  for (int s = 0; s < kSteps; ++s) {
    ready[0][s] = rng() % 10 < 8;
    ready[1][s] = rng() % 10 < 4;
  }
  auto run_rank = [&](int r) {
    TwoThreadReducer::Rank red(shared, r);
    StepRouter router(true, o, red);
    int64_t num_b = 0;
    for (int s = 0; s < kSteps; ++s) {
      RouteInputs in;
      in.num_b_steps = num_b;
      in.b_ready = ready[r][s];
      const StepKind k = router.kind_for(s, in);
      kinds[r].push_back(k);
      if (k == StepKind::kChannelB) ++num_b;
    }
  };
  std::thread t0(run_rank, 0), t1(run_rank, 1);
  t0.join();
  t1.join();
  ASSERT_EQ(kinds[0], kinds[1]);
  int64_t num_b = 0, both_ready = 0;
  for (int s = 0; s < kSteps; ++s) {
    const bool all = ready[0][s] && ready[1][s];
    both_ready += all;
    if (kinds[0][s] == StepKind::kChannelB) {
      EXPECT_TRUE(all) << "B at step " << s << " without every rank ready";
      EXPECT_TRUE(queue_wants_b(s, num_b, 0.5)) << s;
      ++num_b;
    } else {
      EXPECT_EQ(kinds[0][s], StepKind::kChannelA);
      if (all) EXPECT_FALSE(queue_wants_b(s, num_b, 0.5)) << "A at step " << s << " though B was due and ready";
    }
  }
  EXPECT_GT(num_b, 40);  // ~0.32 of the steps have both ready; the ratio cap is 0.5
  EXPECT_LE(num_b, both_ready);
  EXPECT_LT(static_cast<double>(num_b) / kSteps, 0.5 + 1e-9);
}

}  // namespace
}  // namespace coordexp::train
