// The warmup + decay learning-rate curve of schedule.h as one closed-form function of the step.
#include "coordexp/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "coordexp/util/error.h"

namespace coordexp::train {

DecayKind parse_decay_kind(const std::string& name) {
  if (name == "cosine") return DecayKind::kCosine;
  if (name == "linear") return DecayKind::kLinear;
  if (name == "constant") return DecayKind::kConstant;
  throw ConfigError("unknown schedule '" + name + "'", "key optim.schedule", "use cosine, linear or constant");
}

double LrSchedule::lr_at(int64_t step) const {
  if (warmup_steps > 0 && step <= warmup_steps)
    return peak_lr * static_cast<double>(std::max<int64_t>(step, 0)) / static_cast<double>(warmup_steps);
  if (decay == DecayKind::kConstant || total_steps <= warmup_steps) return peak_lr;
  const double progress = std::min(
      1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps));
  const double r = min_lr_ratio;
  if (decay == DecayKind::kLinear) return peak_lr * (1.0 - (1.0 - r) * progress);
  return peak_lr * (r + (1.0 - r) * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace coordexp::train
