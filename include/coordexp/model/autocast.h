// One RAII scope for ATen autocast, shared by the model forward and the gradient-checkpointing
// recompute: it sets the CPU and CUDA autocast flags and dtypes, increments autocast's nesting level
// and, when the outermost scope on this thread exits, clears the thread-local cast cache (ATen keeps
// the low-precision copy of every fp32 leaf weight until then; a recompute that skipped this would
// leave stale copies of weights behind for the next step). Does not choose the precision policy.
#pragma once

#include <c10/core/ScalarType.h>

namespace coordexp::model {

// The thread-local autocast flags and dtypes for CPU and CUDA (both devices: a checkpointed block
// may run under either, and the backward thread starts with neither).
struct AutocastState {
  bool cuda_enabled = false;
  c10::ScalarType cuda_dtype = c10::ScalarType::BFloat16;
  bool cpu_enabled = false;
  c10::ScalarType cpu_dtype = c10::ScalarType::BFloat16;
  bool any_enabled() const { return cuda_enabled || cpu_enabled; }
  static AutocastState current();  // this thread's state now
  void apply() const;              // makes this thread's state `*this` (no nesting change)
};

// Enters `target` for the scope's lifetime and restores the previous state after. A target with
// autocast off still applies (a recompute must not inherit autocast from the backward thread) but
// touches neither the nesting level nor the cache. Not copyable; use on one thread.
class AutocastScope {
 public:
  explicit AutocastScope(const AutocastState& target);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  AutocastState prev_;
  bool nested_;
};

// Whether autocast (CPU or CUDA) is on for this thread: ops then cast their inputs themselves.
bool autocast_active();

}  // namespace coordexp::model
