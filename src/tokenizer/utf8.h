// UTF-8 helpers for the tokenizer: strict validation with the offset of the first bad byte,
// code point decoding of already-validated text, encoding, and lossy decoding that replaces each
// maximal invalid subpart with U+FFFD exactly like Rust's String::from_utf8_lossy (what Hugging
// Face's decoder does). No normalization here (see nfc.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace coordexp::tokenizer::detail {

// Byte offset of the first byte that starts an ill-formed sequence, or nullopt if `s` is valid
// UTF-8 (Unicode Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF).
std::optional<size_t> find_invalid_utf8(std::string_view s);

// Decodes the code point starting at s[i] of VALID UTF-8 and advances i past it.
inline char32_t next_code_point(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) { ++i; return b0; }
  const auto cont = [&](size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k]) & 0x3F); };
  char32_t c;
  if (b0 < 0xE0) { c = ((b0 & 0x1F) << 6) | cont(1); i += 2; }
  else if (b0 < 0xF0) { c = ((b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2); i += 3; }
  else { c = ((b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3); i += 4; }
  return c;
}

// Length in bytes of the UTF-8 sequence whose lead byte is `b0` (1 for continuation bytes).
inline size_t utf8_length(unsigned char b0) {
  return b0 < 0xC0 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
}

inline bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

void append_utf8(std::string& out, char32_t c);

// Appends `bytes` to `out`, replacing every maximal ill-formed subpart with U+FFFD.
void append_utf8_lossy(std::string& out, std::string_view bytes);

// True for the Unicode White_Space code points (what Rust's char::is_whitespace tests).
bool is_unicode_whitespace(char32_t c);

}  // namespace coordexp::tokenizer::detail
