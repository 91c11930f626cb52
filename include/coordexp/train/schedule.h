// Learning-rate schedule: linear warmup from 0 to the peak, then cosine, linear or constant decay to
// peak x min_lr_ratio at the last step. A pure function of the step number, so a resumed run needs
// no scheduler state beyond the step. Per-group multipliers are applied by the optimizer.
#pragma once

#include <cstdint>
#include <string>

namespace coordexp::train {

enum class DecayKind { kCosine, kLinear, kConstant };
// "cosine" | "linear" | "constant"; throws ConfigError naming optim.schedule otherwise.
DecayKind parse_decay_kind(const std::string& name);

struct LrSchedule {
  double peak_lr = 1e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;    // optimizer steps of the whole run
  DecayKind decay = DecayKind::kCosine;
  double min_lr_ratio = 0.1;  // lr at step total_steps = peak_lr x min_lr_ratio (cosine, linear)

  // Learning rate of optimizer step `step` (1-based: the first update is step 1).
  // Warmup: peak x step / warmup_steps for step <= warmup_steps. Then with
  // progress = (step - warmup) / (total - warmup) in (0, 1]: cosine
  // peak x (r + (1 - r) x (1 + cos(pi x progress)) / 2), linear peak x (1 - (1 - r) x progress).
  // Steps past total_steps keep the final value.
  double lr_at(int64_t step) const;
};

}  // namespace coordexp::train
