// Connects options structs (described by visit_fields, see field.h) to the configuration tree:
// a YAML reader with type/range/choice checks, an unknown-key detector with "did you mean", a
// validator (field constraints + each struct's validate()), a YAML dumper and a Markdown reference
// generator. Every visitor walks the same visit_fields, so a new field needs no change here.
// Errors name the dotted key, the value, what is allowed and where the value came from.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "coordexp/config/field.h"
#include "coordexp/config/tree.h"

namespace coordexp::config {

// A pointer to one option member of a supported type (see field.h).
using FieldRef = std::variant<bool*, int*, int64_t*, double*, std::string*,
                              std::vector<std::string>*, std::vector<int64_t>*, std::vector<double>*, Ramp*>;

namespace detail {
template <class S, class = void>
struct HasValidate : std::false_type {};
template <class S>
struct HasValidate<S, std::void_t<decltype(std::declval<const S&>().validate())>> : std::true_type {};
}  // namespace detail

// Base of every schema visitor: tracks the dotted path of sections and turns each typed member
// into a FieldRef, so the concrete visitors are ordinary (non-template) classes.
class SchemaVisitor {
 public:
  virtual ~SchemaVisitor() = default;

  template <class S>
  void section(const std::string& name, const std::string& doc, S& s) {
    path_.push_back(name);
    begin_section(doc);
    visit_fields(*this, s);
    end_section([&s] {
      if constexpr (detail::HasValidate<S>::value) s.validate();
    });
    path_.pop_back();
  }

  template <class T>
  void field(const Field& f, T& value) {
    on_field(f, FieldRef(&value));
  }

 protected:
  using ValidateFn = std::function<void()>;
  virtual void begin_section(const std::string& /*doc*/) {}
  virtual void end_section(const ValidateFn& /*validate*/) {}
  virtual void on_field(const Field& f, FieldRef ref) = 0;

  std::string section_key() const;                        // "optim.vision" ("" at the root)
  std::string key_of(const std::string& field_name) const;  // "optim.vision.lr_mult"
  const std::vector<std::string>& path() const { return path_; }

 private:
  std::vector<std::string> path_;
};

// Every key the schema knows, in visit order.
struct KnownKey {
  std::string key;
  bool is_section = false;
};
std::vector<KnownKey> collect_keys(const std::function<void(SchemaVisitor&)>& visit);

// Throws ConfigError for the first key of `tree` the schema does not know, naming its origin and
// the closest known key ("did you mean `optim.lr`?").
void check_unknown_keys(const ConfigTree& tree, const std::vector<KnownKey>& known);

// The known key closest to `unknown` (edit distance over dotted keys, also matching the last
// component moved to another section); `want_section` picks among sections or among fields.
std::string closest_key(const std::string& unknown, const std::vector<KnownKey>& known,
                        bool want_section);

// Reads values present in `tree` into the visited struct; absent keys keep their defaults.
class YamlReader : public SchemaVisitor {
 public:
  explicit YamlReader(const ConfigTree& tree) : tree_(tree) {}

 protected:
  void begin_section(const std::string& doc) override;
  void on_field(const Field& f, FieldRef ref) override;

 private:
  const ConfigTree& tree_;
};

// Checks every field against its Field constraints (also defaults and programmatic changes), then
// calls each struct's validate(); a ConfigError whose where() is a dotted key gets that key's origin.
class Validator : public SchemaVisitor {
 public:
  explicit Validator(const ConfigTree* tree = nullptr) : tree_(tree) {}

 protected:
  void end_section(const ValidateFn& validate) override;
  void on_field(const Field& f, FieldRef ref) override;

 private:
  const ConfigTree* tree_;
};

// Emits the visited struct as YAML (block style; lists and empty sections in flow style); with
// `sources`, each value gets a comment saying where it was set ("default" when nowhere).
class YamlDumper : public SchemaVisitor {
 public:
  explicit YamlDumper(const ConfigTree* sources = nullptr);
  std::string str();  // the finished document (call once, after visiting)

 protected:
  void begin_section(const std::string& doc) override;
  void end_section(const ValidateFn& validate) override;
  void on_field(const Field& f, FieldRef ref) override;

 private:
  void comment_source(const std::string& key);
  void open_pending_sections();  // writes the headers of sections that got their first content
  void write_string(const std::string& s);

  struct OpenSection {
    std::string name;
    bool written = false;  // its "name:" header and BeginMap were emitted
  };
  const ConfigTree* sources_;
  YAML::Emitter out_;
  std::vector<OpenSection> open_;
};

// Writes the Markdown reference: one heading per section with its description, then a table of
// its keys (type, default, allowed values, meaning). Visit a default-constructed root.
class MarkdownDocWriter : public SchemaVisitor {
 public:
  MarkdownDocWriter() : open_(1) {}
  std::string str() const { return out_; }

 protected:
  void begin_section(const std::string& doc) override;
  void end_section(const ValidateFn& validate) override;
  void on_field(const Field& f, FieldRef ref) override;

 private:
  struct OpenSection {
    bool table_open = false;  // a table header was written and no sub-section interrupted it
    bool has_content = false;  // any key or sub-section was written
  };
  std::string out_;
  std::vector<OpenSection> open_;  // index 0 = the root
};

// Human-readable type name of a field ("int", "float", "list of string", ...).
std::string type_name(const FieldRef& ref);
// The value as compact YAML text ("1e-05", "cosine", "[0.9, 0.999]", "\"\"").
std::string format_value(const FieldRef& ref);
// Shortest decimal text that parses back to exactly `x` ("0.0001", "1e-30", "2").
std::string format_number(double x);
// format_number, but always recognisable as a float in YAML ("2.0" rather than "2").
std::string format_double(double x);

// ------------------------------------------------------------- whole-config operations
// `Root` is any struct with visit_fields(V&, Root&) listing sections/fields (e.g. RunConfig).

template <class Root>
std::vector<KnownKey> known_keys() {
  return collect_keys([](SchemaVisitor& v) {
    Root r;
    visit_fields(v, r);
  });
}

// Field constraints and validate() of every section (and of Root itself when it has one).
template <class Root>
void validate_options(Root& root, const ConfigTree* tree = nullptr) {
  Validator validator(tree);
  visit_fields(validator, root);
  if constexpr (detail::HasValidate<Root>::value) root.validate();
}

// Unknown keys -> types/ranges/choices -> validate(); throws ConfigError on the first problem.
template <class Root>
Root read_options(const ConfigTree& tree) {
  check_unknown_keys(tree, known_keys<Root>());
  Root root;
  YamlReader reader(tree);
  visit_fields(reader, root);
  validate_options(root, &tree);
  return root;
}

template <class Root>
std::string dump_yaml(Root root, const ConfigTree* sources = nullptr) {
  YamlDumper dumper(sources);
  visit_fields(dumper, root);
  return dumper.str();
}

// Body of the reference (section headings and tables) for a default-constructed Root.
template <class Root>
std::string markdown_reference() {
  Root root;
  MarkdownDocWriter writer;
  visit_fields(writer, root);
  return writer.str();
}

}  // namespace coordexp::config
