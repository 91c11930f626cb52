// The Split(Regex, behavior=Isolated) pre-tokenizer: runs the pattern from tokenizer.json with
// PCRE2 (UTF + UCP, JIT when available) and cuts text into the matches and the gaps between them.
// \p{L} and \p{N} are extended with the code points that utf8proc's tables have and the installed
// PCRE2's lack (Debian's PCRE2 is Unicode 14), and \s / \S become Unicode White_Space (as in HF's
// Oniguruma; PCRE2 would also count U+180E and miss U+0085). Thread-safe. Knows nothing about
// bytes-to-unicode or BPE.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coordexp::tokenizer::detail {

using ByteSpan = std::pair<uint32_t, uint32_t>;  // [begin, end) in bytes

class RegexSplitter {
 public:
  // Compiles `pattern`; throws FormatError(`where`: ...) naming the PCRE2 error and its offset.
  RegexSplitter(const std::string& pattern, const std::string& where);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Appends the pieces of valid UTF-8 `text` (matches and non-empty gaps, in order), offset by
  // `base`. Throws DataError if PCRE2 gives up on the input (resource limits).
  void split(std::string_view text, uint32_t base, std::vector<ByteSpan>& pieces) const;

  bool uses_jit() const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

// The pattern with \p{L}, \p{N}, \s, \S, \P{L}, \P{N} rewritten as described above (exposed for
// tests).
std::string expand_unicode_classes(const std::string& pattern);

}  // namespace coordexp::tokenizer::detail
