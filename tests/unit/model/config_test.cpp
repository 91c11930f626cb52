// Qwen3VLConfig: parsing of the fixture and of both rope spellings, unchanged round trip to the
// original bytes, preserved unknown keys, and error messages naming config.json and the key; the
// weight table against the published 2B parameter count (spec 2.4).
#include <gtest/gtest.h>

#include "coordexp/model/config.h"
#include "coordexp/model/weights.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace cm = coordexp::model;

namespace {

const std::string kFixture = std::string(COORDEXP_TEST_DATA_DIR) + "/qwen3vl-tiny-a";

std::string error_of(const std::string& text) {
  try {
    cm::Qwen3VLConfig::from_json_text(text, "config.json");
  } catch (const coordexp::FormatError& e) {
    return e.what();
  }
  return "(no error)";
}

// The official 2B config.json values (spec 1.2 / 1.3), v5 spelling of the rope fields.
const char* k2BConfig = R"({
  "architectures": ["Qwen3VLForConditionalGeneration"], "model_type": "qwen3_vl",
  "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
  "vision_end_token_id": 151653, "tie_word_embeddings": true,
  "text_config": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "hidden_act": "silu", "rms_norm_eps": 1e-06, "attention_bias": false,
    "rope_parameters": {"rope_type": "default", "rope_theta": 5000000, "mrope_section": [24, 20, 20],
                        "mrope_interleaved": true}},
  "vision_config": {"depth": 24, "hidden_size": 1024, "num_heads": 16, "intermediate_size": 4096,
    "hidden_act": "gelu_pytorch_tanh", "in_channels": 3, "patch_size": 16, "temporal_patch_size": 2,
    "spatial_merge_size": 2, "out_hidden_size": 2048, "num_position_embeddings": 2304,
    "deepstack_visual_indexes": [5, 11, 17]}
})";

}  // namespace

TEST(Qwen3VLConfig, ParsesFixtureAndRoundTripsBytes) {
  const std::string text = coordexp::util::read_file(kFixture + "/config.json");
  auto c = cm::Qwen3VLConfig::from_json_text(text, "config.json");
  EXPECT_EQ(c.text.vocab_size, 2051);
  EXPECT_EQ(c.text.head_dim, 16);
  EXPECT_EQ(c.text.mrope_section, (std::vector<int64_t>{4, 2, 2}));
  EXPECT_EQ(c.text.rope_theta, 5000000.0);
  EXPECT_EQ(c.text.rms_norm_eps, 1e-6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.vision.deepstack_visual_indexes, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(c.vision.pos_grid_side(), 8);
  EXPECT_EQ(c.image_token_id, 1036);
  EXPECT_EQ(c.to_json_text(), text);  // unchanged -> the original bytes

  c.text.vocab_size = 3000;  // a changed field is written back, unknown keys are preserved
  auto again = cm::Qwen3VLConfig::from_json_text(c.to_json_text(), "config.json");
  EXPECT_EQ(again.text.vocab_size, 3000);
  auto doc = nlohmann::json::parse(c.to_json_text());
  EXPECT_EQ(doc["text_config"]["initializer_range"], 0.02);
  EXPECT_EQ(doc["transformers_version"], "4.57.0");
  EXPECT_EQ(doc["text_config"]["rope_theta"], 5000000);
}

TEST(Qwen3VLConfig, RopeParametersSpellingAnd2BParameterCount) {
  auto c = cm::Qwen3VLConfig::from_json_text(k2BConfig, "config.json");
  EXPECT_EQ(c.text.rope_theta, 5000000.0);
  EXPECT_EQ(c.text.mrope_section, (std::vector<int64_t>{24, 20, 20}));
  // Spec 2.4: the stored tensors of Qwen3-VL-2B sum to the Hub's 2,127,532,032 parameters.
  int64_t total = 0;
  for (const auto& w : cm::weight_table(c)) {
    if (!w.tied_to.empty()) continue;
    int64_t n = 1;
    for (int64_t d : w.shape) n *= d;
    total += n;
  }
  EXPECT_EQ(total, 2127532032);
  auto doc = nlohmann::json::parse(c.to_json_text());
  EXPECT_FALSE(doc["text_config"].contains("rope_scaling"));  // keeps the v5 spelling
}

TEST(Qwen3VLConfig, ErrorsNameTheKey) {
  std::string base = coordexp::util::read_file(kFixture + "/config.json");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = base;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  std::string e = error_of(with("\"model_type\": \"qwen3_vl\"", "\"model_type\": \"qwen3_vl_moe\""));
  EXPECT_NE(e.find("config.json: key model_type"), std::string::npos) << e;
  EXPECT_NE(e.find("Mixture-of-Experts"), std::string::npos) << e;
  e = error_of(with("\"out_hidden_size\": 64", "\"out_hidden_size\": 65"));
  EXPECT_NE(e.find("key vision_config.out_hidden_size: must equal text_config.hidden_size (64)"), std::string::npos) << e;
  e = error_of(with("\"hidden_size\": 64", "\"hidden_size\": \"64\""));
  EXPECT_NE(e.find("key text_config.hidden_size: expected an integer"), std::string::npos) << e;
  e = error_of(with("\"mrope_section\": [\n        4,", "\"mrope_section\": [\n        5,"));
  EXPECT_NE(e.find("text_config.rope_scaling.mrope_section: entries must sum to head_dim / 2 = 8"), std::string::npos) << e;
  e = error_of(with("\"rope_type\": \"default\"", "\"rope_type\": \"yarn\""));
  EXPECT_NE(e.find("unsupported rope_type 'yarn'"), std::string::npos) << e;
  e = error_of("{not json");
  EXPECT_NE(e.find("config.json: invalid JSON"), std::string::npos) << e;
}
