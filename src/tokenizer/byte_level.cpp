// Builds the GPT-2 bytes_to_unicode table (same construction as HF's ByteLevel) and converts
// vocabulary strings to raw bytes and back.
#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace coordexp::tokenizer::detail {

ByteLevelTable::ByteLevelTable() {
  cp_to_byte_.fill(-1);
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
    byte_to_cp_[b] = cp;
    cp_to_byte_[cp] = static_cast<int16_t>(b);
  }
}

const ByteLevelTable& ByteLevelTable::get() {
  static const ByteLevelTable table;
  return table;
}

std::optional<std::string> ByteLevelTable::decode(std::string_view s) const {
  std::string out;
  if (!decode_into(s, out)) return std::nullopt;
  return out;
}

bool ByteLevelTable::decode_into(std::string_view s, std::string& out) const {
  out.clear();
  size_t i = 0;
  while (i < s.size()) {
    const int b = to_byte(next_code_point(s, i));
    if (b < 0) return false;
    out += static_cast<char>(b);
  }
  return true;
}

std::string ByteLevelTable::encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) append_utf8(out, byte_to_cp_[static_cast<uint8_t>(c)]);
  return out;
}

}  // namespace coordexp::tokenizer::detail
