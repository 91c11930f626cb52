// Core of `coordexp-train derive-tokenizer`: a smaller byte-level BPE tokenizer cut from a larger one
// (Qwen3's): the 256 single-byte tokens, the first M merges in priority order (any prefix of a
// ranked merge list is itself a valid BPE), every added/special token and the coord tokens,
// renumbered densely in source id order. Any text still encodes (unmerged bytes stay byte tokens).
#pragma once

#include <cstddef>
#include <string>

#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::tokenizer {

struct DeriveTokenizerResult {
  size_t source_vocab = 0;       // model.vocab entries in src
  size_t source_merges = 0;      // model.merges entries in src
  size_t kept_vocab = 0;         // model.vocab entries written (bytes + merge results)
  size_t kept_merges = 0;        // merges written
  size_t skipped_merges = 0;     // among the first M: merges using a token no kept merge makes (can never fire)
  size_t added_tokens = 0;       // added/special tokens carried over (coord tokens included when src had them)
  size_t vocab_size = 0;         // max id + 1 of the written tokenizer (coord tokens included)
  CoordVocab coord;              // ids of the coord tokens in the written tokenizer
};

// Reads src_dir/tokenizer.json (+ tokenizer_config.json), keeps the first `num_merges` merges and
// writes dst_dir/tokenizer.json and tokenizer_config.json (ids renumbered, coord tokens ensured).
// dst_dir must differ from src_dir. Throws ConfigError for num_merges outside 0..merges in src,
// FormatError for a tokenizer this project cannot load, DataError on I/O failure.
DeriveTokenizerResult derive_tokenizer_files(const std::string& src_dir, size_t num_merges, const std::string& dst_dir);

}  // namespace coordexp::tokenizer
