// Character-range -> token-range mapping and token typing (see labeling.h).
#include "labeling.h"

#include <algorithm>

#include "coordexp/util/error.h"

namespace coordexp::protocol::detail {

TokenLayout contiguous_layout(const std::vector<uint32_t>& offsets) {
  COORDEXP_CHECK(!offsets.empty());
  TokenLayout l;
  l.begin.assign(offsets.begin(), offsets.end() - 1);
  l.end.assign(offsets.begin() + 1, offsets.end());
  return l;
}

TokenRange tokens_overlapping(const TokenLayout& layout, CharRange chars) {
  const auto first = std::upper_bound(layout.end.begin(), layout.end.end(), chars.begin) -
                     layout.end.begin();
  if (chars.empty()) return {static_cast<int32_t>(first), static_cast<int32_t>(first)};
  const auto last = std::lower_bound(layout.begin.begin(), layout.begin.end(), chars.end) -
                    layout.begin.begin();
  return {static_cast<int32_t>(first), static_cast<int32_t>(std::max(first, last))};
}

int32_t token_at(const TokenLayout& layout, uint32_t pos) {
  const TokenRange r = tokens_overlapping(layout, {pos, pos + 1});
  COORDEXP_CHECK(!r.empty(), "no token covers byte " << pos);
  return r.begin;
}

ObjectSpan object_span(const TokenLayout& layout, const std::vector<tokenizer::TokenId>& ids,
                       const ObjectChars& chars, const tokenizer::CoordVocab& vocab) {
  ObjectSpan span;
  span.tokens = tokens_overlapping(layout, chars.record);
  span.desc = tokens_overlapping(layout, chars.desc);
  span.coord_positions.reserve(chars.coords.size());
  for (const CharRange& c : chars.coords) {
    const TokenRange t = tokens_overlapping(layout, c);
    if (t.size() == 1 && vocab.is_coord(ids[t.begin]) && layout.begin[t.begin] == c.begin &&
        layout.end[t.begin] == c.end)
      span.coord_positions.push_back(t.begin);
  }
  return span;
}

std::vector<TokenType> token_types(const TokenLayout& layout,
                                   const std::vector<tokenizer::TokenId>& ids,
                                   const std::vector<const ObjectChars*>& objects,
                                   const tokenizer::CoordVocab& vocab) {
  std::vector<TokenType> types(ids.size(), TokenType::kStruct);
  for (const ObjectChars* o : objects) {
    const TokenRange d = tokens_overlapping(layout, o->desc);
    for (int32_t i = d.begin; i < d.end; ++i) types[i] = TokenType::kDesc;
  }
  for (size_t i = 0; i < ids.size(); ++i)
    if (vocab.is_coord(ids[i])) types[i] = TokenType::kCoord;
  return types;
}

TokenizedAnswer finish_answer(std::string text, std::vector<tokenizer::TokenId> ids,
                              const TokenLayout& layout,
                              const std::vector<const ObjectChars*>& objects, uint32_t array_close,
                              uint32_t outer_close, const tokenizer::Tokenizer& tok) {
  const tokenizer::CoordVocab& vocab = tok.coord_vocab();
  COORDEXP_CHECK(vocab.valid(), "the tokenizer has no coord tokens (call ensure_coord_tokens)");
  TokenizedAnswer a;
  ResponseLayout& l = a.layout;
  l.types = token_types(layout, ids, objects, vocab);
  l.objects.reserve(objects.size());
  for (const ObjectChars* o : objects) l.objects.push_back(object_span(layout, ids, *o, vocab));
  l.array_close = token_at(layout, array_close);
  l.object_close = token_at(layout, outer_close);
  a.text = std::move(text);
  a.ids = std::move(ids);
  l.eos = static_cast<int32_t>(a.ids.size());
  a.ids.push_back(tok.im_end_id());
  l.types.push_back(TokenType::kEos);
  return a;
}

TokenLayout layout_of(const std::vector<tokenizer::Token>& tokens, uint32_t shift) {
  TokenLayout l;
  l.begin.reserve(tokens.size());
  l.end.reserve(tokens.size());
  for (const auto& t : tokens) {
    l.begin.push_back(t.begin + shift);
    l.end.push_back(t.end + shift);
  }
  return l;
}

size_t first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (int k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

bool is_valid_utf8(std::string_view s) { return first_invalid_utf8(s) == std::string_view::npos; }

}  // namespace coordexp::protocol::detail
