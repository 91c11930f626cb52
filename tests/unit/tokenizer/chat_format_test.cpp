// Qwen3-VL chat format against qwen3_vl_spec.md section 7: exact text and ids of the one-image
// example, system turn, several images, text before images, "Picture n: " ids, the training
// sequence (answer index, <|im_end|> at the end, prompt ids unchanged) and its error cases.
#include "coordexp/tokenizer/chat_format.h"
#include "coordexp/util/error.h"
#include "tokenizer_test_util.h"

namespace coordexp::tokenizer::testing {
namespace {

std::vector<TokenId> concat(std::initializer_list<std::vector<TokenId>> parts) {
  std::vector<TokenId> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(TokenizerChatFormat, SpecExampleTextAndIds) {
  REQUIRE_QWEN(tok);
  const ChatSequence s = build_chat_prompt(*tok, make_image_prompt({3}, "Describe this image."));
  EXPECT_EQ(s.text,
            "<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|><|image_pad|><|vision_end|>"
            "Describe this image.<|im_end|>\n<|im_start|>assistant\n");
  const auto want = concat({{151644, 872, 198, 151652, 151655, 151655, 151655, 151653},
                            tok->encode("Describe this image."),
                            {151645, 198, 151644, 77091, 198}});
  EXPECT_EQ(s.ids, want);
  EXPECT_EQ(tok->encode("Describe this image."), (std::vector<TokenId>{74785, 419, 2168, 13}));
  EXPECT_EQ(s.answer_begin, s.ids.size());
  EXPECT_EQ(s.answer_text_begin, s.text.size());
  ASSERT_EQ(s.tokens.size(), s.ids.size());
}

TEST(TokenizerChatFormat, SystemImagesAndOrder) {
  REQUIRE_QWEN(tok);
  ChatPrompt p = make_image_prompt({2, 1}, "Find the cats.", std::string("You are a detector."));
  EXPECT_EQ(render_chat_prompt(p),
            "<|im_start|>system\nYou are a detector.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|><|image_pad|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>"
            "Find the cats.<|im_end|>\n<|im_start|>assistant\n");
  const ChatSequence s = build_chat_prompt(*tok, p);
  EXPECT_EQ(std::vector<TokenId>(s.ids.begin(), s.ids.begin() + 3), (std::vector<TokenId>{151644, 8948, 198}));
  EXPECT_EQ(std::count(s.ids.begin(), s.ids.end(), 151655), 3);

  ChatPrompt text_first;
  text_first.user = {ChatItem::plain_text("Look: "), ChatItem::image(1)};
  text_first.add_vision_id = true;
  EXPECT_EQ(render_chat_prompt(text_first),
            "<|im_start|>user\nLook: Picture 1: <|vision_start|><|image_pad|><|vision_end|><|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_THROW(render_chat_prompt(make_image_prompt({0}, "x")), DataError);
}

TEST(TokenizerChatFormat, TrainingSequence) {
  REQUIRE_QWEN(tok);
  const ChatPrompt p = make_image_prompt({4}, "Locate the red rectangle.");
  const std::string answer =
      "{\"objects\": [{\"desc\": \"red rectangle\", \"bbox_2d\": [<|coord_150|>, <|coord_133|>, <|coord_450|>, "
      "<|coord_400|>]}]}";
  const ChatSequence prompt = build_chat_prompt(*tok, p);
  const ChatSequence s = build_chat_training_sequence(*tok, p, answer);
  EXPECT_EQ(s.text, prompt.text + answer + "<|im_end|>");
  EXPECT_EQ(s.answer_text_begin, prompt.text.size());
  ASSERT_EQ(s.answer_begin, prompt.ids.size());
  EXPECT_EQ(std::vector<TokenId>(s.ids.begin(), s.ids.begin() + static_cast<long>(s.answer_begin)), prompt.ids);
  EXPECT_EQ(std::vector<TokenId>(s.ids.begin() + static_cast<long>(s.answer_begin), s.ids.end()),
            concat({tok->encode(answer), {151645}}));
  EXPECT_EQ(s.ids.back(), tok->im_end_id());
  EXPECT_EQ(std::count_if(s.ids.begin(), s.ids.end(), [&](TokenId id) { return tok->coord_vocab().is_coord(id); }), 4);
  EXPECT_EQ(s.tokens[s.answer_begin].begin, s.answer_text_begin);

  // An empty answer is just <|im_end|>.
  const ChatSequence empty = build_chat_training_sequence(*tok, p, "");
  EXPECT_EQ(empty.answer_begin + 1, empty.ids.size());
  // A leading line break would merge with the prompt's final "\n": refused.
  EXPECT_THROW(build_chat_training_sequence(*tok, p, "\n{}"), DataError);
  EXPECT_NO_THROW(build_chat_training_sequence(*tok, p, " {}"));
}

}  // namespace
}  // namespace coordexp::tokenizer::testing
