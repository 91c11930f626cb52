// Problem counters for evaluation inputs (see problems.h).
#include "coordexp/eval/problems.h"

namespace coordexp::eval {

const char* severity_name(Severity severity) {
  return severity == Severity::kSkipped ? "skipped" : "repaired";
}

void ProblemLog::add(const std::string& kind, Severity severity, const std::string& file, int64_t line,
                     const std::string& what) {
  ProblemKind& k = kinds_[kind];
  k.severity = severity;
  ++k.count;
  if (k.lines.size() < kMaxLines) k.lines.push_back(line);
  if (k.examples.size() < kMaxExamples)
    k.examples.push_back(file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + what);
}

void ProblemLog::merge(const ProblemLog& other) {
  for (const auto& [name, o] : other.kinds_) {
    ProblemKind& k = kinds_[name];
    k.severity = o.severity;
    k.count += o.count;
    for (int64_t l : o.lines)
      if (k.lines.size() < kMaxLines) k.lines.push_back(l);
    for (const auto& e : o.examples)
      if (k.examples.size() < kMaxExamples) k.examples.push_back(e);
  }
}

int64_t ProblemLog::count(const std::string& kind) const {
  const auto it = kinds_.find(kind);
  return it == kinds_.end() ? 0 : it->second.count;
}

int64_t ProblemLog::total(Severity severity) const {
  int64_t n = 0;
  for (const auto& [name, k] : kinds_)
    if (k.severity == severity) n += k.count;
  return n;
}

}  // namespace coordexp::eval
