// derive-tokenizer on the command line, then make-tiny on its output: the model's vocab_size is the
// derived tokenizer's size and the model directory's tokenizer has the coord tokens at the end.
// Bad flags exit 2.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "common/cli_capture.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp {
namespace {

namespace fs = std::filesystem;

std::string qwen_dir() {
  const char* env = std::getenv("COORDEXP_TOKENIZER_DIR");
  return env && *env ? env : COORDEXP_SOURCE_DIR "/.cache/tokenizer-qwen3";
}

TEST(DeriveTokenizerCli, DerivedTokenizerSizesATinyModel) {
  ASSERT_TRUE(fs::exists(qwen_dir() + "/tokenizer.json")) << "no Qwen3 tokenizer at " << qwen_dir()
                                                          << " (scripts/fetch-tokenizer.sh, or set COORDEXP_TOKENIZER_DIR)";
  const auto root = fs::temp_directory_path() / ("coordexp_derive_cli_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const auto tok_dir = root / "tok", model_dir = root / "model";
  const auto r = testing::run_cli_captured({"derive-tokenizer", "--src", qwen_dir(), "--merges", "1000", "--out", tok_dir.string()});
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("kept 1256 of 151643 vocab tokens and 1000 of 151387 merges"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("vocab size 2283"), std::string::npos) << r.out;  // 1256 + 26 added + 1001 coord

  const auto m = testing::run_cli_captured({"make-tiny", "--spec", "data/make_tiny/tiny.yaml", "--tokenizer", tok_dir.string(),
                                            "--out", model_dir.string()});
  ASSERT_EQ(m.rc, 0) << m.out << m.err;
  std::ifstream in(model_dir / "config.json");
  const auto config = nlohmann::json::parse(in);
  EXPECT_EQ(config["text_config"]["vocab_size"].get<int>(), 2283);
  const auto tok = tokenizer::Tokenizer::from_dir(model_dir.string());
  EXPECT_EQ(tok->vocab_size(), 2283u);
  EXPECT_EQ(tok->coord_vocab().first_id + tokenizer::CoordVocab::kNumBins, 2283);
  EXPECT_EQ(tok->encode("red circle <|coord_12|>").back(), tok->coord_vocab().coord_id(12));
  fs::remove_all(root);
}

TEST(DeriveTokenizerCli, BadFlagsExitTwo) {
  const auto out = fs::temp_directory_path() / ("coordexp_derive_cli_bad_" + std::to_string(::getpid()));
  EXPECT_EQ(testing::run_cli_captured({"derive-tokenizer", "--src", qwen_dir(), "--out", out.string()}).rc, 2);  // no --merges
  EXPECT_EQ(testing::run_cli_captured({"derive-tokenizer", "--src", qwen_dir(), "--merges", "999999999", "--out", out.string()}).rc, 2);
}

}  // namespace
}  // namespace coordexp
