// Offsets: every token's byte span lies in the input on character boundaries, spans advance
// monotonically and together cover the input without gaps, BPE tokens of NFC-stable text span
// exactly their own bytes (or the whole character they were cut from), added tokens map to their
// exact span, and text that NFC changes maps back to the original (not the normalized) bytes.
#include <utf8proc.h>

#include <cstdlib>

#include "tokenizer/nfc.h"
#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace coordexp::tokenizer::testing {
namespace {

bool is_boundary(const std::string& s, uint32_t i) {
  return i == s.size() || (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
}

bool nfc_stable(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                              &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const bool same = n >= 0 && s == std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return same;
}

void check_spans(const Tokenizer& tok, const std::string& text) {
  SCOPED_TRACE(nlohmann::json(text).dump());
  const auto tokens = tok.encode_with_offsets(text);
  ASSERT_EQ(tokens.size(), tok.encode(text).size());
  if (text.empty()) {
    EXPECT_TRUE(tokens.empty());
    return;
  }
  ASSERT_FALSE(tokens.empty());
  EXPECT_EQ(tokens.front().begin, 0u);
  EXPECT_EQ(tokens.back().end, text.size());
  const bool stable = nfc_stable(text);
  std::string joined;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const Token& t = tokens[i];
    ASSERT_LT(t.begin, t.end) << "token " << i;
    ASSERT_LE(t.end, text.size()) << "token " << i;
    EXPECT_TRUE(is_boundary(text, t.begin) && is_boundary(text, t.end)) << "token " << i;
    if (i > 0) {
      EXPECT_GE(t.begin, tokens[i - 1].begin) << "token " << i;
      EXPECT_GE(t.end, tokens[i - 1].end) << "token " << i;
      EXPECT_LE(t.begin, tokens[i - 1].end) << "gap before token " << i;
    }
    const std::string span = text.substr(t.begin, t.end - t.begin);
    const std::string bytes = tok.token_bytes(t.id);
    if (tok.is_special(t.id) || tok.coord_vocab().is_coord(t.id) || t.id == tok.coord_vocab().wildcard_id) {
      EXPECT_EQ(span, bytes) << "added token " << i << " must map to its exact span";
    } else if (stable && span != bytes) {
      // Otherwise the token starts or ends inside a character and its span is widened to that
      // character's bounds (by less than one character on each side).
      const size_t pos = span.find(bytes);
      ASSERT_NE(pos, std::string::npos) << "token " << i;
      EXPECT_LT(pos, 4u) << "token " << i;
      EXPECT_LT(span.size() - pos - bytes.size(), 4u) << "token " << i;
    }
    joined += bytes;
  }
  if (stable) {
    EXPECT_EQ(joined, text);
  }
}

TEST(TokenizerOffsets, EveryGoldenInput) {
  REQUIRE_QWEN(tok);
  for (const auto& c : golden_cases()) check_spans(*tok, c.text);
}

TEST(TokenizerOffsets, ExactSpansAndCharacterSplits) {
  REQUIRE_QWEN(tok);
  {
    const std::string text = "Hello world<|im_end|> 123";
    const auto t = tok->encode_with_offsets(text);
    ASSERT_EQ(t.size(), 7u);  // Hello, " world", <|im_end|>, " ", 1, 2, 3 (Qwen splits every digit)
    const std::vector<std::pair<uint32_t, uint32_t>> want = {{0, 5},   {5, 11},  {11, 21}, {21, 22},
                                                             {22, 23}, {23, 24}, {24, 25}};
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(std::make_pair(t[i].begin, t[i].end), want[i]) << i;
    EXPECT_EQ(t[2].id, 151645);
  }
  {
    // A rare character is split into several byte tokens; each reports the whole character.
    const std::string text = "x\xF0\x9F\xAB\x96y";  // x U+1FAD6 (teapot) y
    const auto t = tok->encode_with_offsets(text);
    ASSERT_GT(t.size(), 3u);
    std::string bytes;
    for (size_t i = 1; i + 1 < t.size(); ++i) {
      EXPECT_EQ(t[i].begin, 1u);
      EXPECT_EQ(t[i].end, 5u);
      bytes += tok->token_bytes(t[i].id);
    }
    EXPECT_EQ(bytes, text.substr(1, 4));
  }
  {
    // Coord tokens inside CoordJSON map to exactly "<|coord_k|>".
    const std::string text = "[<|coord_110|>, <|coord_7|>]";
    for (const Token& t : tok->encode_with_offsets(text))
      if (tok->coord_vocab().is_coord(t.id)) {
        EXPECT_EQ(text.substr(t.begin, t.end - t.begin),
                  "<|coord_" + std::to_string(tok->coord_vocab().coord_value(t.id)) + "|>");
      }
  }
}

TEST(TokenizerOffsets, NfcChangesMapToOriginalBytes) {
  REQUIRE_QWEN(tok);
  // "cafe" + U+0301: NFC makes "café"; the token holding é must cover bytes [3, 6) of the input.
  const std::string text = "cafe\xCC\x81 ok";
  const auto t = tok->encode_with_offsets(text);
  EXPECT_EQ(t.front().begin, 0u);
  EXPECT_EQ(t.back().end, text.size());
  bool covered = false;
  for (const Token& x : t) covered |= x.begin <= 3 && x.end >= 6;
  EXPECT_TRUE(covered);
  EXPECT_EQ(tok->decode(tok->encode(text)), "caf\xC3\xA9 ok");
}

TEST(TokenizerOffsets, NormalizedTextAlignment) {
  using detail::NormalizedText;
  {
    const std::string s = "plain ascii";
    const auto n = NormalizedText::nfc(s);
    EXPECT_TRUE(n.unchanged());
    EXPECT_EQ(n.to_original(2, 5), std::make_pair(2u, 5u));
  }
  {
    // "ab" + "e\u0301" + "cd": the changed piece e+U+0301 (orig bytes 2..5) becomes é (norm 2..4).
    const std::string s = "abe\xCC\x81" "cd";
    const auto n = NormalizedText::nfc(s);
    ASSERT_FALSE(n.unchanged());
    EXPECT_EQ(n.text(), "ab\xC3\xA9" "cd");
    EXPECT_EQ(n.to_original(0, 2), std::make_pair(0u, 2u));
    EXPECT_EQ(n.to_original(2, 4), std::make_pair(2u, 5u));
    EXPECT_EQ(n.to_original(4, 6), std::make_pair(5u, 7u));
    EXPECT_EQ(n.to_original(3, 4), std::make_pair(2u, 5u));  // inside the changed piece: whole piece
  }
  {
    // Hangul jamo L V T compose into one syllable; CJK text around it stays 1:1.
    const std::string s = "\xE4\xBD\xA0\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8\xE5\xA5\xBD";  // 你 ᄀ ᅡ ᆨ 好
    const auto n = NormalizedText::nfc(s);
    EXPECT_EQ(n.text(), "\xE4\xBD\xA0\xEA\xB0\x81\xE5\xA5\xBD");  // 你 각 好
    EXPECT_EQ(n.to_original(0, 3), std::make_pair(0u, 3u));
    EXPECT_EQ(n.to_original(3, 6), std::make_pair(3u, 12u));
    EXPECT_EQ(n.to_original(6, 9), std::make_pair(12u, 15u));
  }
  {
    // A run of combining marks (no starter inside) is one piece (utf8proc's reordering is
    // quadratic in the run length, so keep it modest).
    std::string s = "a";
    for (int i = 0; i < 1000; ++i) s += "\xCC\x81\xCC\xA3";  // U+0301 U+0323 (reordered by NFC)
    const auto n = NormalizedText::nfc(s);
    EXPECT_EQ(n.to_original(0, static_cast<uint32_t>(n.text().size())), std::make_pair(0u, static_cast<uint32_t>(s.size())));
  }
}

TEST(TokenizerOffsets, NfcEqualsUtf8procForEveryCharacterAndComposition) {
  // The fast paths (ASCII, inert characters) and the piecewise normalization must agree with
  // utf8proc on the whole text: every BMP character in context, and every canonical composite
  // given decomposed (so that it must compose across the pieces).
  const auto reference = [](const std::string& s) {
    utf8proc_uint8_t* out = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                static_cast<utf8proc_ssize_t>(s.size()), &out,
                                static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    std::string r(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);
    return r;
  };
  int checked = 0, failures = 0;
  const auto check = [&](const std::string& s) {
    ++checked;
    if (std::string(detail::NormalizedText::nfc(s).text()) != reference(s) && ++failures <= 5)
      ADD_FAILURE() << nlohmann::json(s).dump();
  };
  utf8proc_int32_t buf[16];
  for (char32_t c = 0x80; c < 0x110000; ++c) {
    if (c >= 0xD800 && c < 0xE000) continue;
    std::string ch;
    detail::append_utf8(ch, c);
    if (c < 0x10000) check("x" + ch + "y" + ch + ch);
    const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 16, UTF8PROC_DECOMPOSE, nullptr);
    if (n < 2) continue;
    std::string decomposed;
    for (utf8proc_ssize_t k = 0; k < n; ++k) detail::append_utf8(decomposed, static_cast<char32_t>(buf[k]));
    check("a" + decomposed + "\xE4\xBD\xA0" + decomposed + "b");  // around a CJK ideograph
  }
  EXPECT_EQ(failures, 0) << "of " << checked;
  EXPECT_GT(checked, 70000);
}

}  // namespace
}  // namespace coordexp::tokenizer::testing
