// Config section `tokenizer`: where the Hugging Face tokenizer files come from and whether the
// coord vocabulary is added. Plain values only (the config layer cannot see the tokenizer module);
// apps/ turns them into a loaded coordexp::tokenizer::Tokenizer.
#pragma once

#include <string>

#include "coordexp/config/field.h"
#include "coordexp/util/error.h"

namespace coordexp::config {

struct TokenizerOptions {
  // Directory holding tokenizer.json (+ tokenizer_config.json); "" = the model directory.
  std::string path;
  // Ensure <|coord_*|> and <|coord_0|>..<|coord_999|> exist (added right after the last id when
  // missing; verified contiguous when present). Off only for plain-text experiments.
  bool add_coord_tokens = true;
  // Fail unless the coord tokens start at exactly this id (<|coord_*|>); -1 = any id. The public
  // CoordExp Qwen3-VL checkpoints use 151669.
  int expected_coord_wildcard_id = -1;

  void validate() const {
    if (expected_coord_wildcard_id < -1)
      throw ConfigError("must be -1 (any) or a token id >= 0, got " + std::to_string(expected_coord_wildcard_id),
                        "tokenizer.expected_coord_wildcard_id", "use 151669 for the Qwen3-VL layout or -1");
    if (expected_coord_wildcard_id >= 0 && !add_coord_tokens)
      throw ConfigError("an expected coord id needs the coord tokens", "tokenizer.expected_coord_wildcard_id",
                        "set tokenizer.add_coord_tokens: true or expected_coord_wildcard_id: -1");
  }
};

template <class V>
void visit_fields(V& v, TokenizerOptions& o) {
  v.field(Field("path", "directory with tokenizer.json (+ tokenizer_config.json); empty = the model directory"),
          o.path);
  v.field(Field("add_coord_tokens",
                "ensure <|coord_*|>, <|coord_0|>..<|coord_999|> exist (added after the last id when missing)"),
          o.add_coord_tokens);
  v.field(Field("expected_coord_wildcard_id",
                "fail unless <|coord_*|> has this id (151669 for Qwen3-VL CoordExp checkpoints); -1 = any")
              .min(-1),
          o.expected_coord_wildcard_id);
}

}  // namespace coordexp::config
