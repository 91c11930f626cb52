// Qwen3-VL chat format (ChatML, docs: qwen3_vl_spec.md section 7): the prompt for one user turn
// with images and text (optional system turn), the assistant prefix, and the training sequence
// prompt + answer + <|im_end|>, as text and as ids (HF tokenizes the whole rendered text; so do
// we). The number of <|image_pad|> tokens per image is an input (it depends on the image grid).
// Does not compute image grids and does not know the CoordJSON protocol.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::tokenizer {

// One content item of the user turn, rendered in order.
struct ChatItem {
  enum class Kind { kImage, kText };
  Kind kind = Kind::kText;
  std::string text;        // kText: rendered verbatim
  int num_image_pads = 0;  // kImage: <|image_pad|> count (merged vision tokens), >= 1

  static ChatItem image(int num_image_pads) { return {Kind::kImage, {}, num_image_pads}; }
  static ChatItem plain_text(std::string text) { return {Kind::kText, std::move(text), 0}; }
};

struct ChatPrompt {
  std::optional<std::string> system;  // a system turn first when set (Qwen3-VL adds no default)
  std::vector<ChatItem> user;         // content of the single user turn
  bool add_vision_id = false;         // prefix image n (1-based) with "Picture n: " like HF
};

// The usual detection prompt: the images (pad counts in order), then the text.
ChatPrompt make_image_prompt(const std::vector<int>& image_pad_counts, std::string text,
                             std::optional<std::string> system = std::nullopt);

struct ChatSequence {
  std::string text;            // rendered text with every image's pads expanded
  std::vector<TokenId> ids;    // tokenizer.encode(text)
  std::vector<Token> tokens;   // the same ids with byte spans into `text`
  size_t answer_begin = 0;       // index into ids of the first answer token (== ids.size() for a prompt)
  size_t answer_text_begin = 0;  // byte offset in text where the answer starts (== text.size() for a prompt)
};

// System turn (optional) + user turn + the assistant prefix "<|im_start|>assistant\n".
// Throws DataError for an image with fewer than one pad token.
std::string render_chat_prompt(const ChatPrompt& prompt);

// The generation prompt (what inference feeds the model).
ChatSequence build_chat_prompt(const Tokenizer& tok, const ChatPrompt& prompt);

// prompt + answer + "<|im_end|>" (the training sequence). Throws DataError if the answer starts
// with a line break: HF would merge it with the prompt's final "\n" into one token, so the prompt
// ids would differ from what inference feeds.
ChatSequence build_chat_training_sequence(const Tokenizer& tok, const ChatPrompt& prompt, std::string_view answer);

}  // namespace coordexp::tokenizer
