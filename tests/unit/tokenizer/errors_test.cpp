// Errors: invalid UTF-8 names the byte offset of the first bad sequence; a tokenizer.json with a
// component this implementation does not reproduce is rejected with the component's name; decode
// replaces invalid byte sequences with U+FFFD (one per maximal subpart, like HF) and rejects
// unknown ids.
#include <functional>

#include "coordexp/util/error.h"
#include "tokenizer/regex_split.h"
#include "tokenizer_test_util.h"

namespace coordexp::tokenizer::testing {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TokenizerErrors, InvalidUtf8NamesTheByteOffset) {
  const auto tok = load_json(tiny_tokenizer_json(), "utf8");
  const std::vector<std::pair<std::string, size_t>> cases = {
      {"abc\x80", 3},                 // lone continuation byte
      {"ab\xC3", 2},                  // truncated at the end
      {"\xC0\x80", 0},                // overlong NUL
      {"ok \xED\xA0\x80", 3},         // UTF-16 surrogate
      {"\xF5\x80\x80\x80", 0},        // above U+10FFFF
      {"\xE2\x82\xAC\xE2\x82x", 3},   // euro sign, then a broken sequence
      {"\xF0\x9F\x98", 0},            // truncated 4-byte sequence
  };
  for (const auto& [text, offset] : cases) {
    const std::string msg = error_of([&, t = text] { tok->encode(t); });
    EXPECT_NE(msg.find("invalid UTF-8 at byte offset " + std::to_string(offset)), std::string::npos)
        << msg;
    EXPECT_THROW(tok->encode_with_offsets(text), DataError);
  }
  EXPECT_NO_THROW(tok->encode("\xF4\x8F\xBF\xBF \xE2\x82\xAC \xC2\x80"));  // U+10FFFF, euro, U+0080
}

TEST(TokenizerErrors, UnsupportedComponentsAreNamed) {
  struct Case {
    std::string name;
    std::function<void(nlohmann::json&)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"normalizer", [](auto& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "unsupported normalizer \"NFKC\""},
      {"pretok", [](auto& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "unsupported pre_tokenizer \"Whitespace\""},
      {"behavior", [](auto& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; },
       "unsupported Split behavior \"Removed\""},
      {"prefix", [](auto& j) { j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true; },
       "unsupported ByteLevel add_prefix_space=true"},
      {"decoder", [](auto& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "unsupported decoder \"WordPiece\""},
      {"model", [](auto& j) { j["model"]["type"] = "Unigram"; }, "unsupported model type \"Unigram\""},
      {"fallback", [](auto& j) { j["model"]["byte_fallback"] = true; }, "unsupported BPE byte_fallback=true"},
      {"truncation", [](auto& j) { j["truncation"] = {{"max_length", 8}}; }, "unsupported truncation settings"},
      {"single_word", [](auto& j) {
         auto t = added_token(300, "<x>");
         t["single_word"] = true;
         j["added_tokens"] = {t};
       }, "unsupported added token option single_word=true (<x>)"},
      {"regex", [](auto& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; },
       "cannot compile the pre-tokenizer regex (unclosed"},
      {"merge", [](auto& j) { j["model"]["merges"].push_back({"x", "y"}); }, "merge #3 (x y) uses or makes a token that is not in the vocabulary"},
  };
  for (const auto& c : cases) {
    auto j = tiny_tokenizer_json();
    c.edit(j);
    const std::string msg = error_of([&] { load_json(j, "bad_" + c.name); });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << c.name << ": the error must name the file: " << msg;
  }
  EXPECT_NE(error_of([] { Tokenizer::from_dir("/nonexistent/dir"); }).find("no tokenizer.json"), std::string::npos);
}

TEST(TokenizerErrors, DecodeIsLossyLikeHfAndRejectsUnknownIds) {
  const auto tok = load_json(tiny_tokenizer_json(), "decode");
  // Ids 0..255 are raw bytes here, so any byte sequence can be decoded.
  const auto bytes = [](std::initializer_list<int> b) { return std::vector<TokenId>(b.begin(), b.end()); };
  EXPECT_EQ(tok->decode(bytes({0xE4, 0xBD})), "\xEF\xBF\xBD");                  // truncated: one U+FFFD
  EXPECT_EQ(tok->decode(bytes({0xE4, 0xBD, 0xA0})), "\xE4\xBD\xA0");            // 你
  EXPECT_EQ(tok->decode(bytes({0xC0, 0x80})), "\xEF\xBF\xBD\xEF\xBF\xBD");      // never-valid lead: two
  EXPECT_EQ(tok->decode(bytes({'a', 0xFF, 'b'})), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(tok->decode(bytes({0xF0, 0x9F, 'x'})), "\xEF\xBF\xBDx");            // maximal subpart F0 9F
  EXPECT_EQ(tok->decode(bytes({0xED, 0xA0, 0x80})), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_THROW(tok->decode({259}), DataError);
  EXPECT_THROW(tok->decode({-1}), DataError);
}

TEST(TokenizerErrors, RegexClassesFollowUnicodeWhiteSpaceAndUtf8procLetters) {
  // \s becomes White_Space (U+0085 in, U+180E out) in and out of brackets; escaped backslashes
  // and other escapes are untouched.
  const std::string p = detail::expand_unicode_classes(R"([^\s\p{L}]\s+(?!\S)\p{N}\x{41}\\s)");
  EXPECT_EQ(p.find("\\s"), p.find("\\\\s") + 1) << "only the escaped \\s may remain: " << p.substr(0, 200);
  EXPECT_NE(p.find("\\x{85}"), std::string::npos);
  EXPECT_EQ(p.find("\\x{180E}"), std::string::npos);
  EXPECT_NE(p.find("\\x{41}\\\\s"), std::string::npos);
  std::vector<detail::ByteSpan> pieces;
  const detail::RegexSplitter ws(R"(\s+|\S+)", "test");
  ws.split("a\xC2\x85" "b\xE1\xA0\x8E" "c", 0, pieces);  // a NEL b U+180E c
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[1], detail::ByteSpan(1, 3));
  // U+31350 (CJK Extension H, Unicode 15) is a letter even where PCRE2's tables predate it.
  pieces.clear();
  const detail::RegexSplitter letters(R"(\p{L}+|[^\p{L}]+)", "test");
  letters.split("a\xF0\xB1\x8D\x90" "b!", 0, pieces);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0], detail::ByteSpan(0, 6));
}

}  // namespace
}  // namespace coordexp::tokenizer::testing
