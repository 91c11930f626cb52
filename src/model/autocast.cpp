// AutocastScope / AutocastState (see autocast.h): flags and dtypes through util/torch_compat.h (their
// entry points differ between LibTorch 1.13 and 2.4+); increment_nesting, decrement_nesting and
// clear_cache are at::autocast's own, spelled the same in both.
#include "coordexp/model/autocast.h"

#include <ATen/autocast_mode.h>

#include "coordexp/util/torch_compat.h"

namespace coordexp::model {

AutocastState AutocastState::current() {
  AutocastState s;
  s.cuda_enabled = compat::autocast_enabled(c10::DeviceType::CUDA);
  s.cuda_dtype = compat::autocast_dtype(c10::DeviceType::CUDA);
  s.cpu_enabled = compat::autocast_enabled(c10::DeviceType::CPU);
  s.cpu_dtype = compat::autocast_dtype(c10::DeviceType::CPU);
  return s;
}

void AutocastState::apply() const {
  compat::set_autocast_enabled(c10::DeviceType::CUDA, cuda_enabled);
  compat::set_autocast_dtype(c10::DeviceType::CUDA, cuda_dtype);
  compat::set_autocast_enabled(c10::DeviceType::CPU, cpu_enabled);
  compat::set_autocast_dtype(c10::DeviceType::CPU, cpu_dtype);
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

bool autocast_active() {
  return compat::autocast_enabled(c10::DeviceType::CUDA) || compat::autocast_enabled(c10::DeviceType::CPU);
}

}  // namespace coordexp::model
