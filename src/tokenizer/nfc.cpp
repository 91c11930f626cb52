// NFC with alignment. Normalization is independent across a boundary placed before any ASCII
// character (ASCII is a starter that never composes with what precedes it), so text is cut there
// and only stretches containing non-ASCII characters go through utf8proc. A stretch that NFC
// changes is cut further, greedily, at every point where normalizing the two sides separately
// gives the same result as normalizing them together; this needs no knowledge of utf8proc's
// internal tables and is checked once more against the whole-stretch result.
#include "tokenizer/nfc.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "coordexp/util/error.h"
#include "tokenizer/utf8.h"

namespace coordexp::tokenizer::detail {

std::string nfc_string(std::string_view s) {
  if (s.empty()) return {};
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                   &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  COORDEXP_CHECK(n >= 0, "utf8proc_map failed: " << utf8proc_errmsg(n));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> guard(out, &std::free);
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

namespace {

// BMP code points that NFC leaves alone in any context: starters (ccc 0) without a canonical
// decomposition that never end a canonical decomposition (so nothing composes with them). A
// stretch made only of these and ASCII is already NFC, and most CJK text is; the rest goes
// through utf8proc.
class InertTable {
 public:
  static const InertTable& get() {
    static const InertTable table;
    return table;
  }
  bool inert(char32_t c) const { return c < 0x10000 && (bits_[c >> 6] >> (c & 63) & 1); }

 private:
  InertTable() : bits_(0x10000 / 64, 0) {
    const auto canonical = [](const utf8proc_property_t* p) {
      return p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0;
    };
    for (int32_t c = 0; c < 0x10000; ++c) {
      const utf8proc_property_t* p = utf8proc_get_property(c);
      if ((c < 0xD800 || c >= 0xE000) && p->combining_class == 0 && !canonical(p))
        bits_[static_cast<size_t>(c) >> 6] |= 1ULL << (c & 63);
    }
    // Anything after the first code point of a canonical decomposition may compose with what
    // precedes it (this covers the Hangul vowel and trailing jamo too).
    utf8proc_int32_t buf[16];
    for (int32_t c = 0; c < 0x110000; ++c) {
      if ((c >= 0xD800 && c < 0xE000) || !(canonical(utf8proc_get_property(c)) || (c >= 0xAC00 && c <= 0xD7A3))) continue;
      const utf8proc_ssize_t n = utf8proc_decompose_char(c, buf, 16, UTF8PROC_DECOMPOSE, nullptr);
      for (utf8proc_ssize_t k = 1; k < n && k < 16; ++k)
        if (buf[k] < 0x10000) bits_[static_cast<size_t>(buf[k]) >> 6] &= ~(1ULL << (buf[k] & 63));
    }
  }
  std::vector<uint64_t> bits_;
};

// Splits a stretch that NFC changes into the finest pieces that normalize independently.
// Appends (original piece, normalized piece) pairs.
void split_changed(std::string_view stretch, const std::string& whole_nfc,
                   std::vector<std::pair<std::string_view, std::string>>& pieces) {
  const size_t first = pieces.size();
  size_t cur_begin = 0, i = 0;
  next_code_point(stretch, i);  // a piece holds at least one code point
  while (i < stretch.size()) {
    size_t j = i;
    const char32_t c = next_code_point(stretch, j);
    // Only a starter can begin an independent piece (this also keeps long runs of combining marks
    // linear: no test inside them).
    if (utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class != 0) {
      i = j;
      continue;
    }
    const std::string_view cur = stretch.substr(cur_begin, i - cur_begin);
    const std::string_view next = stretch.substr(i, j - i);
    const std::string left = nfc_string(cur);
    if (left + nfc_string(next) == nfc_string(stretch.substr(cur_begin, j - cur_begin))) {
      pieces.emplace_back(cur, left);
      cur_begin = i;
    }
    i = j;
  }
  const std::string_view last = stretch.substr(cur_begin);
  pieces.emplace_back(last, nfc_string(last));
  // Pairwise independence does not strictly imply independence of the whole; verify.
  std::string joined;
  for (size_t k = first; k < pieces.size(); ++k) joined += pieces[k].second;
  if (joined != whole_nfc) {
    pieces.resize(first);
    pieces.emplace_back(stretch, whole_nfc);
  }
}

}  // namespace

NormalizedText NormalizedText::identity(std::string_view original) {
  NormalizedText t;
  t.original_ = original;
  return t;
}

NormalizedText NormalizedText::nfc(std::string_view original) {
  NormalizedText t;
  t.original_ = original;
  const size_t n = original.size();
  // Fast path: find the first byte of a stretch that NFC changes, if any.
  std::vector<std::pair<size_t, size_t>> changed;  // original byte ranges NFC changes
  std::vector<std::string> changed_nfc;
  size_t i = 0;
  while (i < n) {
    while (i < n && static_cast<unsigned char>(original[i]) < 0x80) ++i;
    if (i >= n) break;
    // Stretch: the ASCII character before (a combining mark may attach to it) + non-ASCII run.
    const size_t begin = i > 0 ? i - 1 : 0;
    size_t end = i;
    bool inert = true;
    while (end < n && static_cast<unsigned char>(original[end]) >= 0x80)
      inert = InertTable::get().inert(next_code_point(original, end)) && inert;
    if (inert) {
      i = end;
      continue;
    }
    const std::string_view stretch = original.substr(begin, end - begin);
    std::string normalized = nfc_string(stretch);
    if (normalized != stretch) {
      changed.emplace_back(begin, end);
      changed_nfc.push_back(std::move(normalized));
    }
    i = end;
  }
  if (changed.empty()) return t;

  t.unchanged_ = false;
  t.normalized_.reserve(n);
  size_t pos = 0;
  const auto add_verbatim = [&](size_t from, size_t to) {
    if (to <= from) return;
    t.runs_.push_back({static_cast<uint32_t>(t.normalized_.size()), static_cast<uint32_t>(from), true});
    t.normalized_.append(original.data() + from, to - from);
  };
  std::vector<std::pair<std::string_view, std::string>> pieces;
  for (size_t k = 0; k < changed.size(); ++k) {
    const auto [begin, end] = changed[k];
    add_verbatim(pos, begin);
    pieces.clear();
    split_changed(original.substr(begin, end - begin), changed_nfc[k], pieces);
    size_t orig = begin;
    for (const auto& [src, dst] : pieces) {
      const bool verbatim = src == dst;
      t.runs_.push_back({static_cast<uint32_t>(t.normalized_.size()), static_cast<uint32_t>(orig), verbatim});
      t.normalized_ += dst;
      orig += src.size();
    }
    pos = end;
  }
  add_verbatim(pos, n);
  t.runs_.push_back({static_cast<uint32_t>(t.normalized_.size()), static_cast<uint32_t>(n), true});
  return t;
}

size_t NormalizedText::run_index(uint32_t norm_pos) const {
  // Last run whose norm_begin <= norm_pos (runs are non-empty except the sentinel).
  const auto it = std::upper_bound(runs_.begin(), runs_.end(), norm_pos,
                                   [](uint32_t p, const Run& r) { return p < r.norm_begin; });
  return static_cast<size_t>(it - runs_.begin()) - 1;
}

std::pair<uint32_t, uint32_t> NormalizedText::to_original(uint32_t begin, uint32_t end) const {
  if (unchanged_) return {begin, end};
  const Run& rb = runs_[run_index(begin)];
  const uint32_t ob = rb.verbatim ? rb.orig_begin + (begin - rb.norm_begin) : rb.orig_begin;
  if (end <= begin) return {ob, ob};
  const size_t ie = run_index(end - 1);
  const Run& re = runs_[ie];
  const uint32_t oe = re.verbatim ? re.orig_begin + (end - re.norm_begin) : runs_[ie + 1].orig_begin;
  return {ob, oe};
}

}  // namespace coordexp::tokenizer::detail
