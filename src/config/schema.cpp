// The schema visitors of include/coordexp/config/schema.h: YAML -> typed values with precise errors,
// unknown keys with "did you mean", constraint validation, YAML dump and the Markdown reference.
// Type conversion is strict (a quoted "5" is not an int, 1.5 is not an int, 1e3 is not an int).
#include "coordexp/config/schema.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>

#include "coordexp/util/error.h"

namespace coordexp::config {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

std::string join_key(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

std::string last_component(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

std::string parent_of(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? std::string() : key.substr(0, dot);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string join_list(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

// A value the user wrote, for messages: 'abc' for scalars, the kind for anything else.
std::string describe(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing (null)";
}

bool is_quoted(const YAML::Node& node) {
  return node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str";
}

// Everything a conversion error needs to say where and what.
struct Site {
  std::string key;     // dotted key
  std::string origin;  // "file:line", "--set ...", "" for defaults
};

[[noreturn]] void fail_type(const Site& site, const YAML::Node& node, const std::string& expected,
                            const std::string& hint) {
  std::string got = describe(node);
  if (node.IsScalar() && is_quoted(node)) got = "the quoted string " + got;
  throw ConfigError("`" + site.key + "` must be " + expected + ", got " + got, site.origin, hint);
}

std::string range_text(const Field& f, bool integral) {
  auto bound = [&](double x) {
    return integral ? std::to_string(static_cast<long long>(x)) : format_number(x);
  };
  if (f.min_value() && f.max_value())
    return "[" + bound(*f.min_value()) + ", " + bound(*f.max_value()) + "]";
  if (f.min_value()) return ">= " + bound(*f.min_value());
  if (f.max_value()) return "<= " + bound(*f.max_value());
  return "";
}

void check_range(const Site& site, const Field& f, double x, const std::string& text,
                 bool integral) {
  const bool low = f.min_value() && x < *f.min_value();
  const bool high = f.max_value() && x > *f.max_value();
  if (low || high)
    throw ConfigError("`" + site.key + "` = " + text + " is out of range; allowed range is " +
                          range_text(f, integral),
                      site.origin,
                      std::string("choose a value ") + (f.min_value() && f.max_value() ? "in " : "") +
                          range_text(f, integral));
}

void check_choice(const Site& site, const Field& f, const std::string& value) {
  const auto& allowed = f.allowed();
  if (allowed.empty() || std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& a : allowed)
    if (size_t d = edit_distance(value, a); d < best_d) best_d = d, best = a;
  const std::string hint = best_d <= std::max<size_t>(2, value.size() / 3)
                               ? "did you mean `" + best + "`?"
                               : "use one of: " + join_list(allowed, ", ");
  throw ConfigError("`" + site.key + "` = '" + value + "' is not an allowed value; allowed values are " +
                        join_list(allowed, ", "),
                    site.origin, hint);
}

// ---------------------------------------------------------------- scalar conversions

bool read_bool(const Site& site, const YAML::Node& node) {
  static const std::set<std::string> kTrue = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
  static const std::set<std::string> kFalse = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
  if (node.IsScalar() && !is_quoted(node)) {
    if (kTrue.count(node.Scalar())) return true;
    if (kFalse.count(node.Scalar())) return false;
  }
  fail_type(site, node, "a boolean", "write true or false");
}

int64_t read_int64(const Site& site, const YAML::Node& node, int64_t lo, int64_t hi) {
  if (!node.IsScalar() || is_quoted(node))
    fail_type(site, node, "an integer", "write a whole number such as 10");
  std::string text = node.Scalar();
  if (!text.empty() && text[0] == '+') text.erase(0, 1);
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && (value < lo || value > hi)))
    throw ConfigError("`" + site.key + "` = " + node.Scalar() + " does not fit the integer type; "
                      "allowed range is [" + std::to_string(lo) + ", " + std::to_string(hi) + "]",
                      site.origin, "choose a smaller value");
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    fail_type(site, node, "an integer", "write a whole number such as 10");
  return value;
}

double read_double(const Site& site, const YAML::Node& node) {
  if (!node.IsScalar() || is_quoted(node))
    fail_type(site, node, "a number", node.IsScalar() ? "remove the quotes" : "write e.g. 0.001");
  static const std::set<std::string> kYamlNonFinite = {
      ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF"};
  const std::string& text = node.Scalar();
  char* end = nullptr;
  const double value = text.empty() ? 0.0 : std::strtod(text.c_str(), &end);
  const bool parsed = !text.empty() && end == text.c_str() + text.size();
  if (!parsed && !kYamlNonFinite.count(text))
    fail_type(site, node, "a number", "write e.g. 0.001 or 1e-4");
  if (!parsed || !std::isfinite(value))
    throw ConfigError("`" + site.key + "` = " + text + " is not a finite number", site.origin,
                      "write a finite value");
  return value;
}

std::string read_string(const Site& site, const YAML::Node& node) {
  if (node.IsNull()) return "";
  if (!node.IsScalar()) fail_type(site, node, "a string", "write a single value");
  return node.Scalar();
}

std::vector<YAML::Node> read_list(const Site& site, const YAML::Node& node) {
  std::vector<YAML::Node> items;
  // Null and an empty unquoted value (`--set key=`) mean the empty list.
  if (node.IsNull() || (node.IsScalar() && node.Scalar().empty() && !is_quoted(node))) return items;
  if (!node.IsSequence()) fail_type(site, node, "a list", "write [a, b] (or [] for none)");
  for (const auto& item : node) items.push_back(item);
  return items;
}

constexpr int64_t kIntMin = std::numeric_limits<int>::min();
constexpr int64_t kIntMax = std::numeric_limits<int>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();

// A Ramp: a number (constant) or a mapping {start, end, ramp_steps}; start and end are range-checked.
Ramp read_ramp(const Site& site, const Field& f, const YAML::Node& node) {
  if (!node.IsMap()) {
    const double v = read_double(site, node);
    check_range(site, f, v, node.Scalar(), false);
    return Ramp::constant(v);
  }
  Ramp r;
  bool has_start = false, has_end = false;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string k = it->first.Scalar();
    const Site sub{join_key(site.key, k), site.origin};
    if (k == "start") {
      r.start = read_double(sub, it->second);
      check_range(sub, f, r.start, it->second.Scalar(), false);
      has_start = true;
    } else if (k == "end") {
      r.end = read_double(sub, it->second);
      check_range(sub, f, r.end, it->second.Scalar(), false);
      has_end = true;
    } else if (k == "ramp_steps") {
      r.ramp_steps = read_int64(sub, it->second, 0, kI64Max);
    } else {
      throw ConfigError("unknown key `" + sub.key + "`", site.origin,
                        "a schedule has start, end and ramp_steps (or write a single number)");
    }
  }
  if (!has_start)
    throw ConfigError("`" + site.key + "` schedule has no start", site.origin,
                      "write {start: A, end: B, ramp_steps: N} or a single number");
  if (!has_end) r.end = r.start;
  if (r.start != r.end && r.ramp_steps <= 0)
    throw ConfigError("`" + site.key + "` moves from " + format_number(r.start) + " to " + format_number(r.end) +
                          " but ramp_steps is " + std::to_string(r.ramp_steps),
                      site.origin, "set ramp_steps to the optimizer steps the ramp takes (> 0)");
  return r;
}

// Reads `node` into the member behind `ref`, checking type, range and choices.
void read_into(const Site& site, const Field& f, const YAML::Node& node, FieldRef ref) {
  std::visit(
      Overloaded{
          [&](bool* v) { *v = read_bool(site, node); },
          [&](int* v) {
            *v = static_cast<int>(read_int64(site, node, kIntMin, kIntMax));
            check_range(site, f, *v, node.Scalar(), true);
          },
          [&](int64_t* v) {
            *v = read_int64(site, node, kI64Min, kI64Max);
            check_range(site, f, static_cast<double>(*v), node.Scalar(), true);
          },
          [&](double* v) {
            *v = read_double(site, node);
            check_range(site, f, *v, node.Scalar(), false);
          },
          [&](std::string* v) {
            *v = read_string(site, node);
            check_choice(site, f, *v);
          },
          [&](std::vector<std::string>* v) {
            std::vector<std::string> out;
            for (const auto& item : read_list(site, node)) {
              out.push_back(read_string(site, item));
              check_choice(site, f, out.back());
            }
            *v = std::move(out);
          },
          [&](std::vector<int64_t>* v) {
            std::vector<int64_t> out;
            for (const auto& item : read_list(site, node)) {
              out.push_back(read_int64(site, item, kI64Min, kI64Max));
              check_range(site, f, static_cast<double>(out.back()), item.Scalar(), true);
            }
            *v = std::move(out);
          },
          [&](std::vector<double>* v) {
            std::vector<double> out;
            for (const auto& item : read_list(site, node)) {
              out.push_back(read_double(site, item));
              check_range(site, f, out.back(), item.Scalar(), false);
            }
            *v = std::move(out);
          },
          [&](Ramp* v) { *v = read_ramp(site, f, node); },
      },
      ref);
}

void check_constraints(const Site& site, const Field& f, FieldRef ref) {
  std::visit(Overloaded{
                 [&](bool*) {},
                 [&](int* v) { check_range(site, f, *v, std::to_string(*v), true); },
                 [&](int64_t* v) {
                   check_range(site, f, static_cast<double>(*v), std::to_string(*v), true);
                 },
                 [&](double* v) {
                   if (!std::isfinite(*v))
                     throw ConfigError("`" + site.key + "` is not a finite number", site.origin);
                   check_range(site, f, *v, format_number(*v), false);
                 },
                 [&](std::string* v) { check_choice(site, f, *v); },
                 [&](std::vector<std::string>* v) {
                   for (const auto& s : *v) check_choice(site, f, s);
                 },
                 [&](std::vector<int64_t>* v) {
                   for (int64_t x : *v)
                     check_range(site, f, static_cast<double>(x), std::to_string(x), true);
                 },
                 [&](std::vector<double>* v) {
                   for (double x : *v) check_range(site, f, x, format_number(x), false);
                 },
                 [&](Ramp* v) {
                   check_range(site, f, v->start, format_number(v->start), false);
                   check_range(site, f, v->end, format_number(v->end), false);
                 },
             },
             ref);
}

bool is_integral(const FieldRef& ref) {
  return std::holds_alternative<int*>(ref) || std::holds_alternative<int64_t*>(ref) ||
         std::holds_alternative<std::vector<int64_t>*>(ref);
}

// Markdown table cells must not contain a bare '|'.
std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

class KeyCollector : public SchemaVisitor {
 public:
  std::vector<KnownKey> keys;

 protected:
  void begin_section(const std::string&) override { keys.push_back({section_key(), true}); }
  void on_field(const Field& f, FieldRef) override { keys.push_back({key_of(f.name()), false}); }
};

struct UnknownKey {
  std::string key;
  bool is_map = false;
};

void find_unknown(const YAML::Node& map, const std::string& prefix,
                  const std::set<std::string>& fields, const std::set<std::string>& sections,
                  std::vector<UnknownKey>& out) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    const std::string key = join_key(prefix, it->first.Scalar());
    if (fields.count(key)) continue;
    if (sections.count(key)) {
      if (it->second.IsMap()) find_unknown(it->second, key, fields, sections, out);
      continue;
    }
    out.push_back({key, it->second.IsMap()});
  }
}

}  // namespace

