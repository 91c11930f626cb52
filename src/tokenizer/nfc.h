// NFC normalization (utf8proc) that remembers where every normalized byte came from, so tokens
// found in the normalized text can be mapped back to byte spans of the caller's input. Text that
// NFC leaves unchanged maps 1:1; a changed stretch maps as one unit (its smallest independent
// normalization segment). Input must be valid UTF-8. No other normalizers here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coordexp::tokenizer::detail {

class NormalizedText {
 public:
  // NFC-normalizes valid UTF-8 `original`.
  static NormalizedText nfc(std::string_view original);
  // Wraps `original` unchanged (no normalizer configured).
  static NormalizedText identity(std::string_view original);

  std::string_view text() const { return unchanged_ ? original_ : std::string_view(normalized_); }
  bool unchanged() const { return unchanged_; }
  // Maps the normalized byte span [begin, end) to the smallest original byte span that produced it.
  std::pair<uint32_t, uint32_t> to_original(uint32_t begin, uint32_t end) const;

 private:
  // A stretch of normalized text [norm_begin, next.norm_begin) made from original bytes
  // [orig_begin, next.orig_begin); `verbatim` stretches are byte-identical to their source.
  struct Run {
    uint32_t norm_begin;
    uint32_t orig_begin;
    bool verbatim;
  };
  size_t run_index(uint32_t norm_pos) const;

  std::string_view original_;
  std::string normalized_;
  bool unchanged_ = true;
  std::vector<Run> runs_;  // only when !unchanged_; ends with a sentinel at the text sizes
};

// NFC of valid UTF-8 (whole string, no alignment).
std::string nfc_string(std::string_view s);

}  // namespace coordexp::tokenizer::detail
