// The GPT-2 / ByteLevel bytes <-> unicode table: every byte maps to one printable code point, so
// byte-level BPE vocabularies can be stored as JSON strings. Printable Latin-1 bytes map to
// themselves, the other 68 bytes to U+0100 + n in byte order.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace coordexp::tokenizer::detail {

class ByteLevelTable {
 public:
  static const ByteLevelTable& get();

  char32_t to_unicode(uint8_t b) const { return byte_to_cp_[b]; }
  // Byte for a code point of the table, or -1.
  int to_byte(char32_t c) const { return c < cp_to_byte_.size() ? cp_to_byte_[c] : -1; }

  // Raw bytes of a vocabulary string (UTF-8 of table code points); nullopt if some code point
  // is not in the table.
  std::optional<std::string> decode(std::string_view vocab_string) const;
  // The same into `out` (cleared first); false if some code point is not in the table.
  bool decode_into(std::string_view vocab_string, std::string& out) const;
  // Vocabulary string (UTF-8) of raw bytes.
  std::string encode(std::string_view bytes) const;

 private:
  ByteLevelTable();
  std::array<char32_t, 256> byte_to_cp_{};
  std::array<int16_t, 324> cp_to_byte_{};
};

}  // namespace coordexp::tokenizer::detail