// ---------------------------------------------------------------- SchemaVisitor

std::string SchemaVisitor::section_key() const { return join_list(path_, "."); }

std::string SchemaVisitor::key_of(const std::string& field_name) const {
  return join_key(section_key(), field_name);
}

// ---------------------------------------------------------------- keys

std::vector<KnownKey> collect_keys(const std::function<void(SchemaVisitor&)>& visit) {
  KeyCollector collector;
  visit(collector);
  return collector.keys;
}

std::string closest_key(const std::string& unknown, const std::vector<KnownKey>& known,
                        bool want_section) {
  // Score: plain edit distance of the dotted keys, or — for a key put in the wrong section — the
  // distance of the last components plus 2 for the move.
  std::string best;
  size_t best_score = std::numeric_limits<size_t>::max();
  const std::string leaf = last_component(unknown), parent = parent_of(unknown);
  for (int pass = 0; pass < 2 && best.empty(); ++pass) {
    for (const auto& k : known) {
      if (pass == 0 && k.is_section != want_section) continue;
      const size_t moved = edit_distance(leaf, last_component(k.key)) +
                           (parent_of(k.key) == parent ? 0 : 2);
      const size_t score = std::min(edit_distance(unknown, k.key), moved);
      if (score < best_score) best_score = score, best = k.key;
    }
  }
  return best;
}

