// What a user watching a run sees, and what tools read afterwards: an in-place progress line on a
// terminal (step/total, loss, lr, tokens/s, samples/s, ETA) or plain periodic log lines otherwise,
// and output_dir/metrics.jsonl with one JSON object per logged step. Formatting is pure functions
// (tested); the classes only own the output streams. The numbers come from the trainer.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <string>

namespace coordexp::train {

struct ProgressSnapshot {
  int64_t step = 0;          // optimizer steps done
  int64_t total_steps = 0;
  double loss = 0.0;         // total loss of the last step
  double lr = 0.0;           // base learning rate of the last step
  double tokens_per_s = 0.0;
  double samples_per_s = 0.0;
  double eta_s = -1.0;       // < 0 = unknown
};

// "1h02m03s", "4m05s", "7s"; "?" for a negative value.
std::string format_duration(double seconds);
// "step 12/100 | loss 2.3457 | lr 1.00e-04 | 1234 tok/s | 3.21 samples/s | ETA 4m05s"
std::string format_progress_line(const ProgressSnapshot& s);

enum class ProgressMode { kTty, kPlain, kOff };
// log.progress: "tty" | "plain" | "off" | "auto" (tty when stderr is a terminal).
ProgressMode resolve_progress_mode(const std::string& name);

class ProgressReporter {
 public:
  explicit ProgressReporter(ProgressMode mode) : mode_(mode) {}
  ~ProgressReporter();
  // Every optimizer step: redraws the terminal line (tty mode; at most 5 times a second).
  void update(const ProgressSnapshot& s);
  // Logging steps: one info line (plain mode; in tty mode the line is logged above the progress line).
  void log_line(const ProgressSnapshot& s);
  // Clears the progress line before other output.
  void clear();

 private:
  ProgressMode mode_;
  bool line_shown_ = false;
  double last_draw_s_ = -1.0;
};

// Appends records to metrics.jsonl, one line each, flushed per record.
class MetricsWriter {
 public:
  // path "" disables writing. When keep_up_to_step >= 0 (a resumed run), existing records whose
  // "step" is greater are dropped first (they came from the interrupted run after its checkpoint);
  // the file is rewritten atomically. keep_up_to_step < 0 starts a fresh file.
  MetricsWriter(std::string path, int64_t keep_up_to_step);
  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  void write(const nlohmann::ordered_json& record);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace coordexp::train
