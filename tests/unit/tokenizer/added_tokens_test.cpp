// Added tokens are split out before normalization and BPE with HF's semantics: leftmost match,
// longest match at that position, non-overlapping; lstrip/rstrip absorb adjacent whitespace;
// decode keeps or skips special tokens.
#include "coordexp/util/error.h"
#include "tokenizer_test_util.h"

namespace coordexp::tokenizer::testing {
namespace {

TEST(TokenizerAddedTokens, LongestMatchOnTheRealTokenizer) {
  REQUIRE_QWEN(tok);
  const CoordVocab& cv = tok->coord_vocab();
  // <|coord_1|> is a prefix-free sibling of <|coord_12|> and <|coord_123|>: the longest wins.
  EXPECT_EQ(tok->encode("<|coord_123|>"), std::vector<TokenId>{cv.coord_id(123)});
  EXPECT_EQ(tok->encode("<|coord_12|><|coord_1|>"), (std::vector<TokenId>{cv.coord_id(12), cv.coord_id(1)}));
  // Not a token: "<|coord_1000|>" is BPE text (no coord id inside).
  for (const TokenId id : tok->encode("<|coord_1000|>")) EXPECT_FALSE(cv.is_coord(id)) << id;
  // A broken token is text; the intact one after it still matches.
  const auto ids = tok->encode("<|im_start<|im_start|>");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), 151644);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151644), 1);
  // Special tokens glued to text on both sides.
  const auto glued = tok->encode("x<|im_end|>y");
  ASSERT_EQ(glued.size(), 3u);
  EXPECT_EQ(glued[1], 151645);
}

TEST(TokenizerAddedTokens, LeftmostLongestOnOverlappingTokens) {
  auto j = tiny_tokenizer_json();
  j["added_tokens"] = {added_token(300, "<a>"), added_token(301, "<a><b>"), added_token(302, "b><"),
                       added_token(303, "<a><b>c", false)};
  const auto tok = load_json(j, "overlap");
  // Longest at the leftmost position: "<a><b>c" beats "<a><b>" and "<a>".
  EXPECT_EQ(tok->encode("<a><b>c"), std::vector<TokenId>{303});
  EXPECT_EQ(tok->encode("<a><b>x"), (std::vector<TokenId>{301, 'x'}));
  // Leftmost first: "<a>" starts before "b><", so "b><" cannot match inside it.
  EXPECT_EQ(tok->encode("<a>b><"), (std::vector<TokenId>{300, 302}));
  EXPECT_EQ(tok->encode("ab<a>abc"), (std::vector<TokenId>{256, 300, 257}));
  // Special vs non-special on decode.
  EXPECT_EQ(tok->decode({300, 'x', 303}, true), "x<a><b>c");
  EXPECT_EQ(tok->decode({300, 'x', 303}, false), "<a>x<a><b>c");
}

TEST(TokenizerAddedTokens, LstripAndRstripAbsorbWhitespace) {
  auto j = tiny_tokenizer_json();
  auto mask = added_token(300, "<mask>");
  mask["lstrip"] = true;
  auto sep = added_token(301, "<sep>");
  sep["rstrip"] = true;
  j["added_tokens"] = {mask, sep};
  const auto tok = load_json(j, "strip");
  const std::string text = "a  <mask> b<sep> \t c";
  const auto t = tok->encode_with_offsets(text);
  ASSERT_EQ(t.size(), 6u);  // a, <mask>, Ġ, b, <sep>, c (no merge makes "Ġb")
  EXPECT_EQ(t[0].id, 'a');
  EXPECT_EQ(t[1].id, 300);
  EXPECT_EQ(std::make_pair(t[1].begin, t[1].end), std::make_pair(1u, 9u));  // "  <mask>"
  EXPECT_EQ(t[4].id, 301);
  EXPECT_EQ(std::make_pair(t[4].begin, t[4].end), std::make_pair(11u, 19u));  // "<sep> \t "
  EXPECT_EQ(t[5].id, 'c');
}

TEST(TokenizerAddedTokens, NormalizedTokensMatchAfterNfc) {
  auto j = tiny_tokenizer_json();
  auto cafe = added_token(300, "caf\xC3\xA9", false);  // "café", composed
  cafe["normalized"] = true;
  j["added_tokens"] = {cafe};
  const auto tok = load_json(j, "normalized");
  // Decomposed input matches after NFC; the span is the original (decomposed) bytes.
  const std::string text = "xcafe\xCC\x81y";
  const auto t = tok->encode_with_offsets(text);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[1].id, 300);
  EXPECT_EQ(std::make_pair(t[1].begin, t[1].end), std::make_pair(1u, 7u));
}

TEST(TokenizerAddedTokens, TokenizerConfigAddsTokensAndMustAgree) {
  auto j = tiny_tokenizer_json();
  j["added_tokens"] = {added_token(300, "<|im_end|>")};
  const auto dir = temp_dir("config");
  write_file(dir / "tokenizer.json", j.dump());
  nlohmann::json config = {{"added_tokens_decoder",
                            {{"300", {{"content", "<|im_end|>"}, {"special", true}}},
                             {"301", {{"content", "<extra>"}, {"special", false}, {"normalized", false}}}}}};
  write_file(dir / "tokenizer_config.json", config.dump());
  const auto tok = Tokenizer::from_dir(dir.string());
  EXPECT_EQ(tok->encode("a<extra><|im_end|>"), (std::vector<TokenId>{'a', 301, 300}));
  EXPECT_EQ(tok->vocab_size(), 302u);

  config["added_tokens_decoder"]["300"]["content"] = "<|im_start|>";  // id 300 is <|im_end|> in tokenizer.json
  write_file(dir / "tokenizer_config.json", config.dump());
  try {
    Tokenizer::from_dir(dir.string());
    FAIL() << "disagreeing files must be rejected";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json: added_tokens_decoder.300"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace coordexp::tokenizer::testing
