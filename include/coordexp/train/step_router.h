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

class StepRouter {
 public:
  // `stage2` false: every step is kStage1. `reducer` must outlive the router.
  StepRouter(bool stage2, const config::Stage2Options& options, StepReducer& reducer);

  // The kind of optimizer step `step` (0-based: the step about to run), agreed by all ranks.
  StepKind kind_for(int64_t step);

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