void check_unknown_keys(const ConfigTree& tree, const std::vector<KnownKey>& known) {
  std::set<std::string> fields, sections;
  for (const auto& k : known) (k.is_section ? sections : fields).insert(k.key);
  std::vector<UnknownKey> unknown;
  find_unknown(tree.root(), "", fields, sections, unknown);
  if (unknown.empty()) return;
  const UnknownKey& first = unknown.front();
  std::string what = "unknown key `" + first.key + "`";
  if (unknown.size() > 1)
    what += " (and " + std::to_string(unknown.size() - 1) + " more unknown key" +
            (unknown.size() > 2 ? "s" : "") + ")";
  const std::string best = closest_key(first.key, known, first.is_map);
  throw ConfigError(what, tree.origin(first.key),
                    (best.empty() ? std::string() : "did you mean `" + best + "`? ") +
                        "every key is listed in docs/config.md");
}

// ---------------------------------------------------------------- YamlReader

void YamlReader::begin_section(const std::string&) {
  const std::string key = section_key();
  const auto node = tree_.find(key);
  if (node && !node->IsMap() && !node->IsNull())
    throw ConfigError("`" + key + "` must be a mapping of keys, got " + describe(*node),
                      tree_.origin(key), "write `" + path().back() + ":` followed by indented keys");
}

