// `actor:` section — the asynchronous Channel-B rollout actor (channel_b.producer: async; seed
// 6.1.1, 10.6): when its weight snapshot is refreshed from the learner. Values only, no YAML; the
// actor itself is train/rollout_actor.h.
#pragma once

#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct ActorOptions {
  // The learner asks for a refresh after every sync_every-th optimizer step; the actor takes it at
  // its next rollout-batch boundary (it never swaps weights mid-batch).
  int sync_every = 1;
  // Drift trigger: when the snapshot lags the learner by >= max_lag optimizer steps, the learner
  // waits at the end of its step until the actor has refreshed (bounds the off-policy gap).
  int max_lag = 4;
  // B updates' worth of fresh rollouts (channel_b.batch_size x train.grad_accum_steps each) the actor
  // keeps ahead; it idles beyond, so it does not burn device time on rollouts that would go stale.
  int ahead = 2;

  void validate() const {
    if (sync_every < 1)
      throw ConfigError("sync_every = " + std::to_string(sync_every) + " must be >= 1", "key actor.sync_every",
                        "1 = refresh after every optimizer step");
    if (max_lag < 1)
      throw ConfigError("max_lag = " + std::to_string(max_lag) + " must be >= 1", "key actor.max_lag",
                        "the largest snapshot lag in optimizer steps before the learner waits for a refresh");
    if (ahead < 1)
      throw ConfigError("ahead = " + std::to_string(ahead) + " must be >= 1", "key actor.ahead",
                        "B updates' worth of fresh rollouts kept ready (1 = just the next update)");
  }
};

template <class V>
void visit_fields(V& v, ActorOptions& o) {
  v.field(Field("sync_every", "The learner asks the actor for a fresh weight snapshot after every "
                              "sync_every-th optimizer step; the actor copies the weights at its next "
                              "rollout-batch boundary. With stage2.schedule: queue, channel_b.version_window "
                              "must be >= sync_every (or B would starve between refreshes).").min(1),
          o.sync_every);
  v.field(Field("max_lag", "Drift trigger: when the snapshot is >= max_lag optimizer steps behind, the learner "
                           "waits at the end of its step until the actor has refreshed (the wait is logged as "
                           "actor_sync_wait_s).").min(1),
          o.max_lag);
  v.field(Field("ahead", "B updates' worth of fresh rollouts (channel_b.batch_size x train.grad_accum_steps "
                         "each, at most channel_b.queue_limit) the actor keeps ready; it idles beyond, so "
                         "it does not spend device time on rollouts that would go stale unused.").min(1),
          o.ahead);
}

}  // namespace coordexp::config
