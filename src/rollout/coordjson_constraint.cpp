// CoordJSON-constrained decoding (see coordjson_constraint.h). The grammar's structure is a small
// byte DFA (literals, branches decided by one byte, coord slots, one desc state); inside a desc a
// packed sub-state tracks UTF-8, escapes, blankness and <|name|> text. A row's state is the pair
// (DFA state, desc sub-state); the allowed-id set of each pair is computed once, on first use, by
// running every token's bytes from it, and cached for all rows (allow or forbid list, the shorter).
#include "coordexp/rollout/coordjson_constraint.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "coordexp/util/error.h"

namespace coordexp::rollout {

AllowedGeometry allowed_geometry_from_name(const std::string& prompt_geometry) {
  if (prompt_geometry == "bbox") return AllowedGeometry::kBbox;
  if (prompt_geometry == "poly") return AllowedGeometry::kPoly;
  if (prompt_geometry == "bbox_or_poly") return AllowedGeometry::kBboxOrPoly;
  throw ConfigError("invalid value '" + prompt_geometry + "'", "key data.prompt_geometry",
                    "use one of bbox|poly|bbox_or_poly");
}

CoordJsonConstraintOptions CoordJsonConstraintOptions::from_config(const config::ProtocolOptions& protocol,
                                                                   const config::DataOptions& data,
                                                                   int64_t vocab_rows) {
  CoordJsonConstraintOptions o;
  o.field_order = protocol::field_order(protocol);
  o.geometry = allowed_geometry_from_name(data.prompt_geometry);
  o.vocab_rows = vocab_rows;
  return o;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Desc sub-state: 16 bits = utf8 (3) | escape (5) << 3 | nonblank (1) << 8 | special (3) << 9.

// UTF-8 continuation bytes still owed, with the range the next one must fall in.
enum Utf8 : uint16_t {
  kU8None = 0,
  kU8Need1,     // 80-BF, then done
  kU8Need2,     // 80-BF, then kU8Need1
  kU8Need2E0,   // A0-BF (no overlongs)
  kU8Need2ED,   // 80-9F (no surrogates)
  kU8Need3,     // 80-BF, then kU8Need2
  kU8Need3F0,   // 90-BF (no overlongs)
  kU8Need3F4,   // 80-8F (<= U+10FFFF)
};

// Escape progress. Only the escapes escape_json_string writes are allowed (\" \\ \b \f \n \r \t, and
// \u00XX in lowercase hex for the other control characters), so the text stays canonical.
enum Esc : uint16_t {
  kEscNone = 0,
  kEscBackslash,
  kEscU,     // after \u
  kEscU0,    // \u0
  kEscU00,   // \u00
  kEscU000,  // \u000
  kEscU001,  // \u001
};

// <|name|> detector over decoded characters (name: [A-Za-z0-9_*]+), as contains_special_token_text.
enum Special : uint16_t { kSpNone = 0, kSpLt, kSpLtBar, kSpName, kSpNameBar };

constexpr uint32_t kDescFail = 0x10000;   // the byte is not allowed
constexpr uint32_t kDescClose = 0x20000;  // the byte is the closing quote

struct Sub {
  uint16_t utf8, esc, nonblank, special;
  static Sub unpack(uint16_t v) {
    return {static_cast<uint16_t>(v & 7), static_cast<uint16_t>((v >> 3) & 31),
            static_cast<uint16_t>((v >> 8) & 1), static_cast<uint16_t>((v >> 9) & 7)};
  }
  uint16_t pack() const {
    return static_cast<uint16_t>(utf8 | (esc << 3) | (nonblank << 8) | (special << 9));
  }
};

int hex_value(uint8_t b) { return b <= '9' ? b - '0' : b - 'a' + 10; }  // 0-9a-f
bool is_name_char(uint32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '*';
}

// One decoded character `cp` of the desc (any code point; only ASCII matters for the detector).
// False when it completes <|name|>.
bool emit_char(Sub& s, uint32_t cp) {
  if (!(cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r')) s.nonblank = 1;
  if (cp == '<') {
    s.special = kSpLt;
  } else if (cp == '|') {
    s.special = s.special == kSpLt ? kSpLtBar : s.special == kSpName ? kSpNameBar : kSpNone;
  } else if (cp == '>') {
    if (s.special == kSpNameBar) return false;
    s.special = kSpNone;
  } else if (is_name_char(cp)) {
    s.special = (s.special == kSpLtBar || s.special == kSpName) ? kSpName : kSpNone;
  } else {
    s.special = kSpNone;
  }
  return true;
}

// One raw byte inside a desc: the new packed sub-state, kDescFail or kDescClose.
uint32_t desc_step(uint16_t packed, uint8_t b) {
  Sub s = Sub::unpack(packed);
  if (s.utf8 != kU8None) {
    uint8_t lo = 0x80, hi = 0xBF;
    if (s.utf8 == kU8Need2E0) lo = 0xA0;
    if (s.utf8 == kU8Need2ED) hi = 0x9F;
    if (s.utf8 == kU8Need3F0) lo = 0x90;
    if (s.utf8 == kU8Need3F4) hi = 0x8F;
    if (b < lo || b > hi) return kDescFail;
    switch (s.utf8) {
      case kU8Need1:
        s.utf8 = kU8None;
        emit_char(s, 0x80);  // a non-ASCII character: not blank, resets the detector
        break;
      case kU8Need2: case kU8Need2E0: case kU8Need2ED: s.utf8 = kU8Need1; break;
      default: s.utf8 = kU8Need2; break;
    }
    return s.pack();
  }
  if (s.esc != kEscNone) {
    switch (s.esc) {
      case kEscBackslash:
        switch (b) {
          case '"': case '\\': case 'b': case 'f': case 'n': case 'r': case 't':
            s.esc = kEscNone;
            emit_char(s, b == 'n' ? '\n' : b == 'r' ? '\r' : b == 't' ? '\t' : b == 'b' ? '\b'
                         : b == 'f' ? '\f' : b);
            return s.pack();
          case 'u': s.esc = kEscU; return s.pack();
          default: return kDescFail;  // \/ is JSON but not canonical; anything else is not JSON
        }
      case kEscU:
      case kEscU0:
        if (b != '0') return kDescFail;
        s.esc = s.esc == kEscU ? kEscU0 : kEscU00;
        return s.pack();
      case kEscU00:
        if (b != '0' && b != '1') return kDescFail;
        s.esc = b == '0' ? kEscU000 : kEscU001;
        return s.pack();
      default: {  // last digit: lowercase hex, a control character without a short escape
        if (!((b >= '0' && b <= '9') || (b >= 'a' && b <= 'f'))) return kDescFail;
        const uint32_t cp = (s.esc == kEscU001 ? 16u : 0u) + static_cast<uint32_t>(hex_value(b));
        if (cp == '\b' || cp == '\t' || cp == '\n' || cp == '\f' || cp == '\r') return kDescFail;
        s.esc = kEscNone;
        emit_char(s, cp);
        return s.pack();
      }
    }
  }
  if (b < 0x20) return kDescFail;  // raw control character
  if (b == '"') return s.nonblank ? kDescClose : kDescFail;
  if (b == '\\') {
    s.esc = kEscBackslash;
    return s.pack();
  }
  if (b < 0x80) return emit_char(s, b) ? s.pack() : kDescFail;
  if (b >= 0xC2 && b <= 0xDF) s.utf8 = kU8Need1;
  else if (b == 0xE0) s.utf8 = kU8Need2E0;
  else if (b == 0xED) s.utf8 = kU8Need2ED;
  else if (b >= 0xE1 && b <= 0xEF) s.utf8 = kU8Need2;
  else if (b == 0xF0) s.utf8 = kU8Need3F0;
  else if (b >= 0xF1 && b <= 0xF3) s.utf8 = kU8Need3;
  else if (b == 0xF4) s.utf8 = kU8Need3F4;
  else return kDescFail;  // continuation without a lead, C0/C1 overlongs, F5-FF
  return s.pack();
}

// ---------------------------------------------------------------------------------------------
// Structure DFA.

enum class Kind : uint8_t { kBytes, kDesc, kCoord, kEnd, kDone };

struct GState {
  Kind kind = Kind::kBytes;
  std::array<int16_t, 256> next;  // kBytes: state after each byte, -1 = not allowed
  int16_t after = -1;             // kCoord: after the coord token; kDesc: after the closing quote
  std::string where;              // for messages: the literal being matched
  GState() { next.fill(-1); }
};

class StructureBuilder {
 public:
  std::vector<GState> states;

  int16_t add(Kind kind, std::string where) {
    COORDEXP_CHECK(states.size() < 32000);
    states.emplace_back();
    states.back().kind = kind;
    states.back().where = std::move(where);
    return static_cast<int16_t>(states.size() - 1);
  }
  // Bytes of `lit` from state `from` (sharing existing transitions as a trie), ending in `to`.
  void lit(int16_t from, std::string_view lit, int16_t to) {
    COORDEXP_CHECK(!lit.empty());
    int16_t cur = from;
    for (size_t i = 0; i < lit.size(); ++i) {
      COORDEXP_CHECK(states[cur].kind == Kind::kBytes);
      const auto b = static_cast<uint8_t>(lit[i]);
      int16_t& nx = states[cur].next[b];
      if (i + 1 == lit.size()) {
        COORDEXP_CHECK(nx < 0 || nx == to, "grammar branch conflict in '" << lit << "'");
        nx = to;
      } else if (nx >= 0) {
        cur = nx;
      } else {
        const int16_t fresh = add(Kind::kBytes, "'" + std::string(lit) + "' byte " + std::to_string(i + 1));
        states[cur].next[b] = fresh;  // `nx` may dangle after add()
        cur = fresh;
      }
    }
  }
  int16_t coord_slot(const std::string& where) { return add(Kind::kCoord, where); }
};

struct Structure {
  std::vector<GState> states;
  int16_t start = 0, done = 0;
};

// The canonical answer grammar (render_text + <|im_end|>) for a field order and geometry set.
Structure build_structure(protocol::FieldOrder order, AllowedGeometry geometry) {
  StructureBuilder b;
  const bool desc_first = order == protocol::FieldOrder::kDescFirst;
  const int16_t start = b.add(Kind::kBytes, "answer start");
  const int16_t array = b.add(Kind::kBytes, "objects array start");
  const int16_t record = b.add(Kind::kBytes, "record start");
  const int16_t after_record = b.add(Kind::kBytes, "after a record");
  const int16_t end = b.add(Kind::kEnd, "after the closing ]}");
  const int16_t done = b.add(Kind::kDone, "after <|im_end|>");
  const int16_t desc = b.add(Kind::kDesc, "desc");
  const int16_t desc_exit = b.add(Kind::kBytes, "after the desc");
  const int16_t key = b.add(Kind::kBytes, "geometry key");
  b.states[desc].after = desc_exit;

  b.lit(start, protocol::kAnswerHead, array);
  b.lit(array, protocol::kAnswerClose, end);
  b.lit(array, "{", record);
  b.lit(after_record, protocol::kAnswerClose, end);
  b.lit(after_record, std::string(protocol::kEntrySeparator) + "{", record);
  // What follows the geometry's last coord: its `]` and the rest of the record.
  std::string geometry_close;
  int16_t geometry_close_to;
  if (desc_first) {
    b.lit(record, "\"desc\": \"", desc);
    b.lit(desc_exit, ", \"", key);
    geometry_close = "]}";
    geometry_close_to = after_record;
  } else {
    b.lit(record, "\"", key);
    b.lit(desc_exit, "}", after_record);
    geometry_close = "], \"desc\": \"";
    geometry_close_to = desc;
  }
  const std::string sep(protocol::kEntrySeparator);
  if (geometry != AllowedGeometry::kPoly) {
    int16_t slot = b.coord_slot("bbox_2d coord 1");
    b.lit(key, "bbox_2d\": [", slot);
    for (int i = 1; i <= 4; ++i) {
      const int16_t then = b.add(Kind::kBytes, "after bbox_2d coord " + std::to_string(i));
      b.states[slot].after = then;
      if (i == 4) {
        b.lit(then, geometry_close, geometry_close_to);
      } else {
        slot = b.coord_slot("bbox_2d coord " + std::to_string(i + 1));
        b.lit(then, sep, slot);
      }
    }
  }
  if (geometry != AllowedGeometry::kBbox) {
    // Six coords unrolled, then a two-state loop: even count >= 6 may close, odd must go on.
    int16_t slot = b.coord_slot("poly coord 1");
    b.lit(key, "poly\": [", slot);
    for (int i = 1; i < 6; ++i) {
      const int16_t then = b.add(Kind::kBytes, "after poly coord " + std::to_string(i));
      b.states[slot].after = then;
      slot = b.coord_slot("poly coord " + std::to_string(i + 1));
      b.lit(then, sep, slot);
    }
    const int16_t even = b.add(Kind::kBytes, "after an even poly coord count >= 6");
    const int16_t odd = b.add(Kind::kBytes, "after an odd poly coord count > 6");
    const int16_t odd_slot = b.coord_slot("poly coord (odd count)");
    const int16_t even_slot = b.coord_slot("poly coord (even count)");
    b.states[slot].after = even;
    b.lit(even, sep, odd_slot);
    b.lit(even, geometry_close, geometry_close_to);
    b.states[odd_slot].after = odd;
    b.lit(odd, sep, even_slot);
    b.states[even_slot].after = even;
  }
  Structure s;
  s.states = std::move(b.states);
  s.start = start;
  s.done = done;
  return s;
}

// ---------------------------------------------------------------------------------------------

enum TokenClass : uint8_t { kForbidden, kText, kCoordToken, kImEnd };

// The allowed ids of one (state, sub-state): ids are an allow list or a forbid list.
struct Mask {
  bool allow_list = true;
  std::vector<int32_t> ids;
};

class Grammar {
 public:
  Grammar(const tokenizer::Tokenizer& tok, const CoordJsonConstraintOptions& options)
      : structure_(build_structure(options.field_order, options.geometry)),
        vocab_rows_(options.vocab_rows) {
    const tokenizer::CoordVocab& coords = tok.coord_vocab();
    COORDEXP_CHECK(coords.valid(), "constrained decoding needs the coord tokens in the tokenizer");
    const auto tok_size = static_cast<int64_t>(tok.vocab_size());
    COORDEXP_CHECK(vocab_rows_ >= tok_size, "vocab_rows " << vocab_rows_ << " is below the tokenizer's "
                                                          << tok_size << " ids");
    klass_.assign(static_cast<size_t>(vocab_rows_), kForbidden);
    offsets_.assign(static_cast<size_t>(vocab_rows_) + 1, 0);
    const tokenizer::TokenId im_end = tok.im_end_id();
    for (int64_t id = 0; id < vocab_rows_; ++id) {
      offsets_[id] = static_cast<uint32_t>(bytes_.size());
      if (id >= tok_size) continue;
      const auto tid = static_cast<tokenizer::TokenId>(id);
      if (tid == im_end) {
        klass_[id] = kImEnd;
      } else if (coords.is_coord(tid)) {
        klass_[id] = kCoordToken;
      } else if (tid != coords.wildcard_id && !tok.is_special(tid)) {
        const std::string b = tok.token_bytes(tid);
        if (b.empty()) continue;
        klass_[id] = kText;
        bytes_ += b;
        by_first_byte_[static_cast<uint8_t>(b[0])].push_back(static_cast<int32_t>(id));
      }
    }
    offsets_[vocab_rows_] = static_cast<uint32_t>(bytes_.size());
  }

  int16_t start() const { return structure_.start; }
  int16_t done_state() const { return structure_.done; }
  int64_t vocab_rows() const { return vocab_rows_; }
  TokenClass klass(int64_t id) const { return klass_[id]; }
  const GState& state(int16_t s) const { return structure_.states[s]; }

  std::string_view bytes(int64_t id) const {
    return std::string_view(bytes_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }

  // Runs a text token's bytes from (st, sub). False (state untouched) when a byte is not allowed.
  bool consume(std::string_view b, int16_t& st, uint16_t& sub) const {
    int16_t s = st;
    uint16_t d = sub;
    for (const char ch : b) {
      const auto c = static_cast<uint8_t>(ch);
      const GState& g = structure_.states[s];
      if (g.kind == Kind::kBytes) {
        s = g.next[c];
        if (s < 0) return false;
        d = 0;  // entering the desc starts from the empty sub-state
      } else if (g.kind == Kind::kDesc) {
        const uint32_t r = desc_step(d, c);
        if (r == kDescFail) return false;
        if (r == kDescClose) {
          s = g.after;
          d = 0;
        } else {
          d = static_cast<uint16_t>(r);
        }
      } else {
        return false;  // a coord slot or the end: no text fits
      }
    }
    st = s;
    sub = d;
    return true;
  }

  // The mask of (st, sub), computed on first use.
  const Mask& mask(int16_t st, uint16_t sub) const {
    const uint32_t key = (static_cast<uint32_t>(st) << 16) | sub;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return *it->second;
    return *cache_.emplace(key, compute(st, sub)).first->second;
  }

  std::string describe(int16_t st, uint16_t sub) const {
    std::ostringstream os;
    os << structure_.states[st].where;
    if (structure_.states[st].kind == Kind::kDesc) {
      const Sub s = Sub::unpack(sub);
      os << " (utf8 " << s.utf8 << ", escape " << s.esc << ", nonblank " << s.nonblank << ")";
    }
    return os.str();
  }

 private:
  std::unique_ptr<Mask> compute(int16_t st, uint16_t sub) const {
    std::vector<int32_t> allowed;
    const GState& g = structure_.states[st];
    const int64_t v = vocab_rows_;
    if (g.kind == Kind::kCoord) {
      for (int64_t id = 0; id < v; ++id)
        if (klass_[id] == kCoordToken) allowed.push_back(static_cast<int32_t>(id));
    } else if (g.kind == Kind::kEnd || g.kind == Kind::kDone) {
      for (int64_t id = 0; id < v; ++id)
        if (klass_[id] == kImEnd) allowed.push_back(static_cast<int32_t>(id));
    } else {
      auto try_ids = [&](const std::vector<int32_t>& ids) {
        for (const int32_t id : ids) {
          int16_t s = st;
          uint16_t d = sub;
          if (consume(bytes(id), s, d)) allowed.push_back(id);
        }
      };
      for (int b = 0; b < 256; ++b)
        if (g.kind == Kind::kDesc || g.next[b] >= 0) try_ids(by_first_byte_[b]);
      std::sort(allowed.begin(), allowed.end());
    }
    COORDEXP_CHECK(!allowed.empty(), "no token is allowed in state " << describe(st, sub));
    auto m = std::make_unique<Mask>();
    if (static_cast<int64_t>(allowed.size()) * 2 <= v) {
      m->ids = std::move(allowed);
    } else {
      m->allow_list = false;
      size_t k = 0;
      for (int64_t id = 0; id < v; ++id) {
        if (k < allowed.size() && allowed[k] == id) ++k;
        else m->ids.push_back(static_cast<int32_t>(id));
      }
    }
    return m;
  }

  Structure structure_;
  int64_t vocab_rows_;
  std::vector<TokenClass> klass_;
  std::string bytes_;              // every text token's bytes, concatenated
  std::vector<uint32_t> offsets_;  // id -> its bytes in bytes_ (empty for non-text ids)
  std::array<std::vector<int32_t>, 256> by_first_byte_;  // text ids by first byte
  mutable std::mutex mutex_;
  mutable std::unordered_map<uint32_t, std::unique_ptr<Mask>> cache_;
};

class CoordJsonRow : public RowConstraint {
 public:
  explicit CoordJsonRow(std::shared_ptr<const Grammar> g) : g_(std::move(g)), st_(g_->start()) {}

  void allowed(std::vector<uint8_t>& allowed_V) const override {
    COORDEXP_CHECK(static_cast<int64_t>(allowed_V.size()) == g_->vocab_rows(),
                   "allowed() got " << allowed_V.size() << " rows, the constraint was made for "
                                    << g_->vocab_rows());
    const Mask& m = g_->mask(st_, sub_);
    uint8_t* out = allowed_V.data();
    if (!m.allow_list) {
      for (const int32_t id : m.ids) out[id] = 0;
      return;
    }
    // Keep only the listed ids, each with the value it had.
    thread_local std::vector<uint8_t> kept;
    kept.resize(m.ids.size());
    for (size_t k = 0; k < m.ids.size(); ++k) kept[k] = out[m.ids[k]];
    std::memset(out, 0, allowed_V.size());
    for (size_t k = 0; k < m.ids.size(); ++k) out[m.ids[k]] = kept[k];
  }

  void advance(int64_t id) override {
    COORDEXP_CHECK(id >= 0 && id < g_->vocab_rows(), "token id " << id << " outside the logit rows");
    const GState& g = g_->state(st_);
    bool ok = false;
    switch (g_->klass(id)) {
      case kCoordToken:
        ok = g.kind == Kind::kCoord;
        if (ok) st_ = g.after;
        break;
      case kImEnd:
        ok = g.kind == Kind::kEnd || g.kind == Kind::kDone;
        if (ok) st_ = g_->done_state();
        break;
      case kText: ok = g_->consume(g_->bytes(id), st_, sub_); break;
      case kForbidden: break;
    }
    if (!ok)
      throw InternalError("constrained decoding: token id " + std::to_string(id) +
                          " was chosen but is not allowed in state " + g_->describe(st_, sub_));
  }

 private:
  std::shared_ptr<const Grammar> g_;
  int16_t st_;
  uint16_t sub_ = 0;
};

class CoordJsonFactory : public ConstraintFactory {
 public:
  explicit CoordJsonFactory(std::shared_ptr<const Grammar> g) : g_(std::move(g)) {}
  std::unique_ptr<RowConstraint> make_row() const override { return std::make_unique<CoordJsonRow>(g_); }

 private:
  std::shared_ptr<const Grammar> g_;
};

}  // namespace

std::unique_ptr<ConstraintFactory> make_coordjson_constraint(const tokenizer::Tokenizer& tok,
                                                             const CoordJsonConstraintOptions& options) {
  return std::make_unique<CoordJsonFactory>(std::make_shared<const Grammar>(tok, options));
}

}  // namespace coordexp::rollout
