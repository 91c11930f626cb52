// StepRouter: the kind of every optimizer step of a run (seed 6.1.1, 10.5). Stage-1 runs are all
// kStage1; Stage-2 runs route each step to Channel-A or Channel-B by stage2.schedule. Rank 0
// decides and broadcasts, so every rank runs the same kind (mismatched collectives would hang), and
// the kind holds for the whole accumulation window. Also the realized B ratio over a window.
#pragma once

#include <cstdint>
#include <deque>

#include "coordexp/config/sections/stage2.h"
#include "coordexp/train/reducer.h"

namespace coordexp::train {

enum class StepKind : uint8_t { kStage1, kChannelA, kChannelB };
const char* step_kind_name(StepKind kind);  // "stage1" | "A" | "B" (metrics' step_kind)

// deterministic schedule: step s (0-based optimizer step) is B iff floor((s+1) rho) > floor(s rho).
// Exactly floor(n rho) of the first n steps are B; rho = 0 never, rho = 1 always. Evaluated in a form
// that is exact for the ratios users write (0.05, 0.25, 1/3): the floors are computed on
// (s * rho) with a 1e-9 guard against representation error.
bool deterministic_is_b(int64_t step, double b_ratio);

// queue schedule (seed 6.1.1): with all ranks ready, step `step` is B iff the realized ratio so far,
// num_b_steps / step, is below b_ratio (step 0: iff b_ratio > 0). Same 1e-9 guard.
bool queue_wants_b(int64_t step, int64_t num_b_steps, double b_ratio);

// What the queue schedule needs from this rank for one step (ignored by the deterministic one).
struct RouteInputs {
  int64_t num_b_steps = 0;  // B steps done before `step` (identical on all ranks)
  bool b_ready = false;     // this rank holds enough fresh ready rollouts for the whole update
};

class StepRouter {
 public:
  // `stage2` false: every step is kStage1. `reducer` must outlive the router.
  StepRouter(bool stage2, const config::Stage2Options& options, StepReducer& reducer);

  // The kind of optimizer step `step` (0-based: the step about to run), agreed by all ranks. Every
  // rank calls it for every step (collectives: 1 for deterministic, 2 for queue).
  StepKind kind_for(int64_t step, const RouteInputs& inputs = {});

  // Fraction of B among the last kWindow routed steps (0 before any).
  double realized_b_ratio() const;
  static constexpr size_t kWindow = 100;

 private:
  bool stage2_;
  config::Stage2Options options_;
  StepReducer& reducer_;
  std::deque<bool> recent_;  // true = B
};

}  // namespace coordexp::train
