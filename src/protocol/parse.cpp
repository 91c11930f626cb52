// Strict CoordJSON parser (see parse.h): a head matcher, a string-aware bracket scanner that finds
// each entry's extent, and a recursive-descent validator for one entry (JSON plus bare coord
// literals). Works on bytes; in id mode each byte also knows whether it came from a coord token.
#include "coordexp/protocol/parse.h"

#include <algorithm>

#include "coordexp/protocol/coords.h"
#include "coordexp/util/error.h"
#include "labeling.h"

namespace coordexp::protocol {

const char* drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::kNone: return "none";
    case DropReason::kTruncated: return "truncated";
    case DropReason::kUnbalanced: return "unbalanced";
    case DropReason::kInvalidUtf8: return "invalid_utf8";
    case DropReason::kMalformedJson: return "malformed_json";
    case DropReason::kDuplicateKey: return "duplicate_key";
    case DropReason::kExtraKey: return "extra_key";
    case DropReason::kMissingDesc: return "missing_desc";
    case DropReason::kDescNotString: return "desc_not_string";
    case DropReason::kEmptyDesc: return "empty_desc";
    case DropReason::kSpecialTokenInDesc: return "special_token_in_desc";
    case DropReason::kMissingGeometry: return "missing_geometry";
    case DropReason::kTwoGeometries: return "two_geometries";
    case DropReason::kGeometryNotArray: return "geometry_not_array";
    case DropReason::kNonCoordValue: return "non_coord_value";
    case DropReason::kBadArity: return "bad_arity";
  }
  return "?";
}

const char* rollout_status_name(RolloutStatus status) {
  switch (status) {
    case RolloutStatus::kComplete: return "complete";
    case RolloutStatus::kTruncated: return "truncated";
    case RolloutStatus::kMalformed: return "malformed";
    case RolloutStatus::kNoPrefix: return "no_prefix";
  }
  return "?";
}

size_t ParseResult::num_valid() const {
  return static_cast<size_t>(
      std::count_if(entries.begin(), entries.end(), [](const ParsedEntry& e) { return e.valid(); }));
}

std::vector<Object> ParseResult::valid_objects() const {
  std::vector<Object> out;
  for (const auto& e : entries)
    if (e.valid()) out.push_back(e.object);
  return out;
}

namespace {

// Where each byte of the parsed text came from (id mode).
enum Origin : uint8_t { kOriginText = 0, kOriginCoord = 1, kOriginSpecial = 2 };

constexpr int kMaxDepth = 32;
constexpr std::string_view kCoordPrefix = "<|coord_";

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string at_byte(size_t p) { return " at byte " + std::to_string(p); }

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return is_ws(c); });
}

// What one geometry value (bbox_2d / poly) held, flattened.
struct GeometryRead {
  bool is_array = false;
  size_t num_values = 0;
  std::vector<int> bins;              // the values that are valid coord tokens
  std::vector<CharRange> coords;      // their literals
  std::string first_non_coord;        // description of the first value that is not
};

// Validates one balanced entry s[begin, end) that starts with '{'.
class EntryParser {
 public:
  EntryParser(std::string_view s, size_t begin, size_t end, const uint8_t* origin)
      : s_(s), p_(begin), e_(end), origin_(origin) {}

  void run(ParsedEntry& entry) {
    const uint32_t record_begin = static_cast<uint32_t>(p_);
    geometry_.bins.reserve(8);
    geometry_.coords.reserve(8);
    const bool syntax_ok = parse_entry();
    decide(entry, syntax_ok);
    entry.complete = true;
    entry.chars.record = {record_begin, static_cast<uint32_t>(e_)};
    entry.chars.desc = desc_range_;
    entry.chars.coords = std::move(geometry_.coords);
    entry.object.desc = std::move(desc_);
    entry.object.kind = kind_;
    entry.object.bins = std::move(geometry_.bins);
  }

 private:
  bool fail(const std::string& what) {
    if (error_.empty()) error_ = what + at_byte(p_);
    return false;
  }
  void ws() {
    while (p_ < e_ && is_ws(s_[p_])) ++p_;
  }
  bool at(char c) const { return p_ < e_ && s_[p_] == c; }
  bool expect(char c) {
    if (!at(c)) return fail(std::string("expected '") + c + "'");
    ++p_;
    return true;
  }