void YamlReader::on_field(const Field& f, FieldRef ref) {
  const std::string key = key_of(f.name());
  const auto node = tree_.find(key);
  if (!node) return;  // not set anywhere: keep the default
  read_into(Site{key, tree_.origin(key)}, f, *node, ref);
}

// ---------------------------------------------------------------- Validator

void Validator::on_field(const Field& f, FieldRef ref) {
  const std::string key = key_of(f.name());
  const std::string origin = tree_ ? tree_->origin(key) : std::string();
  check_constraints(Site{key, origin.empty() ? std::string("default") : origin}, f, ref);
}

void Validator::end_section(const ValidateFn& validate) {
  try {
    validate();
  } catch (const ConfigError& e) {
    // validate() names the key in where(); add the file/line (or --set) it came from.
    const std::string origin = tree_ ? tree_->origin(e.where()) : std::string();
    if (origin.empty()) throw;
    throw ConfigError(e.message(), origin + ": key " + e.where(), e.hint());
  }
}

// ---------------------------------------------------------------- YamlDumper

YamlDumper::YamlDumper(const ConfigTree* sources) : sources_(sources) {
  out_ << YAML::BeginMap;
}

std::string YamlDumper::str() {
  out_ << YAML::EndMap;
  return std::string(out_.c_str()) + "\n";
}

void YamlDumper::comment_source(const std::string& key) {
  if (!sources_) return;
  const std::string origin = sources_->origin(key);
  out_ << YAML::Comment(origin.empty() ? "default" : origin);
}

void YamlDumper::begin_section(const std::string&) { open_.push_back({path().back(), false}); }

void YamlDumper::open_pending_sections() {
  for (auto& sec : open_) {
    if (sec.written) continue;
    out_ << YAML::Key << sec.name << YAML::Value << YAML::BeginMap;
    sec.written = true;
  }
}

void YamlDumper::end_section(const ValidateFn&) {
  const OpenSection sec = open_.back();
  open_.pop_back();
  if (sec.written) {
    out_ << YAML::EndMap;
    return;
  }
  open_pending_sections();  // an empty section is still content of its parent
  out_ << YAML::Key << sec.name << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::EndMap;
}

void YamlDumper::write_string(const std::string& s) {
  // Strings another YAML reader would take for null, a boolean or a number are quoted, so the
  // file means the same everywhere (our reader types values by the schema either way).
  static const std::set<std::string> kSpecial = {
      "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE",
      "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N"};
  char* end = nullptr;
  const bool numeric = !s.empty() && (std::strtod(s.c_str(), &end), end == s.c_str() + s.size());
  if (kSpecial.count(s) || numeric) out_ << YAML::DoubleQuoted;
  out_ << s;
}

void YamlDumper::on_field(const Field& f, FieldRef ref) {
  open_pending_sections();
  out_ << YAML::Key << f.name() << YAML::Value;
  std::visit(Overloaded{
                 [&](bool* v) { out_ << *v; },
                 [&](int* v) { out_ << *v; },
                 [&](int64_t* v) { out_ << *v; },
                 [&](double* v) { out_ << format_double(*v); },
                 [&](std::string* v) { write_string(*v); },
                 [&](std::vector<std::string>* v) {
                   out_ << YAML::Flow << YAML::BeginSeq;
                   for (const auto& s : *v) write_string(s);
                   out_ << YAML::EndSeq;
                 },
                 [&](std::vector<int64_t>* v) {
                   out_ << YAML::Flow << YAML::BeginSeq;
                   for (int64_t x : *v) out_ << x;
                   out_ << YAML::EndSeq;
                 },
                 [&](std::vector<double>* v) {
                   out_ << YAML::Flow << YAML::BeginSeq;
                   for (double x : *v) out_ << format_double(x);
                   out_ << YAML::EndSeq;
                 },
                 [&](Ramp* v) {
                   if (v->is_constant()) {
                     out_ << format_double(v->start);
                   } else {
                     out_ << YAML::Flow << YAML::BeginMap << YAML::Key << "start" << YAML::Value << format_double(v->start)
                          << YAML::Key << "end" << YAML::Value << format_double(v->end) << YAML::Key << "ramp_steps"
                          << YAML::Value << v->ramp_steps << YAML::EndMap;
                   }
                 },
             },
             ref);
  comment_source(key_of(f.name()));
}

