// Renders the Qwen3-VL ChatML text (the official Instruct template, no default system prompt,
// no "<think>" block) and tokenizes it in one piece, then locates the answer among the tokens.
#include "coordexp/tokenizer/chat_format.h"

#include "coordexp/util/error.h"

namespace coordexp::tokenizer {

ChatPrompt make_image_prompt(const std::vector<int>& image_pad_counts, std::string text,
                             std::optional<std::string> system) {
  ChatPrompt p;
  p.system = std::move(system);
  for (const int n : image_pad_counts) p.user.push_back(ChatItem::image(n));
  p.user.push_back(ChatItem::plain_text(std::move(text)));
  return p;
}

std::string render_chat_prompt(const ChatPrompt& prompt) {
  std::string out;
  if (prompt.system) out += "<|im_start|>system\n" + *prompt.system + "<|im_end|>\n";
  out += "<|im_start|>user\n";
  int image_index = 0;
  for (const ChatItem& item : prompt.user) {
    if (item.kind == ChatItem::Kind::kText) {
      out += item.text;
      continue;
    }
    ++image_index;
    if (item.num_image_pads < 1)
      throw DataError("image " + std::to_string(image_index) + " has " + std::to_string(item.num_image_pads) +
                          " <|image_pad|> tokens", "chat prompt",
                      "an image needs (grid_h * grid_w) / merge_size^2 >= 1 pad tokens");
    if (prompt.add_vision_id) out += "Picture " + std::to_string(image_index) + ": ";
    out += "<|vision_start|>";
    out.reserve(out.size() + static_cast<size_t>(item.num_image_pads) * 13 + 16);
    for (int k = 0; k < item.num_image_pads; ++k) out += "<|image_pad|>";
    out += "<|vision_end|>";
  }
  out += "<|im_end|>\n<|im_start|>assistant\n";
  return out;
}

namespace {

// The chat format needs these as added tokens (not BPE text).
void check_chat_tokens(const Tokenizer& tok) {
  for (const char* t : {"<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"}) {
    const auto id = tok.token_to_id(t);
    if (!id || tok.token_bytes(*id) != t)
      throw FormatError(std::string("the tokenizer has no added token ") + t, tok.source_path(),
                        "use the Qwen3-VL tokenizer");
  }
}

ChatSequence tokenize(const Tokenizer& tok, std::string text, size_t answer_text_begin) {
  ChatSequence s;
  s.text = std::move(text);
  s.tokens = tok.encode_with_offsets(s.text);
  s.ids.reserve(s.tokens.size());
  for (const Token& t : s.tokens) s.ids.push_back(t.id);
  s.answer_text_begin = answer_text_begin;
  s.answer_begin = s.tokens.size();
  for (size_t i = 0; i < s.tokens.size(); ++i) {
    if (s.tokens[i].begin >= answer_text_begin) {
      s.answer_begin = i;
      break;
    }
    if (s.tokens[i].end > answer_text_begin)
      throw DataError("the answer's first token also covers the end of the prompt (token " + std::to_string(i) + ")",
                      "chat training sequence", "strip leading line breaks from the answer");
  }
  return s;
}

}  // namespace

ChatSequence build_chat_prompt(const Tokenizer& tok, const ChatPrompt& prompt) {
  check_chat_tokens(tok);
  std::string text = render_chat_prompt(prompt);
  const size_t end = text.size();
  return tokenize(tok, std::move(text), end);
}

ChatSequence build_chat_training_sequence(const Tokenizer& tok, const ChatPrompt& prompt, std::string_view answer) {
  check_chat_tokens(tok);
  std::string text = render_chat_prompt(prompt);
  const size_t answer_begin = text.size();
  text.append(answer);
  text += "<|im_end|>";
  return tokenize(tok, std::move(text), answer_begin);
}

}  // namespace coordexp::tokenizer
