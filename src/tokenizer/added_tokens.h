// Added tokens (special and not) of a tokenizer.json and the matcher that splits them out of text
// before normalization and BPE, with Hugging Face's semantics: leftmost match, longest match at
// that position, non-overlapping; lstrip/rstrip extend a match over adjacent Unicode whitespace.
// Matching is on bytes with a trie. Knows nothing about the BPE model.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coordexp::tokenizer::detail {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;  // matched on the normalized text instead of the raw input
  bool single_word = false;
};

struct AddedMatch {
  uint32_t begin, end;  // byte span in the searched text (includes stripped whitespace)
  int32_t id;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(const std::vector<const AddedToken*>& tokens);

  bool empty() const { return nodes_.size() <= 1; }
  // Appends the matches in valid UTF-8 `text`, left to right.
  void find(std::string_view text, std::vector<AddedMatch>& out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                 // index into tokens_ when a token ends here
  };
  int32_t child(int32_t node, uint8_t b) const;

  std::vector<Node> nodes_{Node{}};
  std::vector<AddedToken> tokens_;
  bool can_start_[256] = {};
};

}  // namespace coordexp::tokenizer::detail