  bool parse_entry() {
    if (!expect('{')) return false;
    ws();
    if (at('}')) {
      ++p_;
      return finish();
    }
    std::vector<std::string> keys;
    while (true) {
      ws();
      if (!at('"')) return fail("expected a key");
      std::string key;
      if (!parse_string(&key, nullptr)) return false;
      ws();
      if (!expect(':')) return false;
      ws();
      const bool seen = std::find(keys.begin(), keys.end(), key) != keys.end();
      keys.push_back(key);
      if (seen) {
        duplicate_key_ = key;
        if (!parse_value(1)) return false;
      } else if (key == "desc") {
        has_desc_ = true;
        if (at('"')) {
          desc_is_string_ = true;
          CharRange content;
          if (!parse_string(&desc_, &content)) return false;
          desc_range_ = content;
        } else if (!parse_value(1)) {
          return false;
        }
      } else if (key == "bbox_2d" || key == "poly") {
        ++num_geometries_;
        if (num_geometries_ == 1) {
          kind_ = key == "bbox_2d" ? GeometryKind::kBbox : GeometryKind::kPoly;
          if (!parse_geometry(1, true)) return false;
        } else if (!parse_value(1)) {
          return false;
        }
      } else {
        if (extra_key_.empty()) extra_key_ = key;
        if (!parse_value(1)) return false;
      }
      ws();
      if (at(',')) {
        ++p_;
        continue;
      }
      if (at('}')) {
        ++p_;
        return finish();
      }
      return fail("expected ',' or '}'");
    }
  }

  bool finish() {
    ws();
    if (p_ != e_) return fail("unexpected content");
    return true;
  }

