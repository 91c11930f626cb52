// `stage2:` section — Stage-2 mixture schedule: which optimizer steps are Channel-A and which are
// Channel-B (seed 6.1, 6.1.1, 8.2). Values only, no YAML; train/step_router.h applies them.
#pragma once

#include <cmath>
#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct Stage2Options {
  // deterministic: step s (0-based) is B iff floor((s + 1) * b_ratio) > floor(s * b_ratio), so B steps
  // are spread evenly, exactly b_ratio of them over any long window, and resume-stable.
  // queue (seed 6.1.1 routing rule): a step is B iff every rank holds enough fresh ready rollouts for
  // the whole update and the realized B ratio so far is below b_ratio; else A. Needs the async
  // producer (channel_b.producer: async); the trainer checks that pairing.
  std::string schedule = "deterministic";
  double b_ratio = 0.05;  // rho: fraction of optimizer steps that are Channel-B (0 = pure A, 1 = pure B)

  void validate() const {
    if (schedule != "deterministic" && schedule != "queue")
      throw ConfigError("schedule '" + schedule + "' is unknown", "key stage2.schedule",
                        "use deterministic or queue (queue needs channel_b.producer: async)");
    if (!(std::isfinite(b_ratio) && b_ratio >= 0.0 && b_ratio <= 1.0))
      throw ConfigError("b_ratio = " + std::to_string(b_ratio) + " is out of range", "key stage2.b_ratio",
                        "use a fraction in [0, 1] (0 = Channel-A only, 1 = Channel-B only)");
  }
};

template <class V>
void visit_fields(V& v, Stage2Options& o) {
  v.field(Field("schedule", "Step routing: deterministic = optimizer step s (0-based) is Channel-B iff "
                            "floor((s+1)*b_ratio) > floor(s*b_ratio) (with the async producer a B step waits "
                            "for its rollouts); queue = a step is Channel-B iff every rank holds enough fresh "
                            "ready rollouts for the whole update (channel_b.batch_size x "
                            "train.grad_accum_steps) and the realized B ratio so far is below b_ratio, else "
                            "Channel-A (seed 6.1.1; needs channel_b.producer: async). Rank 0 decides and "
                            "broadcasts, and the kind holds for the whole accumulation window.")
              .choices({"deterministic", "queue"}),
          o.schedule);
  v.field(Field("b_ratio", "rho, the fraction of optimizer steps that are Channel-B (seed default 0.05). "
                           "A B step optimizes L_B at full weight; the mixture comes from routing "
                           "frequency only. 0 = Channel-A only, 1 = Channel-B only.")
              .range(0.0, 1.0),
          o.b_ratio);
}

}  // namespace coordexp::config
