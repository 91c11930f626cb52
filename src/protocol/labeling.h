// Private to src/protocol: maps character layouts (ObjectChars) onto tokens given each token's byte
// range, and assigns token types. Shared by the renderer, the id parser and the y_in builder so
// all three apply one rule. Also a strict UTF-8 validator.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coordexp/protocol/coordjson.h"
#include "coordexp/protocol/render.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::protocol::detail {

// Byte range of every token in the text: token i covers [begin[i], end[i]). Both arrays are
// non-decreasing (tokens from inside one multi-byte character share its whole range).
struct TokenLayout {
  std::vector<uint32_t> begin;
  std::vector<uint32_t> end;
  size_t size() const { return begin.size(); }
};

// Layout of contiguous tokens with byte offsets `offsets` (size n + 1).
TokenLayout contiguous_layout(const std::vector<uint32_t>& offsets);

// Tokens overlapping `chars`. For an empty range: the empty range at the first token ending after
// chars.begin.
TokenRange tokens_overlapping(const TokenLayout& layout, CharRange chars);

// Index of the first token containing byte `pos` (precondition: some token does).
int32_t token_at(const TokenLayout& layout, uint32_t pos);

// Span of one record: tokens overlapping it, tokens overlapping its desc content, and the position
// of each coord literal that is exactly one coord-token id.
ObjectSpan object_span(const TokenLayout& layout, const std::vector<tokenizer::TokenId>& ids,
                       const ObjectChars& chars, const tokenizer::CoordVocab& vocab);

// Token types for `ids` (no EOS among them): kCoord by id; kDesc for tokens overlapping any desc
// content range (a token straddling a desc boundary counts as desc); kStruct otherwise.
std::vector<TokenType> token_types(const TokenLayout& layout,
                                   const std::vector<tokenizer::TokenId>& ids,
                                   const std::vector<const ObjectChars*>& objects,
                                   const tokenizer::CoordVocab& vocab);

// Labels `ids` (text tokens, no EOS) laid out by `layout` over `text`, whose records are `objects`
// and whose top-level `]` / `}` sit at the given bytes; appends <|im_end|>. Shared by render_answer
// and the y_in builder.
TokenizedAnswer finish_answer(std::string text, std::vector<tokenizer::TokenId> ids,
                              const TokenLayout& layout,
                              const std::vector<const ObjectChars*>& objects, uint32_t array_close,
                              uint32_t outer_close, const tokenizer::Tokenizer& tok);

// Layout of encode_with_offsets tokens, shifted by `shift` bytes.
TokenLayout layout_of(const std::vector<tokenizer::Token>& tokens, uint32_t shift);

// Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view s);
// Offset of the first byte that starts no valid UTF-8 sequence; npos when s is valid.
size_t first_invalid_utf8(std::string_view s);

}  // namespace coordexp::protocol::detail
