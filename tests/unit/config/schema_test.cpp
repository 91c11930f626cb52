// The schema visitors on a small test schema that uses every supported member type, a nested
// section and an empty one: typed reading, each error message (type, range, choice, unknown key with
// did-you-mean and origin, validate() with origin), dump -> reload round trip, and the Markdown rows.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "coordexp/config/schema.h"
#include "coordexp/util/error.h"

namespace testschema {

using coordexp::ConfigError;
using coordexp::config::Field;

struct Inner {
  double scale = 1.5;
  bool on = false;
};
template <class V>
void visit_fields(V& v, Inner& o) {
  v.field(Field("scale", "a scale").range(0, 10), o.scale);
  v.field(Field("on", "a switch"), o.on);
}

struct Alpha {
  bool flag = true;
  int count = 3;
  int64_t big = 5'000'000'000;
  double rate = 0.25;
  std::string mode = "fast";
  std::string path = "out";
  std::vector<std::string> names = {"a"};
  std::vector<int64_t> ids = {1, 2};
  std::vector<double> weights = {0.5};
  coordexp::config::Ramp gate = 0.5;
  Inner inner;

  void validate() const {
    if (mode == "slow" && count > 5)
      throw ConfigError("alpha.count must be <= 5 when alpha.mode is slow", "alpha.count",
                        "lower alpha.count");
  }
};
template <class V>
void visit_fields(V& v, Alpha& o) {
  v.field(Field("flag", "a flag"), o.flag);
  v.field(Field("count", "a count").range(1, 100), o.count);
  v.field(Field("big", "a big count").min(0), o.big);
  v.field(Field("rate", "a rate | with a pipe").range(0, 1), o.rate);
  v.field(Field("mode", "a mode").choices({"fast", "slow", "exact"}), o.mode);
  v.field(Field("path", "a path"), o.path);
  v.field(Field("names", "some names"), o.names);
  v.field(Field("ids", "some ids").min(0), o.ids);
  v.field(Field("weights", "some weights").range(0, 1), o.weights);
  v.field(Field("gate", "a gate or its schedule").range(0, 1), o.gate);
  v.section("inner", "the nested section", o.inner);
}

struct Beta {
  void validate() const {}
};
template <class V>
void visit_fields(V&, Beta&) {}

struct Root {
  Alpha alpha;
  Beta beta;
};
template <class V>
void visit_fields(V& v, Root& r) {
  v.section("alpha", "the alpha section", r.alpha);
  v.section("beta", "the empty section", r.beta);
}

}  // namespace testschema

namespace {

namespace fs = std::filesystem;
using coordexp::ConfigError;
using coordexp::config::ConfigTree;
using testschema::Root;

class SchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("coordexp_schema_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& rel, const std::string& text) {
    const fs::path p = dir_ / rel;
    std::ofstream(p) << text;
    return p.string();
  }

  template <class Fn>
  static ConfigError error_of(Fn fn) {
    try {
      fn();
    } catch (const ConfigError& e) {
      return e;
    }
    ADD_FAILURE() << "expected a ConfigError";
    return ConfigError("none");
  }

  fs::path dir_;
};

Root read_with(const std::vector<std::string>& sets) {
  ConfigTree t;
  for (const auto& s : sets) t.apply_override(s);
  return coordexp::config::read_options<Root>(t);
}

