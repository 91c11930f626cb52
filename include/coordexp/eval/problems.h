// What evaluation left out or repaired, by kind, with the line numbers: bad prediction lines and
// objects, unknown or duplicate images, invalid GT records, clamped boxes. "skipped" problems
// (data not evaluated as written) make `coordexp-train eval` exit 3; "repaired" ones are notes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace coordexp::eval {

enum class Severity : uint8_t {
  kSkipped,   // a line or object was left out, or a GT image had no prediction line
  kRepaired,  // kept after a documented repair (clamped box, default score)
};
const char* severity_name(Severity severity);  // "skipped" | "repaired"

struct ProblemKind {
  Severity severity = Severity::kSkipped;
  int64_t count = 0;
  std::vector<int64_t> lines;          // first kMaxLines line numbers (1-based; 0 = no line)
  std::vector<std::string> examples;   // first kMaxExamples messages "file:line: what"
};

class ProblemLog {
 public:
  static constexpr size_t kMaxLines = 200;
  static constexpr size_t kMaxExamples = 5;

  // Records one problem of `kind` at `file`:`line` (line 0: none); `what` explains it.
  void add(const std::string& kind, Severity severity, const std::string& file, int64_t line,
           const std::string& what);
  void merge(const ProblemLog& other);

  const std::map<std::string, ProblemKind>& kinds() const { return kinds_; }
  int64_t count(const std::string& kind) const;
  int64_t total(Severity severity) const;
  bool any_skipped() const { return total(Severity::kSkipped) > 0; }

 private:
  std::map<std::string, ProblemKind> kinds_;
};

}  // namespace coordexp::eval
