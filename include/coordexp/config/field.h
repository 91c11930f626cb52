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
// std::vector<int64_t>, std::vector<double>. A nested struct is visited with
// v.section("name", "doc", o.sub) and needs its own visit_fields. The config layer (src/config)
// implements visitors that read YAML, dump YAML, generate docs/config.md and report errors.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace coordexp::config {

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
