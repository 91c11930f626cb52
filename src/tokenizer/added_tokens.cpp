// Trie construction and leftmost-longest scanning for added tokens. The trie is keyed by bytes;
// a position whose byte starts no token is skipped with one table lookup.
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace coordexp::tokenizer::detail {
namespace {

// Start of the run of whitespace that ends at `end` (HF: space_leftmost_at_end).
size_t whitespace_run_start(std::string_view text, size_t end) {
  size_t start = end;
  while (start > 0) {
    size_t b = start - 1;
    while (b > 0 && is_continuation(static_cast<unsigned char>(text[b]))) --b;
    size_t i = b;
    if (!is_unicode_whitespace(next_code_point(text, i))) break;
    start = b;
  }
  return start;
}

// End of the run of whitespace that starts at `begin` (HF: space_rightmost_at_start).
size_t whitespace_run_end(std::string_view text, size_t begin) {
  size_t end = begin;
  while (end < text.size()) {
    size_t i = end;
    if (!is_unicode_whitespace(next_code_point(text, i))) break;
    end = i;
  }
  return end;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<const AddedToken*>& tokens) {
  for (const AddedToken* t : tokens) {
    if (t->content.empty()) continue;
    int32_t node = 0;
    for (const char c : t->content) {
      const auto b = static_cast<uint8_t>(c);
      int32_t next = child(node, b);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
        auto& ch = nodes_[node].children;
        ch.insert(std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, int32_t{-1})), {b, next});
      }
      node = next;
    }
    if (nodes_[node].token < 0) {  // the same content twice: the first one wins
      nodes_[node].token = static_cast<int32_t>(tokens_.size());
      tokens_.push_back(*t);
    }
    can_start_[static_cast<uint8_t>(t->content[0])] = true;
  }
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t b) const {
  const auto& ch = nodes_[node].children;
  const auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, int32_t{-1}));
  return it != ch.end() && it->first == b ? it->second : -1;
}

void AddedTokenMatcher::find(std::string_view text, std::vector<AddedMatch>& out) const {
  if (empty()) return;
  size_t consumed = 0;  // end of the previous match (stripped whitespace included)
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    if (!can_start_[static_cast<uint8_t>(text[i])]) { ++i; continue; }
    int32_t node = 0, best = -1;
    size_t best_end = 0;
    for (size_t j = i; j < n; ++j) {
      node = child(node, static_cast<uint8_t>(text[j]));
      if (node < 0) break;
      if (nodes_[node].token >= 0) { best = nodes_[node].token; best_end = j + 1; }
    }
    if (best < 0) { ++i; continue; }
    const AddedToken& t = tokens_[best];
    size_t begin = i, end = best_end;
    if (t.lstrip) begin = std::max(whitespace_run_start(text, begin), consumed);
    if (t.rstrip) end = whitespace_run_end(text, end);
    out.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(end), t.id});
    consumed = i = end;
  }
}

}  // namespace coordexp::tokenizer::detail
