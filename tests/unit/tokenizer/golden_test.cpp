// Parity with the references: every line of tests/data/tokenizer_golden.jsonl (ids from the JS
// reference, cross-checked against Hugging Face's Rust tokenizer by the generator), the inputs where
// the JS reference differs from HF (we match HF), and decode(encode(x)) == NFC(x) for all of them.
#include <utf8proc.h>

#include <cstdlib>
#include <map>

#include "tokenizer_test_util.h"

namespace coordexp::tokenizer::testing {
namespace {

// NFC straight from utf8proc (the text may hold NUL bytes, so not utf8proc_NFC).
std::string nfc_reference(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                              &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::string r = n >= 0 ? std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n)) : "(utf8proc error)";
  std::free(out);
  return r;
}

std::string ids_str(const std::vector<TokenId>& ids) {
  std::string s;
  for (const TokenId id : ids) s += std::to_string(id) + ",";
  return s;
}

TEST(TokenizerGolden, MatchesEveryLine) {
  REQUIRE_QWEN(tok);
  const auto& cases = golden_cases();
  ASSERT_GE(cases.size(), 300u);
  std::map<std::string, int> per_category;
  int mismatches = 0;
  for (const auto& c : cases) {
    ++per_category[c.category];
    const auto ids = tok->encode(c.text);
    if (ids != c.ids) {
      ++mismatches;
      ADD_FAILURE() << "[" << c.category << "] " << nlohmann::json(c.text).dump() << "\n  want " << ids_str(c.ids)
                    << "\n  got  " << ids_str(ids);
    }
  }
  EXPECT_EQ(mismatches, 0);
  for (const char* cat : {"empty", "english", "code", "coordjson", "cjk", "emoji", "nfc", "digits", "contractions",
                          "whitespace", "special_tokens", "misc", "random"})
    EXPECT_GT(per_category[cat], 0) << "golden file lacks category " << cat;
}

TEST(TokenizerGolden, FollowsHuggingFaceWhereTheJsReferenceDiffers) {
  REQUIRE_QWEN(tok);
  const auto cases = read_cases("tokenizer_hf_divergences.jsonl", "hf_ids");
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) EXPECT_EQ(tok->encode(c.text), c.ids) << nlohmann::json(c.text).dump();
}

TEST(TokenizerGolden, DecodeOfEncodeIsNfc) {
  REQUIRE_QWEN(tok);
  for (const auto& c : golden_cases()) {
    EXPECT_EQ(tok->decode(tok->encode(c.text)), nfc_reference(c.text)) << nlohmann::json(c.text).dump();
    EXPECT_EQ(tok->decode(c.ids), nfc_reference(c.text)) << nlohmann::json(c.text).dump();
  }
}

TEST(TokenizerGolden, SpecExampleIds) {
  REQUIRE_QWEN(tok);
  // qwen3_vl_spec.md section 1.4 lists these plain-text and special ids.
  EXPECT_EQ(tok->encode("user"), std::vector<TokenId>{872});
  EXPECT_EQ(tok->encode("assistant"), std::vector<TokenId>{77091});
  EXPECT_EQ(tok->encode("system"), std::vector<TokenId>{8948});
  EXPECT_EQ(tok->encode("\n"), std::vector<TokenId>{198});
  EXPECT_EQ(tok->endoftext_id(), 151643);
  EXPECT_EQ(tok->im_start_id(), 151644);
  EXPECT_EQ(tok->im_end_id(), 151645);
  EXPECT_EQ(tok->token_to_id("<|image_pad|>"), 151655);
  EXPECT_EQ(tok->token_to_id("<|vision_start|>"), 151652);
  EXPECT_EQ(tok->token_to_id("</think>"), 151668);
  EXPECT_TRUE(tok->is_special(151645));
  EXPECT_FALSE(tok->is_special(151668));  // <think> tokens are not special in Qwen3
  EXPECT_FALSE(tok->is_special(872));
}

}  // namespace
}  // namespace coordexp::tokenizer::testing