TEST_F(SchemaTest, ReadsEveryTypeAndKeepsDefaultsForAbsentKeys) {
  const std::string file = write("c.yaml",
                                 "alpha:\n"
                                 "  flag: false\n"
                                 "  count: +7\n"
                                 "  big: 9000000000\n"
                                 "  rate: 1e-3\n"
                                 "  mode: exact\n"
                                 "  names: [x, 'y z', '']\n"
                                 "  ids: []\n"
                                 "  weights: [0, 1, 0.125]\n"
                                 "  inner: {on: yes}\n"
                                 "beta:\n");
  const Root r = coordexp::config::read_options<Root>(ConfigTree::load_file(file));
  EXPECT_FALSE(r.alpha.flag);
  EXPECT_EQ(r.alpha.count, 7);
  EXPECT_EQ(r.alpha.big, 9'000'000'000);
  EXPECT_EQ(r.alpha.rate, 1e-3);
  EXPECT_EQ(r.alpha.mode, "exact");
  EXPECT_EQ(r.alpha.path, "out");  // absent -> default
  EXPECT_EQ(r.alpha.names, (std::vector<std::string>{"x", "y z", ""}));
  EXPECT_TRUE(r.alpha.ids.empty());
  EXPECT_EQ(r.alpha.weights, (std::vector<double>{0, 1, 0.125}));
  EXPECT_EQ(r.alpha.inner.scale, 1.5);  // absent -> default
  EXPECT_TRUE(r.alpha.inner.on);

  // Integers are accepted for floats; strings take any scalar as written; null string -> "".
  const Root o = read_with({"alpha.rate=1", "alpha.path=123", "alpha.names=", "alpha.path=~"});
  EXPECT_EQ(o.alpha.rate, 1.0);
  EXPECT_EQ(o.alpha.path, "");
  EXPECT_TRUE(o.alpha.names.empty());
}

TEST_F(SchemaTest, WrongTypeOutOfRangeAndBadChoiceNameKeyValueAllowedAndOrigin) {
  struct Case {
    std::string set, message, hint;
  };
  const std::vector<Case> cases = {
      {"alpha.flag=maybe", "`alpha.flag` must be a boolean, got 'maybe'", "write true or false"},
      {"alpha.count=1.5", "`alpha.count` must be an integer, got '1.5'", "write a whole number such as 10"},
      {"alpha.count=1e3", "`alpha.count` must be an integer, got '1e3'", "write a whole number such as 10"},
      {"alpha.count='5'", "`alpha.count` must be an integer, got the quoted string '5'", "write a whole number such as 10"},
      {"alpha.count=3000000000", "`alpha.count` = 3000000000 does not fit the integer type; allowed range is [-2147483648, 2147483647]", "choose a smaller value"},
      {"alpha.count=0", "`alpha.count` = 0 is out of range; allowed range is [1, 100]", "choose a value in [1, 100]"},
      {"alpha.big=-1", "`alpha.big` = -1 is out of range; allowed range is >= 0", "choose a value >= 0"},
      {"alpha.rate=abc", "`alpha.rate` must be a number, got 'abc'", "write e.g. 0.001 or 1e-4"},
      {"alpha.rate=.nan", "`alpha.rate` = .nan is not a finite number", "write a finite value"},
      {"alpha.rate=1.5", "`alpha.rate` = 1.5 is out of range; allowed range is [0, 1]", "choose a value in [0, 1]"},
      {"alpha.mode=fsat", "`alpha.mode` = 'fsat' is not an allowed value; allowed values are fast, slow, exact", "did you mean `fast`?"},
      {"alpha.mode=turbo-ultra", "`alpha.mode` = 'turbo-ultra' is not an allowed value; allowed values are fast, slow, exact", "use one of: fast, slow, exact"},
      {"alpha.mode=[fast]", "`alpha.mode` must be a string, got a list", "write a single value"},
      {"alpha.names=a", "`alpha.names` must be a list, got 'a'", "write [a, b] (or [] for none)"},
      {"alpha.ids=[1, x]", "`alpha.ids` must be an integer, got 'x'", "write a whole number such as 10"},
      {"alpha.ids=[1, -2]", "`alpha.ids` = -2 is out of range; allowed range is >= 0", "choose a value >= 0"},
      {"alpha.weights=[0.5, 2]", "`alpha.weights` = 2 is out of range; allowed range is [0, 1]", "choose a value in [0, 1]"},
      {"alpha.inner=3", "`alpha.inner` must be a mapping of keys, got '3'", "write `inner:` followed by indented keys"},
      {"alpha.inner.on={a: 1}", "`alpha.inner.on` must be a boolean, got a mapping", "write true or false"},
  };
  for (const auto& c : cases) {
    const ConfigError e = error_of([&] { read_with({c.set}); });
    EXPECT_EQ(e.message(), c.message) << c.set;
    EXPECT_EQ(e.hint(), c.hint) << c.set;
    EXPECT_EQ(e.where(), "--set " + c.set) << c.set;
  }

  // From a file, the error names file and line of the offending key.
  const std::string file = write("bad.yaml", "alpha:\n  count: 2\n  mode: fsat\n");
  const ConfigError e = error_of([&] { coordexp::config::read_options<Root>(ConfigTree::load_file(file)); });
  EXPECT_EQ(e.where(), file + ":3");
  EXPECT_EQ(std::string(e.what()),
            file + ":3: `alpha.mode` = 'fsat' is not an allowed value; allowed values are fast, "
                   "slow, exact (hint: did you mean `fast`?)");
}

TEST_F(SchemaTest, UnknownKeysNameFileLineAndClosestKnownKey) {
  struct Case {
    std::string yaml, key, line, suggestion;
  };
  const std::vector<Case> cases = {
      {"alpha:\n  cuont: 3\n", "alpha.cuont", "2", "alpha.count"},             // typo
      {"alpha:\n  inner:\n    scal: 3\n", "alpha.inner.scal", "3", "alpha.inner.scale"},
      {"alpah:\n  count: 1\n", "alpah", "1", "alpha"},                          // section typo
      {"rate: 0.5\n", "rate", "1", "alpha.rate"},                              // right name, wrong place
      {"beta:\n  weights: [1]\n", "beta.weights", "2", "alpha.weights"},        // moved between sections
      {"alpha:\n  iner: {on: true}\n", "alpha.iner", "2", "alpha.inner"},       // a mapping: sections
  };
  for (const auto& c : cases) {
    const std::string file = write("u.yaml", c.yaml);
    const ConfigError e =
        error_of([&] { coordexp::config::read_options<Root>(ConfigTree::load_file(file)); });
    EXPECT_EQ(e.message(), "unknown key `" + c.key + "`") << c.yaml;
    EXPECT_EQ(e.where(), file + ":" + c.line) << c.yaml;
    EXPECT_EQ(e.hint(), "did you mean `" + c.suggestion + "`? every key is listed in docs/config.md")
        << c.yaml;
  }
  // Several unknown keys: the first is named, the rest counted.
  const std::string file = write("many.yaml", "alpha:\n  a1: 1\n  a2: 2\n  a3: 3\n");
  const ConfigError e =
      error_of([&] { coordexp::config::read_options<Root>(ConfigTree::load_file(file)); });
  EXPECT_EQ(e.message(), "unknown key `alpha.a1` (and 2 more unknown keys)");
  // From --set, the override is the origin.
  const ConfigError s = error_of([] { read_with({"alpha.cont=4"}); });
  EXPECT_EQ(std::string(s.what()),
            "--set alpha.cont=4: unknown key `alpha.cont` (hint: did you mean `alpha.count`? every "
            "key is listed in docs/config.md)");
}

TEST_F(SchemaTest, ValidateErrorsGetTheOriginOfTheirKey) {
  const std::string file = write("v.yaml", "alpha:\n  mode: slow\n  count: 9\n");
  ConfigError e = error_of([&] { coordexp::config::read_options<Root>(ConfigTree::load_file(file)); });
  EXPECT_EQ(e.message(), "alpha.count must be <= 5 when alpha.mode is slow");
  EXPECT_EQ(e.where(), file + ":3: key alpha.count");
  EXPECT_EQ(e.hint(), "lower alpha.count");

  // Programmatic values are checked against the same constraints; without an origin the key stays.
  Root r;
  r.alpha.count = 500;
  e = error_of([&] { coordexp::config::validate_options(r); });
  EXPECT_EQ(e.message(), "`alpha.count` = 500 is out of range; allowed range is [1, 100]");
  r.alpha.count = 9;
  r.alpha.mode = "slow";
  e = error_of([&] { coordexp::config::validate_options(r); });
  EXPECT_EQ(e.where(), "alpha.count");
}

TEST_F(SchemaTest, RampIsANumberOrAStartEndRampStepsMapping) {
  using coordexp::config::Ramp;
  EXPECT_EQ(read_with({}).alpha.gate.value(), 0.5);
  const Root constant = read_with({"alpha.gate=0.25"});
  EXPECT_TRUE(constant.alpha.gate.is_constant());
  EXPECT_EQ(constant.alpha.gate.at(0), 0.25);
  EXPECT_EQ(constant.alpha.gate.at(1000000), 0.25);

  const Root ramp = read_with({"alpha.gate={start: 0.6, end: 0.2, ramp_steps: 40}"});
  EXPECT_FALSE(ramp.alpha.gate.is_constant());
  EXPECT_DOUBLE_EQ(ramp.alpha.gate.at(0), 0.6);
  EXPECT_DOUBLE_EQ(ramp.alpha.gate.at(10), 0.5);   // 0.6 + (0.2 - 0.6) * 10 / 40
  EXPECT_DOUBLE_EQ(ramp.alpha.gate.at(40), 0.2);
  EXPECT_DOUBLE_EQ(ramp.alpha.gate.at(41), 0.2);
  EXPECT_EQ(read_with({"alpha.gate={start: 0.3}"}).alpha.gate.at(99), 0.3) << "end defaults to start";

  // extends:-style deep merge: a child overriding one key of the parent's schedule.
  const std::string parent = write("parent.yaml", "alpha:\n  gate: {start: 0.5, end: 0.3, ramp_steps: 100}\n");
  const std::string child = write("child.yaml", "extends: parent.yaml\nalpha:\n  gate:\n    end: 0.1\n");
  const Root merged = coordexp::config::read_options<Root>(ConfigTree::load_file(child));
  EXPECT_DOUBLE_EQ(merged.alpha.gate.start, 0.5);
  EXPECT_DOUBLE_EQ(merged.alpha.gate.end, 0.1);
  EXPECT_EQ(merged.alpha.gate.ramp_steps, 100);

  // Dump: a constant as a number, a schedule as a flow mapping; both reload to the same values.
  for (const Root& r : {constant, ramp}) {
    const std::string text = coordexp::config::dump_yaml(r);
    const Root back = coordexp::config::read_options<Root>(ConfigTree::load_file(write("ramp_dump.yaml", text)));
    EXPECT_EQ(back.alpha.gate.start, r.alpha.gate.start);
    EXPECT_EQ(back.alpha.gate.end, r.alpha.gate.end);
    EXPECT_EQ(back.alpha.gate.ramp_steps, r.alpha.gate.ramp_steps);
  }
  EXPECT_NE(coordexp::config::dump_yaml(constant).find("gate: 0.25"), std::string::npos);
  EXPECT_NE(coordexp::config::dump_yaml(ramp).find("gate: {start: 0.6, end: 0.2, ramp_steps: 40}"), std::string::npos)
      << coordexp::config::dump_yaml(ramp);

  struct Case {
    std::string set, message;
  };
  const std::vector<Case> bad = {
      {"alpha.gate=1.5", "`alpha.gate` = 1.5 is out of range; allowed range is [0, 1]"},
      {"alpha.gate={start: 0.5, end: 2, ramp_steps: 10}", "`alpha.gate.end` = 2 is out of range; allowed range is [0, 1]"},
      {"alpha.gate={start: 0.5, end: 0.3}", "`alpha.gate` moves from 0.5 to 0.3 but ramp_steps is 0"},
      {"alpha.gate={end: 0.3, ramp_steps: 5}", "`alpha.gate` schedule has no start"},
      {"alpha.gate={start: 0.5, stop: 0.3}", "unknown key `alpha.gate.stop`"},
      {"alpha.gate={start: 0.5, end: 0.4, ramp_steps: -3}",
       "`alpha.gate.ramp_steps` = -3 does not fit the integer type; allowed range is [0, 9223372036854775807]"},
  };
  for (const auto& c : bad) {
    const ConfigError e = error_of([&] { read_with({c.set}); });
    EXPECT_EQ(e.message(), c.message) << c.set;
    EXPECT_EQ(e.where(), "--set " + c.set) << c.set;
  }
}

TEST_F(SchemaTest, DumpThenReloadGivesIdenticalValues) {
  Root r;
  r.alpha.flag = false;
  r.alpha.count = 100;
  r.alpha.big = std::numeric_limits<int64_t>::max();
  r.alpha.rate = 1.0 / 3.0;
  r.alpha.mode = "exact";
  r.alpha.path = "a: b # not a comment";
  r.alpha.names = {"off", "", "null", "123", "yes", "- x", "ünï", "'q'", "\"dq\""};
  r.alpha.ids = {0, 7, std::numeric_limits<int64_t>::max()};
  r.alpha.weights = {0.1, 1e-300, 0, 1};
  r.alpha.inner.scale = 2.0;
  r.alpha.inner.on = true;

  const std::string text = coordexp::config::dump_yaml(r);
  const Root back = coordexp::config::read_options<Root>(ConfigTree::load_file(write("d.yaml", text)));
  EXPECT_EQ(back.alpha.flag, r.alpha.flag);
  EXPECT_EQ(back.alpha.count, r.alpha.count);
  EXPECT_EQ(back.alpha.big, r.alpha.big);
  EXPECT_EQ(back.alpha.rate, r.alpha.rate);  // bit-exact: shortest round-trip formatting
  EXPECT_EQ(back.alpha.mode, r.alpha.mode);
  EXPECT_EQ(back.alpha.path, r.alpha.path);
  EXPECT_EQ(back.alpha.names, r.alpha.names);
  EXPECT_EQ(back.alpha.ids, r.alpha.ids);
  EXPECT_EQ(back.alpha.weights, r.alpha.weights);
  EXPECT_EQ(back.alpha.inner.scale, r.alpha.inner.scale);
  EXPECT_EQ(back.alpha.inner.on, r.alpha.inner.on);
  EXPECT_EQ(coordexp::config::dump_yaml(back), text);
  EXPECT_NE(text.find("beta: {}"), std::string::npos) << text;

  // With sources, every value carries where it was set.
  ConfigTree t;
  t.apply_override("alpha.count=4");
  const std::string annotated = coordexp::config::dump_yaml(coordexp::config::read_options<Root>(t), &t);
  EXPECT_NE(annotated.find("count: 4  # --set alpha.count=4"), std::string::npos) << annotated;
  EXPECT_NE(annotated.find("big: 5000000000  # default"), std::string::npos) << annotated;
}

TEST_F(SchemaTest, MarkdownHasAHeadingPerSectionAndARowPerKey) {
  const std::string md = coordexp::config::markdown_reference<Root>();
  EXPECT_NE(md.find("\n## `alpha`\n\nthe alpha section\n"), std::string::npos) << md;
  EXPECT_NE(md.find("\n### `alpha.inner`\n\nthe nested section\n"), std::string::npos) << md;
  EXPECT_NE(md.find("\n## `beta`\n\nthe empty section\n\nNo keys yet.\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| `alpha.mode` | string | `fast` | `fast`, `slow`, `exact` | a mode |"),
            std::string::npos) << md;
  EXPECT_NE(md.find("| `alpha.count` | int | `3` | `[1, 100]` | a count |"), std::string::npos);
  EXPECT_NE(md.find("| `alpha.rate` | float | `0.25` | `[0, 1]` | a rate \\| with a pipe |"),
            std::string::npos);
  EXPECT_NE(md.find("| `alpha.names` | list of string | `[a]` | any | some names |"),
            std::string::npos);
  EXPECT_NE(md.find("| `alpha.ids` | list of int | `[1, 2]` | `>= 0` | some ids |"),
            std::string::npos);
  EXPECT_NE(md.find("| `alpha.inner.on` | bool | `false` | any | a switch |"), std::string::npos);
  for (const auto& k : coordexp::config::known_keys<Root>())
    EXPECT_NE(md.find("`" + k.key + "`"), std::string::npos) << k.key;
}

TEST(SchemaFormat, NumbersAreShortestAndRoundTrip) {
  using coordexp::config::format_double;
  using coordexp::config::format_number;
  EXPECT_EQ(format_number(0.1), "0.1");
  EXPECT_EQ(format_number(1e-5), "1e-05");
  EXPECT_EQ(format_number(2), "2");
  EXPECT_EQ(format_double(2), "2.0");
  EXPECT_EQ(format_double(1e-5), "1e-05");
  EXPECT_EQ(format_double(-std::numeric_limits<double>::infinity()), "-.inf");
  for (double x : {1.0 / 3.0, 0.1 + 0.2, 6.02214076e23, 5e-324, -1.7976931348623157e308})
    EXPECT_EQ(std::strtod(format_double(x).c_str(), nullptr), x) << format_double(x);
}

TEST(SchemaKeys, ClosestKeyPrefersTheSameKindAndMovedLeaves) {
  const auto keys = coordexp::config::known_keys<Root>();
  using coordexp::config::closest_key;
  EXPECT_EQ(closest_key("alpha.wieghts", keys, false), "alpha.weights");
  EXPECT_EQ(closest_key("beta.scale", keys, false), "alpha.inner.scale");
  EXPECT_EQ(closest_key("betta", keys, true), "beta");
}

}  // namespace
