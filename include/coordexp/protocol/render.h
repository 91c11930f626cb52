// Renders GT objects into the answer the model is trained on (y_GT): the CoordJSON text tokenized
// once as a whole (exactly the ids the tokenizer gives for the full text, as at inference) plus
// <|im_end|>, with a token type per id and a span per object. No chat template (prompt) and no
// LibTorch here.
#pragma once

#include <vector>

#include "coordexp/protocol/coordjson.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::protocol {

// A tokenized answer. Every index is an answer index (0 = first answer token); add the prompt
// length for positions in the full sequence.
struct TokenizedAnswer {
  std::string text;                      // answer text without <|im_end|>
  std::vector<tokenizer::TokenId> ids;   // answer ids; the last one is <|im_end|>
  // Types (one per id, mutually exclusive, seed 5.5.1), one span per object in sequence order, the
  // tokens holding the top-level `]` and the outermost `}` (found by layout, not by a "last }"
  // heuristic) and <|im_end|> (= ids.size() - 1).
  ResponseLayout layout;
};

// y_GT for `objects` in the given order: spans carry each object's geometry kind, subset
// kUnassigned and no gt_box (the data pipeline fills those). Objects must satisfy
// append_object_record's precondition.
TokenizedAnswer render_answer(const std::vector<Object>& objects, const tokenizer::Tokenizer& tok,
                              FieldOrder order);

}  // namespace coordexp::protocol
