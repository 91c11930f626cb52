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

StepRouter::StepRouter(bool stage2, const config::Stage2Options& options, StepReducer& reducer)
    : stage2_(stage2), options_(options), reducer_(reducer) {
  options_.validate();
}

StepKind StepRouter::kind_for(int64_t step) {
  if (!stage2_) return StepKind::kStage1;
  // Rank 0 decides; the others contribute 0 to the sum, so all ranks end up with rank 0's choice
  // even if their own view (a changed config, a bug) differed.
  int64_t decided = 0;
  if (reducer_.rank() == 0) decided = deterministic_is_b(step, options_.b_ratio) ? 2 : 1;
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
