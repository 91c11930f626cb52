// Coord vocabulary: the Qwen3 layout (<|coord_*|> = 151669, <|coord_k|> = 151670 + k), O(1)
// lookups, adding to a tokenizer without them, verification of files that already have them
// (contiguous or not), and expand-vocab's files (reloadable, everything but added_tokens kept).
#include <fstream>
#include <sstream>

#include "coordexp/tokenizer/expand_vocab.h"
#include "coordexp/util/error.h"
#include "tokenizer_test_util.h"

namespace coordexp::tokenizer::testing {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(TokenizerCoordVocab, QwenLayout) {
  REQUIRE_QWEN(tok);
  const CoordVocab& cv = tok->coord_vocab();
  ASSERT_TRUE(cv.valid());
  EXPECT_EQ(cv.wildcard_id, 151669);
  EXPECT_EQ(cv.first_id, 151670);
  EXPECT_EQ(tok->vocab_size(), 152670u);
  for (int k : {0, 1, 499, 998, 999}) {
    const TokenId id = cv.coord_id(k);
    EXPECT_EQ(id, 151670 + k);
    EXPECT_TRUE(cv.is_coord(id));
    EXPECT_EQ(cv.coord_value(id), k);
    EXPECT_EQ(tok->token_to_id("<|coord_" + std::to_string(k) + "|>"), id);
    EXPECT_EQ(tok->encode("<|coord_" + std::to_string(k) + "|>"), std::vector<TokenId>{id});
    EXPECT_EQ(tok->decode({id}, /*skip_special_tokens=*/true), "<|coord_" + std::to_string(k) + "|>");
  }
  EXPECT_FALSE(cv.is_coord(151669));
  EXPECT_FALSE(cv.is_coord(152670));
  EXPECT_FALSE(tok->is_special(cv.wildcard_id));
  EXPECT_EQ(tok->token_to_id("<|coord_*|>"), 151669);
}

TEST(TokenizerCoordVocab, ExpandVocabWritesAReloadableCopy) {
  if (!have_qwen()) FAIL() << missing_qwen_message();
  auto base = Tokenizer::from_dir(qwen_dir());
  EXPECT_FALSE(base->coord_vocab().valid());
  EXPECT_EQ(base->vocab_size(), 151669u);

  const auto dst = temp_dir("expand");
  const ExpandVocabResult r = expand_vocab_files(qwen_dir(), dst.string());
  EXPECT_TRUE(r.added);
  EXPECT_EQ(r.vocab_size_before, 151669u);
  EXPECT_EQ(r.vocab_size_after, 152670u);
  EXPECT_EQ(r.coord.wildcard_id, 151669);
  EXPECT_EQ(r.coord.first_id, 151670);

  auto expanded = Tokenizer::from_dir(dst.string());
  EXPECT_EQ(expanded->coord_vocab().first_id, 151670);
  EXPECT_EQ(expanded->encode("a <|coord_5|>"), (std::vector<TokenId>{64, 220, 151675}));
  // Only the added_tokens array changed: the text before it and everything after it is identical.
  const std::string before = slurp(std::filesystem::path(qwen_dir()) / "tokenizer.json");
  const std::string after = slurp(dst / "tokenizer.json");
  const size_t head = before.find("\"added_tokens\"");
  ASSERT_NE(head, std::string::npos);
  EXPECT_EQ(after.substr(0, head), before.substr(0, head));
  const size_t tail = before.find("\"normalizer\"");
  ASSERT_NE(tail, std::string::npos);
  EXPECT_EQ(after.substr(after.size() - (before.size() - tail)), before.substr(tail));
  EXPECT_NE(slurp(dst / "tokenizer_config.json").find("\"151670\""), std::string::npos);

  // The expanded copy already has them: ensure verifies and adds nothing.
  expanded->ensure_coord_tokens();
  EXPECT_EQ(expanded->vocab_size(), 152670u);
}

TEST(TokenizerCoordVocab, AddsAfterTheLastIdOfASmallTokenizer) {
  auto j = tiny_tokenizer_json();
  j["added_tokens"] = {added_token(300, "<|im_end|>")};
  const auto tok = load_json(j, "coord_add");
  EXPECT_FALSE(tok->coord_vocab().valid());
  tok->ensure_coord_tokens();
  EXPECT_EQ(tok->coord_vocab().wildcard_id, 301);
  EXPECT_EQ(tok->coord_vocab().first_id, 302);
  EXPECT_EQ(tok->vocab_size(), 1302u);
  EXPECT_EQ(tok->encode("ab<|coord_999|>"), (std::vector<TokenId>{256, 1301}));
}

TEST(TokenizerCoordVocab, RejectsNonContiguousOrPartialCoordTokens) {
  auto j = tiny_tokenizer_json();
  auto tokens = nlohmann::json::array({added_token(300, "<|coord_*|>", false)});
  for (int k = 0; k < 1000; ++k) tokens.push_back(added_token(301 + k + (k >= 500 ? 1 : 0), "<|coord_" + std::to_string(k) + "|>", false));
  j["added_tokens"] = tokens;
  try {
    load_json(j, "coord_gap");
    FAIL() << "a gap in the coord ids must be rejected";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("not contiguous: <|coord_500|> has id 802, expected 801"), std::string::npos)
        << e.what();
  }
  tokens.erase(tokens.begin() + 10, tokens.end());
  j["added_tokens"] = tokens;
  try {
    load_json(j, "coord_partial");
    FAIL() << "a partial coord vocabulary must be rejected";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("has 10 of the 1001 coord tokens"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace coordexp::tokenizer::testing
