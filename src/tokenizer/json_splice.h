// Replaces the value of one top-level key in a JSON document's text, leaving every other byte as
// it was (tokenizer.json is 11 MB; re-serializing it would reorder or reformat the vocabulary).
// A minimal scanner, not a parser: the document is assumed valid (it was parsed before).
#pragma once

#include <string>
#include <string_view>

namespace coordexp::tokenizer::detail {

// Returns `document` with the value of top-level `key` replaced by `replacement` (JSON text).
// Throws FormatError naming `path` if the document is not an object or lacks the key.
std::string replace_top_level_value(std::string_view document, std::string_view key, std::string_view replacement,
                                    const std::string& path);

}  // namespace coordexp::tokenizer::detail
