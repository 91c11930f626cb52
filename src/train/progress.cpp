// Progress line formatting and output (terminal or log lines) and the metrics.jsonl writer,
// including the trim of records past the resumed step.
#include "coordexp/train/progress.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::train {
namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!(seconds >= 0.0) || !std::isfinite(seconds)) return "?";
  const int64_t total = static_cast<int64_t>(std::llround(seconds));
  const int64_t h = total / 3600, m = (total % 3600) / 60, s = total % 60;
  char buf[64];
  if (h > 0) std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", (long long)h, (long long)m, (long long)s);
  else if (m > 0) std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)m, (long long)s);
  else std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  return buf;
}

std::string format_progress_line(const ProgressSnapshot& s) {
  char lr[32];
  std::snprintf(lr, sizeof lr, "%.2e", s.lr);
  std::ostringstream os;
  os << "step " << s.step << "/" << s.total_steps << " | loss " << fixed(s.loss, 4) << " | lr " << lr << " | "
     << fixed(s.tokens_per_s, 0) << " tok/s | " << fixed(s.samples_per_s, 2) << " samples/s | ETA "
     << format_duration(s.eta_s);
  return os.str();
}

ProgressMode resolve_progress_mode(const std::string& name) {
  if (name == "tty") return ProgressMode::kTty;
  if (name == "plain") return ProgressMode::kPlain;
  if (name == "off") return ProgressMode::kOff;
  if (name == "auto") return ::isatty(STDERR_FILENO) ? ProgressMode::kTty : ProgressMode::kPlain;
  throw ConfigError("unknown progress mode '" + name + "'", "key log.progress", "use auto, tty, plain or off");
}

ProgressReporter::~ProgressReporter() {
  if (line_shown_) std::cerr << "\n" << std::flush;
}

void ProgressReporter::update(const ProgressSnapshot& s) {
  if (mode_ != ProgressMode::kTty) return;
  const double t = now_s();
  if (last_draw_s_ >= 0.0 && t - last_draw_s_ < 0.2 && s.step < s.total_steps) return;
  last_draw_s_ = t;
  std::cerr << "\r\033[K" << format_progress_line(s) << std::flush;
  line_shown_ = true;
}

void ProgressReporter::log_line(const ProgressSnapshot& s) {
  if (mode_ == ProgressMode::kOff) return;
  clear();
  spdlog::info("{}", format_progress_line(s));
  if (mode_ == ProgressMode::kTty) {
    std::cerr << format_progress_line(s) << std::flush;
    line_shown_ = true;
  }
}

void ProgressReporter::clear() {
  if (!line_shown_) return;
  std::cerr << "\r\033[K" << std::flush;
  line_shown_ = false;
}

MetricsWriter::MetricsWriter(std::string path, int64_t keep_up_to_step) : path_(std::move(path)) {
  if (path_.empty()) return;
  if (keep_up_to_step >= 0) {
    std::ifstream in(path_);
    std::string kept, line;
    int64_t dropped = 0;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!j.is_discarded() && j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() > keep_up_to_step) {
        ++dropped;
        continue;
      }
      kept += line + "\n";
    }
    if (dropped > 0)
      spdlog::info("{}: dropped {} record(s) past the resumed step {}", path_, dropped, keep_up_to_step);
    util::write_file_atomic(path_, kept);
    out_.open(path_, std::ios::app);
  } else {
    out_.open(path_, std::ios::trunc);
  }
  if (!out_)
    throw DataError("cannot open the metrics file for writing", path_, "check train.output_dir and log.metrics_jsonl");
}

void MetricsWriter::write(const nlohmann::ordered_json& record) {
  if (path_.empty()) return;
  out_ << record.dump() << "\n";
  out_.flush();
}

}  // namespace coordexp::train