  // At '"'. Decodes into *out (when given) and reports the raw content range.
  bool parse_string(std::string* out, CharRange* content) {
    ++p_;
    const size_t start = p_;
    while (p_ < e_) {
      const char c = s_[p_];
      if (c == '"') {
        if (content) *content = {static_cast<uint32_t>(start), static_cast<uint32_t>(p_)};
        ++p_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return fail("raw control character in a string");
      if (c != '\\') {
        if (out) *out += c;
        ++p_;
        continue;
      }
      ++p_;
      if (p_ >= e_) break;
      const char esc = s_[p_++];
      char plain = 0;
      switch (esc) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
          uint32_t cp = 0;
          if (!parse_hex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("lone low surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo = 0;
            if (!(p_ + 1 < e_ && s_[p_] == '\\' && s_[p_ + 1] == 'u'))
              return fail("high surrogate without its low surrogate");
            p_ += 2;
            if (!parse_hex4(&lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("high surrogate without its low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          if (out) append_utf8(*out, cp);
          continue;
        }
        default: return fail("invalid escape");
      }
      if (out) *out += plain;
    }
    return fail("unterminated string");
  }

  bool parse_hex4(uint32_t* cp) {
    if (p_ + 4 > e_) return fail("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[p_ + i];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return fail("bad \\u escape");
    }
    p_ += 4;
    *cp = v;
    return true;
  }

  bool parse_number() {
    if (at('-')) ++p_;
    if (at('0')) {
      ++p_;
    } else if (p_ < e_ && is_digit(s_[p_])) {
      while (p_ < e_ && is_digit(s_[p_])) ++p_;
    } else {
      return fail("bad number");
    }
    if (at('.')) {
      ++p_;
      if (!(p_ < e_ && is_digit(s_[p_]))) return fail("bad number");
      while (p_ < e_ && is_digit(s_[p_])) ++p_;
    }
    if (at('e') || at('E')) {
      ++p_;
      if (at('+') || at('-')) ++p_;
      if (!(p_ < e_ && is_digit(s_[p_]))) return fail("bad number");
      while (p_ < e_ && is_digit(s_[p_])) ++p_;
    }
    return true;
  }

  bool parse_word(std::string_view w) {
    if (s_.substr(p_, w.size()) != w || p_ + w.size() > e_) return fail("unexpected character");
    p_ += w.size();
    return true;
  }

  // At '<': a bare coord literal <|coord_k|> (or <|coord_*|>). Syntax errors fail; a well-formed
  // literal that is not a usable coord token sets *why.
  bool parse_coord_literal(int* k, CharRange* range, std::string* why) {
    if (s_.substr(p_, kCoordPrefix.size()) != kCoordPrefix || p_ + kCoordPrefix.size() > e_)
      return fail("unexpected '<'");
    size_t q = p_ + kCoordPrefix.size();
    const size_t digits_begin = q;
    bool wildcard = false;
    if (q < e_ && s_[q] == '*') {
      wildcard = true;
      ++q;
    } else {
      while (q < e_ && is_digit(s_[q])) ++q;
    }
    const size_t num_digits = wildcard ? 0 : q - digits_begin;
    if ((!wildcard && num_digits == 0) || q + 2 > e_ || s_[q] != '|' || s_[q + 1] != '>')
      return fail("malformed coord literal");
    const size_t end = q + 2;
    *range = {static_cast<uint32_t>(p_), static_cast<uint32_t>(end)};
    why->clear();
    if (wildcard) {
      *why = "the wildcard <|coord_*|>";
    } else if (num_digits > 4 || (num_digits > 1 && s_[digits_begin] == '0')) {
      *why = "coord literal " + std::string(s_.substr(p_, end - p_)) + " out of range";
    } else {
      *k = std::stoi(std::string(s_.substr(digits_begin, num_digits)));
      if (*k > kMaxCoordBin)
        *why = "coord literal " + std::string(s_.substr(p_, end - p_)) + " out of range";
    }
    if (why->empty() && origin_) {
      for (size_t i = p_; i < end; ++i)
        if (origin_[i] != kOriginCoord) {
          *why = "coord literal spelled with text tokens, not a coord token";
          break;
        }
    }
    p_ = end;
    return true;
  }

  // Any value, validated for syntax only.
  bool parse_value(int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than " + std::to_string(kMaxDepth));
    if (p_ >= e_) return fail("missing value");
    const char c = s_[p_];
    if (c == '"') return parse_string(nullptr, nullptr);
    if (c == '-' || is_digit(c)) return parse_number();
    if (c == 't') return parse_word("true");
    if (c == 'f') return parse_word("false");
    if (c == 'n') return parse_word("null");
    if (c == '<') {
      int k;
      CharRange r;
      std::string why;
      return parse_coord_literal(&k, &r, &why);
    }
    if (c == '[' || c == '{') {
      const char close = c == '[' ? ']' : '}';
      ++p_;
      ws();
      if (at(close)) {
        ++p_;
        return true;
      }
      while (true) {
        ws();
        if (c == '{') {
          if (!at('"')) return fail("expected a key");
          if (!parse_string(nullptr, nullptr)) return false;
          ws();
          if (!expect(':')) return false;
          ws();
        }
        if (!parse_value(depth + 1)) return false;
        ws();
        if (at(',')) {
          ++p_;
          continue;
        }
        if (at(close)) {
          ++p_;
          return true;
        }
        return fail(std::string("expected ',' or '") + close + "'");
      }
    }
    return fail("unexpected character");
  }

  // A geometry value: nested arrays are flattened; every scalar should be a coord token.
  bool parse_geometry(int depth, bool top) {
    if (depth > kMaxDepth) return fail("nesting deeper than " + std::to_string(kMaxDepth));
    if (at('[')) {
      if (top) geometry_.is_array = true;
      ++p_;
      ws();
      if (at(']')) {
        ++p_;
        return true;
      }
      while (true) {
        ws();
        if (!parse_geometry(depth + 1, false)) return false;
        ws();
        if (at(',')) {
          ++p_;
          continue;
        }
        if (at(']')) {
          ++p_;
          return true;
        }
        return fail("expected ',' or ']'");
      }
    }
    if (top) return parse_value(depth);  // not an array; reported by decide()
    ++geometry_.num_values;
    if (at('<')) {
      int k = 0;
      CharRange r;
      std::string why;
      if (!parse_coord_literal(&k, &r, &why)) return false;
      if (why.empty()) {
        geometry_.bins.push_back(k);
        geometry_.coords.push_back(r);
      } else if (geometry_.first_non_coord.empty()) {
        geometry_.first_non_coord = why;
      }
      return true;
    }
    const size_t value_begin = p_;
    if (!parse_value(depth)) return false;
    if (geometry_.first_non_coord.empty())
      geometry_.first_non_coord = "value " + std::string(s_.substr(value_begin, p_ - value_begin));
    return true;
  }

  bool desc_has_special_token() const {
    if (origin_) {
      for (uint32_t i = desc_range_.begin; i < desc_range_.end; ++i)
        if (origin_[i] != kOriginText) return true;
    }
    return contains_special_token_text(desc_);
  }

  void decide(ParsedEntry& entry, bool syntax_ok) {
    auto drop = [&](DropReason r, std::string detail) {
      entry.reason = r;
      entry.detail = std::move(detail);
    };
    const char* geom = geometry_key(kind_);
    if (!syntax_ok) return drop(DropReason::kMalformedJson, error_);
    if (!duplicate_key_.empty()) return drop(DropReason::kDuplicateKey, "key '" + duplicate_key_ + "' twice");
    if (!extra_key_.empty()) return drop(DropReason::kExtraKey, "key '" + extra_key_ + "'");
    if (!has_desc_) return drop(DropReason::kMissingDesc, "no desc");
    if (!desc_is_string_) return drop(DropReason::kDescNotString, "desc is not a string");
    if (is_blank(desc_)) return drop(DropReason::kEmptyDesc, "desc is empty");
    if (desc_has_special_token()) return drop(DropReason::kSpecialTokenInDesc, "desc holds a special token");
    if (num_geometries_ == 0) return drop(DropReason::kMissingGeometry, "neither bbox_2d nor poly");
    if (num_geometries_ > 1) return drop(DropReason::kTwoGeometries, "both bbox_2d and poly");
    if (!geometry_.is_array) return drop(DropReason::kGeometryNotArray, std::string(geom) + " is not an array");
    if (!geometry_.first_non_coord.empty())
      return drop(DropReason::kNonCoordValue, std::string(geom) + ": " + geometry_.first_non_coord);
    if (!valid_arity(kind_, geometry_.num_values))
      return drop(DropReason::kBadArity,
                  std::string(geom) + " with " + std::to_string(geometry_.num_values) + " values");
  }

  std::string_view s_;
  size_t p_, e_;
  const uint8_t* origin_;
  std::string error_;
  std::string duplicate_key_, extra_key_;
  bool has_desc_ = false, desc_is_string_ = false;
  std::string desc_;
  CharRange desc_range_;
  int num_geometries_ = 0;
  GeometryKind kind_ = GeometryKind::kBbox;
  GeometryRead geometry_;
};

enum class Extent { kClosed, kTruncated, kUnbalanced };

// From s[begin] == '{': finds the matching close, honouring strings and escapes. `stack` is
// scratch space reused across entries.
Extent scan_extent(std::string_view s, size_t begin, size_t* end, std::vector<char>& stack) {
  stack.clear();
  bool in_string = false, escaped = false;
  for (size_t p = begin; p < s.size(); ++p) {
    const char c = s[p];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      stack.push_back(c);
    } else if (c == '}' || c == ']') {
      if (stack.empty() || stack.back() != (c == '}' ? '{' : '[')) {
        *end = p + 1;
        return Extent::kUnbalanced;
      }
      stack.pop_back();
      if (stack.empty()) {
        *end = p + 1;
        return Extent::kClosed;
      }
    }
  }
  *end = s.size();
  return Extent::kTruncated;
}

// Parses r.text (origin: per-byte origin or null) into r's structural fields and entries.
void parse_structure(ParseResult& r, const uint8_t* origin) {
  const std::string_view s = r.text;
  const size_t n = s.size();
  size_t p = 0;
  auto skip_ws = [&] {
    while (p < n && is_ws(s[p])) ++p;
  };
  auto stop = [&](RolloutStatus st, const std::string& msg) {
    r.status = st;
    r.error = msg + at_byte(p);
  };

  // Head: { "objects" : [   (any JSON whitespace between the tokens).
  static const std::string_view kHeadParts[] = {"{", "\"objects\"", ":", "["};
  for (std::string_view part : kHeadParts) {
    skip_ws();
    if (s.substr(p, part.size()) != part) {
      const bool cut_short = p + part.size() > n && part.substr(0, n - p) == s.substr(p);
      return stop(RolloutStatus::kNoPrefix, cut_short ? "text ends inside the {\"objects\": [ head"
                                                      : "expected the {\"objects\": [ head");
    }
    p += part.size();
  }
  r.has_prefix = true;
  r.append_cut = static_cast<uint32_t>(p);
  std::vector<char> bracket_stack;

  skip_ws();
  if (p >= n) return stop(RolloutStatus::kTruncated, "text ends inside the objects array");
  if (s[p] != ']') {
    while (true) {
      if (s[p] != '{') return stop(RolloutStatus::kMalformed, "expected '{' starting an entry");
      size_t end;
      const Extent extent = scan_extent(s, p, &end, bracket_stack);
      ParsedEntry entry;
      entry.chars.record = {static_cast<uint32_t>(p), static_cast<uint32_t>(end)};
      if (extent != Extent::kClosed) {
        entry.reason = extent == Extent::kTruncated ? DropReason::kTruncated : DropReason::kUnbalanced;
        entry.detail = extent == Extent::kTruncated ? "text ends inside the entry"
                                                    : "mismatched bracket" + at_byte(end - 1);
        r.entries.push_back(std::move(entry));
        return stop(extent == Extent::kTruncated ? RolloutStatus::kTruncated
                                                 : RolloutStatus::kMalformed,
                    extent == Extent::kTruncated ? "text ends inside an entry"
                                                 : "unbalanced entry starting");
      }
      // Bytes >= 0x80 (the only ones that can break UTF-8) never equal a byte the scanner acts on,
      // so the extent above holds whatever the bad bytes were meant to be: the entry is complete
      // and is dropped alone, and the scan goes on to the next entry.
      EntryParser(s, p, end, origin).run(entry);
      const size_t bad = detail::first_invalid_utf8(s.substr(p, end - p));
      if (bad != std::string_view::npos) {
        entry.reason = DropReason::kInvalidUtf8;
        entry.detail = "entry bytes are not valid UTF-8" + at_byte(p + bad);
      }
      r.entries.push_back(std::move(entry));
      r.num_complete = r.entries.size();
      r.append_cut = static_cast<uint32_t>(end);
      p = end;
      skip_ws();
      if (p >= n) return stop(RolloutStatus::kTruncated, "text ends inside the objects array");
      if (s[p] == ']') break;
      if (s[p] != ',') return stop(RolloutStatus::kMalformed, "expected ',' or ']' after an entry");
      ++p;
      skip_ws();
      if (p >= n) return stop(RolloutStatus::kTruncated, "text ends inside the objects array");
      if (s[p] == ']') return stop(RolloutStatus::kMalformed, "trailing comma");
    }
  }
  ++p;  // the array's ']'
  skip_ws();
  if (p >= n) return stop(RolloutStatus::kTruncated, "text ends before the closing '}'");
  if (s[p] != '}') return stop(RolloutStatus::kMalformed, "expected '}' closing the top level");
  ++p;
  skip_ws();
  if (p < n) return stop(RolloutStatus::kMalformed, "text after the closing '}'");
  r.status = RolloutStatus::kComplete;
  r.error.clear();
}

}  // namespace

ParseResult parse_text(std::string_view text) {
  ParseResult r;
  size_t cut = text.size();
  for (std::string_view eos : {std::string_view("<|im_end|>"), std::string_view("<|endoftext|>")}) {
    const size_t at = text.find(eos);
    if (at != std::string_view::npos && at < cut) {
      cut = at;
      r.ended_with_eos = true;
    }
  }
  r.text = std::string(text.substr(0, cut));
  parse_structure(r, nullptr);
  return r;
}

ParseResult parse_ids(const std::vector<tokenizer::TokenId>& ids, const tokenizer::Tokenizer& tok) {
  ParseResult r;
  r.from_ids = true;
  const tokenizer::CoordVocab& vocab = tok.coord_vocab();
  const tokenizer::TokenId im_end = tok.im_end_id();
  const tokenizer::TokenId endoftext = tok.endoftext_id();
  const auto vocab_size = static_cast<tokenizer::TokenId>(tok.vocab_size());
  std::vector<uint8_t> origin;
  r.token_begin.reserve(ids.size() + 1);
  for (tokenizer::TokenId id : ids) {
    if (id == im_end || id == endoftext) {
      r.ended_with_eos = true;
      break;
    }
    COORDEXP_CHECK(id >= 0 && id < vocab_size, "token id " << id << " outside the vocabulary");
    r.ids.push_back(id);
    r.token_begin.push_back(static_cast<uint32_t>(r.text.size()));
    r.text += tok.token_bytes(id);
    const uint8_t o = vocab.is_coord(id) ? kOriginCoord : tok.is_special(id) ? kOriginSpecial
                                                                             : kOriginText;
    origin.resize(r.text.size(), o);
  }
  r.token_begin.push_back(static_cast<uint32_t>(r.text.size()));
  parse_structure(r, origin.data());
  const detail::TokenLayout layout = detail::contiguous_layout(r.token_begin);
  for (ParsedEntry& e : r.entries) {
    e.span = detail::object_span(layout, r.ids, e.chars, vocab);
    e.span.geometry = e.object.kind;
  }
  return r;
}

}  // namespace coordexp::protocol
