// `log:` section — console log level, the metrics file and the progress display. The log file itself
// is always output_dir/train.log (rank 0; other ranks write train.rank<k>.log).
// Values only; src/apps installs the logger and src/train writes metrics and progress.
#pragma once

#include <string>

#include "coordexp/config/field.h"

namespace coordexp::config {

struct LogOptions {
  std::string level = "auto";                 // auto = info on rank 0, warn elsewhere; CLI --log-level wins
  std::string metrics_jsonl = "metrics.jsonl";  // per-step metrics file in output_dir; "" = none
  std::string progress = "auto";              // auto (tty line if stderr is a terminal) | tty | plain | off

  void validate() const {}
};

template <class V>
void visit_fields(V& v, LogOptions& o) {
  v.field(Field("level", "Log level; auto = info on rank 0 and warn on other ranks. The global "
                         "`--log-level` flag wins.")
              .choices({"auto", "trace", "debug", "info", "warn", "error", "critical", "off"}),
          o.level);
  v.field(Field("metrics_jsonl", "File in output_dir receiving one JSON object per logged step; "
                                 "empty = no metrics file."), o.metrics_jsonl);
  v.field(Field("progress", "Progress display: tty = in-place progress line, plain = periodic log "
                            "lines, auto = tty when stderr is a terminal else plain.")
              .choices({"auto", "tty", "plain", "off"}), o.progress);
}

}  // namespace coordexp::config
