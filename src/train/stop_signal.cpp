// sigaction-based SIGINT/SIGTERM handling for StopSignalScope: an async-signal-safe handler that
// records the first signal and _exit()s on the second, with a short note written by write(2).
#include "coordexp/train/stop_signal.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "coordexp/util/error.h"

namespace coordexp::train {
namespace {

volatile sig_atomic_t g_first_signal = 0;
std::atomic<bool> g_installed{false};
struct sigaction g_old_int, g_old_term;

void on_signal(int sig) {
  if (g_first_signal != 0) {
    const char msg[] = "\nsecond signal: exiting immediately (no checkpoint written)\n";
    (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(128 + sig);
  }
  g_first_signal = sig;
  const char msg[] = "\nstop requested: finishing the current step and saving a checkpoint "
                     "(send the signal again to exit at once)\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
}

}  // namespace

StopSignalScope::StopSignalScope() {
  COORDEXP_CHECK(!g_installed.exchange(true), "only one StopSignalScope may exist at a time");
  g_first_signal = 0;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = &on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, &g_old_int);
  ::sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignalScope::~StopSignalScope() {
  ::sigaction(SIGINT, &g_old_int, nullptr);
  ::sigaction(SIGTERM, &g_old_term, nullptr);
  g_installed = false;
}

bool StopSignalScope::requested() const { return g_first_signal != 0; }
int StopSignalScope::signal_number() const { return static_cast<int>(g_first_signal); }

}  // namespace coordexp::train
