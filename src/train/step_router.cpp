// Step routing (step_router.h): the deterministic B schedule and the rank-0 decision broadcast.
#include "coordexp/train/step_router.h"

#include <cmath>
#include <vector>

#include "coordexp/util/error.h"

namespace coordexp::train {

const char* step_kind_name(StepKind kind) {
  switch (kind) {
    case StepKind::kStage1: return "stage1";
    case StepKind::kChannelA: return "A";
    case StepKind::kChannelB: return "B";
  }
  return "?";
}

bool deterministic_is_b(int64_t step, double b_ratio) {
  if (b_ratio <= 0.0) return false;
  if (b_ratio >= 1.0) return true;
  // 1e-9 absorbs binary representation error (0.05 * 20 = 1.0000000000000002 or 0.9999999999999999)
  // without moving any boundary a real ratio has: boundaries are >= 1 / (steps) apart.
  constexpr double kGuard = 1e-9;
  const double a = std::floor(static_cast<double>(step) * b_ratio + kGuard);
  const double b = std::floor(static_cast<double>(step + 1) * b_ratio + kGuard);
  return b > a;
}

bool queue_wants_b(int64_t step, int64_t num_b_steps, double b_ratio) {
  if (b_ratio <= 0.0) return false;
  if (step <= 0) return true;
  constexpr double kGuard = 1e-9;  // num_b / step == b_ratio exactly is not "below"
  return static_cast<double>(num_b_steps) + kGuard < b_ratio * static_cast<double>(step);
}

StepRouter::StepRouter(bool stage2, const config::Stage2Options& options, StepReducer& reducer)
    : stage2_(stage2), options_(options), reducer_(reducer) {
  options_.validate();
}

StepKind StepRouter::kind_for(int64_t step, const RouteInputs& inputs) {
  if (!stage2_) return StepKind::kStage1;
  const bool queue = options_.schedule == "queue";
  bool all_ready = false;
  if (queue) {
    // B only when every rank can fill the whole update: a rank without rollouts would otherwise
    // have to wait (or run a different kind, and the collectives would not match).
    std::vector<int64_t> ready{inputs.b_ready ? 1 : 0};
    if (reducer_.world_size() > 1) reducer_.sum(ready);
    all_ready = ready[0] == reducer_.world_size();
  }
  // Rank 0 decides; the others contribute 0 to the sum, so all ranks end up with rank 0's choice
  // even if their own view (a changed config, a bug) differed.
  int64_t decided = 0;
  if (reducer_.rank() == 0) {
    const bool b = queue ? all_ready && queue_wants_b(step, inputs.num_b_steps, options_.b_ratio)
                         : deterministic_is_b(step, options_.b_ratio);
    decided = b ? 2 : 1;
  }
  std::vector<int64_t> v{decided};
  if (reducer_.world_size() > 1) reducer_.sum(v);
  COORDEXP_CHECK(v[0] == 1 || v[0] == 2, "step kind broadcast gave " << v[0]);
  const bool is_b = v[0] == 2;
  recent_.push_back(is_b);
  if (recent_.size() > kWindow) recent_.pop_front();
  return is_b ? StepKind::kChannelB : StepKind::kChannelA;
}

double StepRouter::realized_b_ratio() const {
  if (recent_.empty()) return 0.0;
  size_t n = 0;
  for (bool b : recent_) n += b ? 1 : 0;
  return static_cast<double>(n) / static_cast<double>(recent_.size());
}

}  // namespace coordexp::train
