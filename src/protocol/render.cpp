// y_GT rendering: text (coordjson.cpp) -> one encode_with_offsets -> token types and spans by
// character overlap (labeling.cpp).
#include "coordexp/protocol/render.h"

#include "coordexp/util/error.h"
#include "labeling.h"

namespace coordexp::protocol {

TokenizedAnswer render_answer(const std::vector<Object>& objects, const tokenizer::Tokenizer& tok,
                              FieldOrder order) {
  AnswerText text = render_text(objects, order);
  const std::vector<tokenizer::Token> tokens = tok.encode_with_offsets(text.text);
  std::vector<tokenizer::TokenId> ids;
  ids.reserve(tokens.size() + 1);
  for (const auto& t : tokens) ids.push_back(t.id);
  std::vector<const ObjectChars*> chars;
  for (const auto& o : text.objects) chars.push_back(&o);
  TokenizedAnswer a = detail::finish_answer(std::move(text.text), std::move(ids), detail::layout_of(tokens, 0),
                                            chars, text.array_close, text.outer_close, tok);
  for (size_t i = 0; i < objects.size(); ++i) a.layout.objects[i].geometry = objects[i].kind;
  return a;
}

}  // namespace coordexp::protocol
