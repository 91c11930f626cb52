// Hugging Face tokenizer.json byte-level BPE (the Qwen2/Qwen3 family) without LibTorch: added
// tokens split out first (longest match), NFC normalization, regex pre-tokenization (PCRE2, UCP),
// ByteLevel mapping, ranked BPE merges with a per-word cache, ByteLevel decoding. Produces exactly
// the ids Hugging Face produces. Also owns the coord vocabulary (<|coord_*|>, <|coord_0..999|>).
// Thread-safe: encode/decode may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coordexp::tokenizer {

using TokenId = int32_t;

// One token of an encoding: id and the byte span [begin, end) of the INPUT text it came from.
// For a token produced from inside a multi-byte character the span covers the whole character.
struct Token {
  TokenId id;
  uint32_t begin;
  uint32_t end;
};

// Coord vocabulary facts shared with protocol/coord/model as a small value struct.
struct CoordVocab {
  TokenId wildcard_id = -1;  // <|coord_*|>
  TokenId first_id = -1;     // <|coord_0|>; <|coord_k|> = first_id + k
  static constexpr int kNumBins = 1000;
  bool valid() const { return first_id >= 0; }
  bool is_coord(TokenId id) const { return id >= first_id && id < first_id + kNumBins; }
  int coord_value(TokenId id) const { return id - first_id; }  // precondition: is_coord(id)
  TokenId coord_id(int k) const { return first_id + k; }       // precondition: 0 <= k < 1000
};

class Tokenizer {
 public:
  // Loads `dir`/tokenizer.json (+ tokenizer_config.json when present). Throws FormatError naming
  // the file and the unsupported component / malformed field.
  static std::shared_ptr<Tokenizer> from_dir(const std::string& dir);
  static std::shared_ptr<Tokenizer> from_file(const std::string& tokenizer_json_path);
  ~Tokenizer();

  // Encodes UTF-8 text (no special tokens are added). Added/special tokens in the text are
  // recognized. Throws DataError on invalid UTF-8, naming the byte offset.
  std::vector<TokenId> encode(std::string_view text) const;
  std::vector<Token> encode_with_offsets(std::string_view text) const;

  // Decodes ids to text; invalid byte sequences become U+FFFD like HF. Throws DataError for an
  // id that is not in the vocabulary.
  std::string decode(const std::vector<TokenId>& ids, bool skip_special_tokens = false) const;
  // The token's surface text (added tokens: their content; BPE tokens: their decoded bytes, which
  // may be an incomplete UTF-8 sequence).
  std::string token_bytes(TokenId id) const;

  // Id of an added token (by content) or a vocab token (in its tokenizer.json spelling, "Ġthe").
  std::optional<TokenId> token_to_id(std::string_view token) const;
  size_t vocab_size() const;  // max id + 1 over vocab and added tokens
  bool is_special(TokenId id) const;

  // Coord tokens: present after from_dir when the file has them (loading fails if only some
  // exist or their ids are not contiguous); ensure_coord_tokens() adds all 1001 when missing
  // (<|coord_*|> at the current vocab_size(), then <|coord_0|>..<|coord_999|>; non-special, so
  // decode(skip_special_tokens) keeps them). Not to be called concurrently with encode.
  const CoordVocab& coord_vocab() const;
  void ensure_coord_tokens();
  // Writes tokenizer.json (the source file with only its added_tokens array replaced, so the
  // coord tokens, if added) and tokenizer_config.json (if the source had one; coord tokens added
  // to added_tokens_decoder) to `dir`, created if missing.
  void save(const std::string& dir) const;

  // Well-known ids (throw FormatError if the tokenizer lacks them).
  TokenId im_start_id() const;
  TokenId im_end_id() const;
  TokenId endoftext_id() const;

  // Where the tokenizer was loaded from (tokenizer.json path).
  const std::string& source_path() const;
  // True when the pre-tokenizer regex runs with the PCRE2 JIT (false: interpreter fallback).
  bool regex_uses_jit() const;

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coordexp::tokenizer
