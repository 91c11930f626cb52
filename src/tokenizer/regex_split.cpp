// PCRE2-backed regex splitting. Match data and JIT stacks are not thread-safe, so each call
// borrows a scratch set from a small pool (created on demand, never shared concurrently).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex_split.h"

#include <pcre2.h>
#include <utf8proc.h>

#include <cstdio>
#include <mutex>

#include "coordexp/util/error.h"
#include "tokenizer/utf8.h"

namespace coordexp::tokenizer::detail {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  const int n = pcre2_get_error_message(code, buf, sizeof buf);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
}

bool is_letter(int32_t c) {
  const auto k = utf8proc_category(c);
  return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
bool is_number(int32_t c) {
  const auto k = utf8proc_category(c);
  return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

// Class body (without brackets) of \x{..} ranges covering the code points where pred holds
// but PCRE2's own `\p{prop}` does not. PCRE2 is asked directly (one pass over a string of the
// candidates), so this is exact for whatever Unicode version the installed PCRE2 has.
std::string missing_from_pcre2(bool (*pred)(int32_t), const char* prop) {
  std::string candidates;
  std::vector<int32_t> cps;
  for (int32_t c = 0x80; c < 0x110000; ++c) {  // ASCII is the same in every version
    if ((c >= 0xD800 && c < 0xE000) || !pred(c)) continue;
    cps.push_back(c);
    append_utf8(candidates, static_cast<char32_t>(c));
  }
  const std::string negated = std::string("\\P{") + prop + "}";
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(negated.data()), negated.size(), PCRE2_UTF | PCRE2_UCP,
                                 &error, &offset, nullptr);
  COORDEXP_CHECK(re, "cannot compile " << negated);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
  std::vector<int32_t> missing;
  size_t pos = 0;
  while (pos < candidates.size() &&
         pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(candidates.data()), candidates.size(), pos, 0, md, nullptr) > 0) {
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t i = ov[0];
    missing.push_back(static_cast<int32_t>(next_code_point(candidates, i)));
    pos = ov[1];
  }
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  std::string out;
  char buf[48];
  for (size_t i = 0; i < missing.size();) {
    size_t j = i;
    while (j + 1 < missing.size() && missing[j + 1] == missing[j] + 1) ++j;
    if (j == i) std::snprintf(buf, sizeof buf, "\\x{%X}", static_cast<unsigned>(missing[i]));
    else std::snprintf(buf, sizeof buf, "\\x{%X}-\\x{%X}", static_cast<unsigned>(missing[i]), static_cast<unsigned>(missing[j]));
    out += buf;
    i = j + 1;
  }
  return out;
}

// Unicode White_Space (what Oniguruma's \s matches in Hugging Face's tokenizers).
const char* const kWhiteSpaceBody =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

}  // namespace

std::string expand_unicode_classes(const std::string& p) {
  // PCRE2's property tables are fast (a two-stage lookup) but may be an older Unicode version
  // than utf8proc's; the code points it lacks are listed explicitly (a few dozen ranges).
  static const std::string letters = "\\p{L}" + missing_from_pcre2(&is_letter, "L");
  static const std::string numbers = "\\p{N}" + missing_from_pcre2(&is_number, "N");
  const std::string space = kWhiteSpaceBody;
  std::string out;
  out.reserve(p.size());
  bool in_class = false;
  size_t i = 0;
  while (i < p.size()) {
    const char ch = p[i];
    if (ch == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      const bool prop = (e == 'p' || e == 'P') && p.compare(i + 2, 3, "{L}") == 0;
      const bool nprop = (e == 'p' || e == 'P') && p.compare(i + 2, 3, "{N}") == 0;
      if (prop || nprop) {
        const std::string& body = prop ? letters : numbers;
        if (e == 'p') out += in_class ? body : "[" + body + "]";
        else if (!in_class) out += "[^" + body + "]";
        else out.append(p, i, 5);  // a negated property inside a class cannot be extended
        i += 5;
        continue;
      }
      if (e == 's') { out += in_class ? space : "[" + space + "]"; i += 2; continue; }
      if (e == 'S' && !in_class) { out += "[^" + space + "]"; i += 2; continue; }
      // Any other escape is copied whole, including a braced argument (\x{..}, \p{..}).
      size_t len = 2;
      if (i + 2 < p.size() && p[i + 2] == '{' && (e == 'x' || e == 'p' || e == 'P' || e == 'o')) {
        const size_t close = p.find('}', i + 2);
        len = close == std::string::npos ? p.size() - i : close - i + 1;
      }
      out.append(p, i, len);
      i += len;
      continue;
    }
    if (!in_class && ch == '[') {
      in_class = true;
      out += ch;
      ++i;
      if (i < p.size() && p[i] == '^') { out += '^'; ++i; }
      if (i < p.size() && p[i] == ']') { out += ']'; ++i; }  // a leading ']' is literal
      continue;
    }
    if (in_class && ch == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX [:name:]
      const size_t close = p.find(":]", i + 2);
      const size_t len = close == std::string::npos ? 1 : close + 2 - i;
      out.append(p, i, len);
      i += len;
      continue;
    }
    if (in_class && ch == ']') in_class = false;
    out += ch;
    ++i;
  }
  return out;
}

