// How an options struct describes its fields to the config system, without knowing YAML.
// Every module's Options struct gets a free function next to it:
//
//   template <class V> void visit_fields(V& v, ProtocolOptions& o) {
//     v.field(Field("pixel_extent", "pixel -> [0,1] denominator: size (W) or size_minus_one (W-1)")
//                 .choices({"size", "size_minus_one"}), o.pixel_extent);
//     v.field(Field("decode_tau", "temperature of the coord softmax").range(1e-4, 100.0), o.decode_tau);
//   }
//
// Adding a config key = adding the member (with its default and a comment) + one v.field line.
// Supported member types: bool, int, int64_t, double, std::string, std::vector<std::string>,
// std::vector<int64_t>, std::vector<double>, Ramp (a number, or a linear schedule
// {start, end, ramp_steps} in optimizer steps). A nested struct is visited with
// v.section("name", "doc", o.sub) and needs its own visit_fields. The config layer (src/config)
// implements visitors that read YAML, dump YAML, generate docs/config.md and report errors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace coordexp::config {

// A value that may move linearly over training: YAML `0.5` (constant) or `{start: 0.5, end: 0.3,
// ramp_steps: 2000}` (start at optimizer step 0, end from ramp_steps on; `end` defaults to start;
// a ramp with end != start needs ramp_steps > 0). A function of the step only, so it is the same
// after a resume.
struct Ramp {
  double start = 0.0;
  double end = 0.0;
  int64_t ramp_steps = 0;

  Ramp() = default;
  Ramp(double v) : start(v), end(v) {}  // NOLINT: a number is a constant ramp (o.min_iou = 0.5)
  Ramp(double s, double e, int64_t steps) : start(s), end(e), ramp_steps(steps) {}
  static Ramp constant(double v) { return Ramp(v); }
  bool is_constant() const { return start == end; }
  // The value of a constant ramp (start when it still moves: callers resolve at(step) first).
  double value() const { return start; }
  double at(int64_t step) const {
    if (is_constant() || ramp_steps <= 0) return start;
    if (step >= ramp_steps) return end;
    const double t = static_cast<double>(std::max<int64_t>(step, 0)) / static_cast<double>(ramp_steps);
    return start + (end - start) * t;
  }
};

class Field {
 public:
  Field(std::string name, std::string doc) : name_(std::move(name)), doc_(std::move(doc)) {}
  Field& choices(std::vector<std::string> c) { choices_ = std::move(c); return *this; }
  Field& range(double lo, double hi) { min_ = lo; max_ = hi; return *this; }
  Field& min(double lo) { min_ = lo; return *this; }
  Field& max(double hi) { max_ = hi; return *this; }

  const std::string& name() const { return name_; }
  const std::string& doc() const { return doc_; }
  const std::vector<std::string>& allowed() const { return choices_; }
  const std::optional<double>& min_value() const { return min_; }
  const std::optional<double>& max_value() const { return max_; }

 private:
  std::string name_, doc_;
  std::vector<std::string> choices_;
  std::optional<double> min_, max_;
};

}  // namespace coordexp::config
