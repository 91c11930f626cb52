// ConfigTree: extends: order and deep merge, list replacement, --set overrides with YAML types, and
// the origin ("file:line" / "--set ...") of every key; each loader error with its message parts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "coordexp/config/tree.h"
#include "coordexp/util/error.h"

namespace {

namespace fs = std::filesystem;
using coordexp::ConfigError;
using coordexp::config::ConfigTree;

// A fresh directory per test holding small YAML files.
class TreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("coordexp_tree_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
            "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& rel, const std::string& text) {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  std::string path(const std::string& rel) const { return (dir_ / rel).lexically_normal().string(); }

  // The ConfigError thrown by `fn` (fails the test when none is thrown).
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

std::string scalar(const ConfigTree& t, const std::string& key) {
  const auto node = t.find(key);
  return node && node->IsScalar() ? node->Scalar() : "<absent>";
}

TEST_F(TreeTest, ExtendsAppliesInOrderDeepMergesMapsAndReplacesLists) {
  write("base.yaml",
        "train:\n"
        "  seed: 1\n"
        "  epochs: 3\n"
        "optim:\n"
        "  betas: [0.1, 0.2]\n"
        "  vision: {lr_mult: 0.5, freeze: true}\n");
  write("mid/a.yaml",
        "extends: ../base.yaml\n"
        "train:\n"
        "  seed: 2\n"
        "optim:\n"
        "  betas: [0.3]\n");
  write("mid/b.yaml",
        "train:\n"
        "  seed: 3\n"
        "  micro_batch_size: 4\n"
        "optim:\n"
        "  vision: {freeze: false}\n");
  const std::string top = write("mid/top.yaml",
                                "extends: [a.yaml, b.yaml]\n"
                                "train:\n"
                                "  micro_batch_size: 5\n");
  const ConfigTree t = ConfigTree::load_file(top);

  // Later extends win over earlier ones, the including file wins over all.
  EXPECT_EQ(scalar(t, "train.seed"), "3");
  EXPECT_EQ(t.origin("train.seed"), path("mid/b.yaml") + ":2");
  EXPECT_EQ(scalar(t, "train.micro_batch_size"), "5");
  EXPECT_EQ(t.origin("train.micro_batch_size"), top + ":3");
  // Deep merge keeps keys only the base set, at their base origin.
  EXPECT_EQ(scalar(t, "train.epochs"), "3");
  EXPECT_EQ(t.origin("train.epochs"), path("base.yaml") + ":3");
  EXPECT_EQ(scalar(t, "optim.vision.lr_mult"), "0.5");
  EXPECT_EQ(scalar(t, "optim.vision.freeze"), "false");
  // Lists replace as a whole: [0.3] from a.yaml, not a merge with [0.1, 0.2].
  const auto betas = t.find("optim.betas");
  ASSERT_TRUE(betas && betas->IsSequence());
  ASSERT_EQ(betas->size(), 1u);
  EXPECT_EQ((*betas)[0].Scalar(), "0.3");
  EXPECT_EQ(t.origin("optim.betas"), path("mid/a.yaml") + ":5");
  // `extends` itself is not part of the resolved tree.
  EXPECT_FALSE(t.find("extends").has_value());
}

TEST_F(TreeTest, ScalarReplacingMapDropsOldOriginsAndNullKeepsMap) {
  write("base.yaml", "optim:\n  vision:\n    lr_mult: 0.5\n");
  const std::string top = write("top.yaml", "extends: base.yaml\noptim:\n  vision: 7\ntrain:\n");
  const ConfigTree t = ConfigTree::load_file(top);
  EXPECT_EQ(scalar(t, "optim.vision"), "7");
  EXPECT_EQ(t.origin("optim.vision.lr_mult"), "");
  EXPECT_FALSE(t.find("optim.vision.lr_mult").has_value());

  write("base2.yaml", "train:\n  seed: 9\n");
  const ConfigTree t2 = ConfigTree::load_file(write("top2.yaml", "extends: base2.yaml\ntrain:\n"));
  EXPECT_EQ(scalar(t2, "train.seed"), "9");  // an empty `train:` does not wipe the base section
}

TEST_F(TreeTest, OverridesParseYamlTypesAndRecordTheirOrigin) {
  ConfigTree t = ConfigTree::load_file(write("c.yaml", "optim:\n  lr: 0.1\n  betas: [0.9, 0.99]\n"));
  t.apply_override("optim.lr=1e-4");
  t.apply_override("data.jsonl=[a.jsonl, b.jsonl]");
  t.apply_override("optim.vision={lr_mult: 2, freeze: true}");
  t.apply_override("train.output_dir=");
  t.apply_override("train.note=a=b");  // only the first '=' separates key and value

  EXPECT_EQ(scalar(t, "optim.lr"), "1e-4");
  EXPECT_EQ(t.origin("optim.lr"), "--set optim.lr=1e-4");
  EXPECT_EQ(t.origin("optim.betas"), path("c.yaml") + ":3");
  const auto jsonl = t.find("data.jsonl");
  ASSERT_TRUE(jsonl && jsonl->IsSequence());
  ASSERT_EQ(jsonl->size(), 2u);
  EXPECT_EQ((*jsonl)[1].Scalar(), "b.jsonl");
  EXPECT_EQ(t.origin("data"), "--set data.jsonl=[a.jsonl, b.jsonl]");  // created section
  EXPECT_EQ(scalar(t, "optim.vision.freeze"), "true");
  EXPECT_EQ(t.origin("optim.vision.lr_mult"), "--set optim.vision={lr_mult: 2, freeze: true}");
  EXPECT_EQ(scalar(t, "train.output_dir"), "");
  EXPECT_EQ(scalar(t, "train.note"), "a=b");

  // Later overrides win over earlier ones.
  t.apply_override("optim.lr=3");
  EXPECT_EQ(scalar(t, "optim.lr"), "3");
  EXPECT_EQ(t.origin("optim.lr"), "--set optim.lr=3");
}

TEST_F(TreeTest, LoaderAndOverrideErrorsNameWhatWhereAndHow) {
  // Missing extends file: names the path it tried and the line that asked for it.
  const std::string a = write("a.yaml", "train: {seed: 1}\nextends: sub/missing.yaml\n");
  ConfigError e = error_of([&] { ConfigTree::load_file(a); });
  EXPECT_EQ(e.message(), "extends file not found: " + path("sub/missing.yaml"));
  EXPECT_EQ(e.where(), a + ":2");

  // Missing top-level file.
  e = error_of([&] { ConfigTree::load_file(path("nope.yaml")); });
  EXPECT_EQ(e.message(), "config file not found: " + path("nope.yaml"));

  // Cycle: the full chain, starting and ending at the repeated file.
  const std::string x = write("x.yaml", "extends: y.yaml\n");
  write("y.yaml", "extends: [z.yaml]\n");
  write("z.yaml", "extends: x.yaml\n");
  e = error_of([&] { ConfigTree::load_file(x); });
  EXPECT_EQ(e.message(), "extends cycle: " + x + " -> " + path("y.yaml") + " -> " + path("z.yaml") +
                             " -> " + x);
  const std::string self = write("self.yaml", "extends: ./self.yaml\n");
  e = error_of([&] { ConfigTree::load_file(self); });
  EXPECT_NE(e.message().find("extends cycle: " + self + " -> " + self), std::string::npos) << e.what();

  // Invalid YAML: file, line and column.
  const std::string bad = write("bad.yaml", "train:\n  seed: [1, 2\n");
  e = error_of([&] { ConfigTree::load_file(bad); });
  EXPECT_EQ(e.message().rfind("invalid YAML", 0), 0u) << e.what();
  EXPECT_EQ(e.where().rfind(bad + ":", 0), 0u) << e.where();

  // Duplicate keys and dotted keys inside files.
  const std::string dup = write("dup.yaml", "train:\n  seed: 1\n  seed: 2\n");
  e = error_of([&] { ConfigTree::load_file(dup); });
  EXPECT_EQ(e.message(), "duplicate key `train.seed`");
  EXPECT_EQ(e.where(), dup + ":3");
  const std::string dotted = write("dotted.yaml", "train.seed: 1\n");
  e = error_of([&] { ConfigTree::load_file(dotted); });
  EXPECT_EQ(e.message(), "key `train.seed` contains '.'");
  EXPECT_EQ(e.where(), dotted + ":1");

  // Top level must be a mapping; extends must be paths.
  e = error_of([&] { ConfigTree::load_file(write("list.yaml", "- 1\n- 2\n")); });
  EXPECT_NE(e.message().find("must be a mapping"), std::string::npos);
  e = error_of([&] { ConfigTree::load_file(write("ext.yaml", "extends: {a: 1}\n")); });
  EXPECT_NE(e.message().find("extends: must be a path or a list of paths"), std::string::npos);

  // Overrides.
  ConfigTree t;
  e = error_of([&] { t.apply_override("optim.lr"); });
  EXPECT_EQ(e.message(), "malformed override 'optim.lr'");
  EXPECT_NE(e.hint().find("--set section.key=value"), std::string::npos);
  e = error_of([&] { t.apply_override("optim..lr=1"); });
  EXPECT_EQ(e.message(), "malformed key `optim..lr`");
  e = error_of([&] { t.apply_override("optim.lr=[1, 2"); });
  EXPECT_EQ(e.message().rfind("cannot parse the value of `optim.lr` as YAML", 0), 0u) << e.what();
  t.apply_override("train=5");
  e = error_of([&] { t.apply_override("train.seed=1"); });
  EXPECT_EQ(e.message(), "cannot set `train.seed`: `train` is not a mapping");
  EXPECT_EQ(e.where(), "--set train.seed=1");
  EXPECT_EQ(e.hint(), "`train` was set at --set train=5");
}

TEST_F(TreeTest, DiamondExtendsIsNotACycle) {
  write("base.yaml", "train: {seed: 1}\n");
  write("a.yaml", "extends: base.yaml\ntrain: {epochs: 2}\n");
  write("b.yaml", "extends: base.yaml\ntrain: {micro_batch_size: 3}\n");
  const ConfigTree t = ConfigTree::load_file(write("top.yaml", "extends: [a.yaml, b.yaml]\n"));
  EXPECT_EQ(scalar(t, "train.seed"), "1");
  EXPECT_EQ(scalar(t, "train.epochs"), "2");
  EXPECT_EQ(scalar(t, "train.micro_batch_size"), "3");
}

}  // namespace