// ---------------------------------------------------------------- MarkdownDocWriter

void MarkdownDocWriter::begin_section(const std::string& doc) {
  open_.back().table_open = false;
  open_.back().has_content = true;
  open_.push_back({});
  out_ += "\n" + std::string(path().size() + 1, '#') + " `" + section_key() + "`\n\n" + doc + "\n";
}

void MarkdownDocWriter::end_section(const ValidateFn&) {
  if (!open_.back().has_content) out_ += "\nNo keys yet.\n";
  open_.pop_back();
}

void MarkdownDocWriter::on_field(const Field& f, FieldRef ref) {
  OpenSection& sec = open_.back();
  if (!sec.table_open) {
    out_ += "\n| Key | Type | Default | Allowed | Meaning |\n|---|---|---|---|---|\n";
    sec.table_open = true;
  }
  sec.has_content = true;
  std::string allowed;
  if (!f.allowed().empty()) {
    std::vector<std::string> quoted;
    for (const auto& a : f.allowed()) quoted.push_back("`" + a + "`");
    allowed = join_list(quoted, ", ");
  } else {
    const std::string range = range_text(f, is_integral(ref));
    allowed = range.empty() ? "any" : "`" + range + "`";
  }
  out_ += "| `" + md_cell(key_of(f.name())) + "` | " + type_name(ref) + " | `" +
          md_cell(format_value(ref)) + "` | " + md_cell(allowed) + " | " + md_cell(f.doc()) + " |\n";
}

// ---------------------------------------------------------------- formatting

std::string type_name(const FieldRef& ref) {
  return std::visit(Overloaded{
                        [](bool*) { return "bool"; },
                        [](int*) { return "int"; },
                        [](int64_t*) { return "int"; },
                        [](double*) { return "float"; },
                        [](std::string*) { return "string"; },
                        [](std::vector<std::string>*) { return "list of string"; },
                        [](std::vector<int64_t>*) { return "list of int"; },
                        [](std::vector<double>*) { return "list of float"; },
                        [](Ramp*) { return "float or {start, end, ramp_steps}"; },
                    },
                    ref);
}

std::string format_number(double x) {
  if (std::isnan(x)) return ".nan";
  if (std::isinf(x)) return x > 0 ? ".inf" : "-.inf";
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

std::string format_double(double x) {
  std::string s = format_number(x);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";  // "2" -> "2.0"; keeps 1e-05, .inf
  return s;
}

std::string format_value(const FieldRef& ref) {
  auto list = [](const auto& items, auto fmt) {
    std::vector<std::string> parts;
    for (const auto& x : items) parts.push_back(fmt(x));
    return "[" + join_list(parts, ", ") + "]";
  };
  auto str = [](const std::string& s) { return s.empty() ? std::string("\"\"") : s; };
  return std::visit(
      Overloaded{
          [](bool* v) { return std::string(*v ? "true" : "false"); },
          [](int* v) { return std::to_string(*v); },
          [](int64_t* v) { return std::to_string(*v); },
          [](double* v) { return format_double(*v); },
          [&](std::string* v) { return str(*v); },
          [&](std::vector<std::string>* v) { return list(*v, str); },
          [&](std::vector<int64_t>* v) { return list(*v, [](int64_t x) { return std::to_string(x); }); },
          [&](std::vector<double>* v) { return list(*v, format_double); },
          [&](Ramp* v) {
            return v->is_constant() ? format_double(v->start)
                                    : "{start: " + format_double(v->start) + ", end: " + format_double(v->end) +
                                          ", ramp_steps: " + std::to_string(v->ramp_steps) + "}";
          },
      },
      ref);
}

}  // namespace coordexp::config
