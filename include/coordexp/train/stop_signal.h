// Graceful stop on SIGINT/SIGTERM for the training loop: the first signal sets a flag the trainer
// polls after each optimizer step (it then saves a checkpoint and exits 0); a second signal ends
// the process at once (exit 128 + signal number). Installed for the lifetime of a StopSignalScope;
// the previous handlers are restored afterwards. Process-wide state: one scope at a time.
#pragma once

namespace coordexp::train {

class StopSignalScope {
 public:
  StopSignalScope();
  ~StopSignalScope();
  StopSignalScope(const StopSignalScope&) = delete;
  StopSignalScope& operator=(const StopSignalScope&) = delete;

  // True after the first SIGINT/SIGTERM since construction.
  bool requested() const;
  // The signal number received first (0 = none).
  int signal_number() const;
};

}  // namespace coordexp::train
