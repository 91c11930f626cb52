// AutocastScope / AutocastState (see autocast.h): the LibTorch 1.13 entry points
// (at::autocast::{is_enabled,is_cpu_enabled,set_*,increment_nesting,decrement_nesting,clear_cache}).
#include "coordexp/model/autocast.h"

#include <ATen/autocast_mode.h>

namespace coordexp::model {

AutocastState AutocastState::current() {
  AutocastState s;
  s.cuda_enabled = at::autocast::is_enabled();
  s.cuda_dtype = at::autocast::get_autocast_gpu_dtype();
  s.cpu_enabled = at::autocast::is_cpu_enabled();
  s.cpu_dtype = at::autocast::get_autocast_cpu_dtype();
  return s;
}

void AutocastState::apply() const {
  at::autocast::set_enabled(cuda_enabled);
  at::autocast::set_autocast_gpu_dtype(cuda_dtype);
  at::autocast::set_cpu_enabled(cpu_enabled);
  at::autocast::set_autocast_cpu_dtype(cpu_dtype);
}

AutocastScope::AutocastScope(const AutocastState& target)
    : prev_(AutocastState::current()), nested_(target.any_enabled()) {
  target.apply();
  if (nested_) at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  // Like torch.autocast.__exit__: the outermost exit drops the cached casts of this thread.
  if (nested_ && at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  prev_.apply();
}

bool autocast_active() { return at::autocast::is_enabled() || at::autocast::is_cpu_enabled(); }

}  // namespace coordexp::model
