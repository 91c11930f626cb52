// Core of `coordexp-train expand-vocab` on the tokenizer side: copies a tokenizer directory with
// the coord tokens (<|coord_*|>, <|coord_0|>..<|coord_999|>) added right after the existing ids.
// Resizing a model's embeddings to the new vocabulary is not done here.
#pragma once

#include <cstddef>
#include <string>

#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::tokenizer {

struct ExpandVocabResult {
  CoordVocab coord;              // ids of the coord tokens in the written tokenizer
  size_t vocab_size_before = 0;  // max id + 1 in src
  size_t vocab_size_after = 0;   // max id + 1 in dst
  bool added = false;            // false: src already had all coord tokens (verified contiguous)
};

// Loads src_dir/tokenizer.json (+ tokenizer_config.json), ensures the coord tokens and writes both
// files to dst_dir (created if missing; may equal src_dir). Throws FormatError on a bad tokenizer
// or coord tokens that are present but not contiguous, DataError on I/O failure.
ExpandVocabResult expand_vocab_files(const std::string& src_dir, const std::string& dst_dir);

}  // namespace coordexp::tokenizer