struct Scratch {
  pcre2_match_data* match = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ~Scratch() {
    pcre2_match_data_free(match);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
};

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  mutable std::mutex pool_mutex;
  mutable std::vector<std::unique_ptr<Scratch>> pool;

  std::unique_ptr<Scratch> acquire() const {
    {
      std::lock_guard<std::mutex> lock(pool_mutex);
      if (!pool.empty()) {
        auto s = std::move(pool.back());
        pool.pop_back();
        return s;
      }
    }
    auto s = std::make_unique<Scratch>();
    s->match = pcre2_match_data_create_from_pattern(code, nullptr);
    s->context = pcre2_match_context_create(nullptr);
    COORDEXP_CHECK(s->match && s->context, "out of memory creating PCRE2 match data");
    if (jit) {
      // Long whitespace or letter runs backtrack deeply; the default 32 KiB stack is too small.
      s->stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
      COORDEXP_CHECK(s->stack, "out of memory creating the PCRE2 JIT stack");
      pcre2_jit_stack_assign(s->context, nullptr, s->stack);
    }
    return s;
  }
  void release(std::unique_ptr<Scratch> s) const {
    std::lock_guard<std::mutex> lock(pool_mutex);
    pool.push_back(std::move(s));
  }
  ~Impl() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(const std::string& pattern, const std::string& where)
    : impl_(std::make_unique<Impl>()), pattern_(pattern) {
  const std::string expanded = expand_unicode_classes(pattern);
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(expanded.data()), expanded.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
  if (!impl_->code) {
    throw FormatError("cannot compile the pre-tokenizer regex " + pattern + ": " + pcre2_message(error) +
                          " (offset " + std::to_string(error_offset) + " of the expanded pattern)",
                      where, "only Oniguruma syntax that PCRE2 also accepts is supported");
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() = default;

bool RegexSplitter::uses_jit() const { return impl_->jit; }

void RegexSplitter::split(std::string_view text, uint32_t base, std::vector<ByteSpan>& pieces) const {
  if (text.empty()) return;
  auto scratch = impl_->acquire();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, gap_begin = 0;
  while (pos < text.size()) {
    int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK,
                                          scratch->match, scratch->context)
                        : PCRE2_ERROR_JIT_BADOPTION;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_JIT_BADOPTION) {
      rc = pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, scratch->match, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      impl_->release(std::move(scratch));
      throw DataError("the pre-tokenizer regex failed at byte " + std::to_string(base + pos) + ": " +
                      pcre2_message(rc), "", "split the text into smaller pieces");
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch->match);
    const size_t mb = ov[0], me = ov[1];
    if (me == mb) {  // empty match: step over one code point
      pos = mb + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (mb > gap_begin) pieces.emplace_back(base + gap_begin, base + mb);
    pieces.emplace_back(base + mb, base + me);
    pos = gap_begin = me;
  }
  if (gap_begin < text.size()) pieces.emplace_back(base + gap_begin, base + text.size());
  impl_->release(std::move(scratch));
}

}  // namespace coordexp::tokenizer::detail
