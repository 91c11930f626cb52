// coordexp-train make-tiny and expand-vocab end to end with the real Qwen3 tokenizer
// (COORDEXP_TOKENIZER_DIR, set by scripts/test.sh; falls back to <repo>/.cache/tokenizer-qwen3):
// the written model loads, round-trips byte-identically and runs; spec errors exit 2 naming the
// key and line; expand-vocab resizes the embeddings to the coord ids and keeps the trained rows.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "coordexp/model/qwen3vl.h"
#include "coordexp/tokenizer/tokenizer.h"
#include "coordexp/util/fs.h"
#include "coordexp/util/safetensors.h"
#include "common/run_binary.h"

namespace cm = coordexp::model;
namespace cu = coordexp::util;
namespace fs = std::filesystem;
using torch::indexing::None;
using torch::indexing::Slice;

namespace {

std::string tokenizer_dir() {
  if (const char* d = std::getenv("COORDEXP_TOKENIZER_DIR")) return d;
  return std::string(COORDEXP_SOURCE_DIR) + "/.cache/tokenizer-qwen3";
}

// The built binary in a child process (tests/common/run_binary.h).
coordexp::testing::CommandResult run(const std::string& args) { return coordexp::testing::run_binary(args); }

class MakeTiny : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(tokenizer_dir() + "/tokenizer.json"))
      GTEST_SKIP() << "no tokenizer at " << tokenizer_dir() << " (run scripts/fetch-tokenizer.sh or scripts/test.sh)";
    dir_ = fs::temp_directory_path() / ("coordexp_make_tiny_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

}  // namespace

TEST_F(MakeTiny, WritesALoadableModelThatRoundTrips) {
  const std::string spec = std::string(COORDEXP_TEST_DATA_DIR) + "/make_tiny/tiny.yaml";
  auto r = run("make-tiny --spec " + spec + " --tokenizer " + tokenizer_dir() + " --out " + path("m"));
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"})
    EXPECT_TRUE(fs::exists(path("m") + "/" + f)) << f;
  auto tok = coordexp::tokenizer::Tokenizer::from_dir(path("m"));
  auto m = cm::Qwen3VL::load(path("m"));
  EXPECT_EQ(m.config().text.vocab_size, static_cast<int64_t>(tok->vocab_size()));
  EXPECT_EQ(m.config().image_token_id, *tok->token_to_id("<|image_pad|>"));
  EXPECT_FALSE(m.named_parameters().count("lm_head.weight"));  // tied in the spec
  auto pp = nlohmann::json::parse(cu::read_file(path("m") + "/preprocessor_config.json"));
  EXPECT_EQ(pp["size"]["shortest_edge"], 65536);
  EXPECT_EQ(pp["merge_size"], 2);

  // Image + text forward; save and reload: byte-identical files, identical logits.
  torch::NoGradGuard no_grad;
  auto vision = m.encode_images(torch::rand({16, 1536}) * 2 - 1, torch::tensor({1, 4, 4}, torch::kLong).view({1, 3}));
  std::vector<int64_t> ids;
  for (auto t : tok->encode("<|im_start|>user\n<|vision_start|>")) ids.push_back(t);
  for (int i = 0; i < 4; ++i) ids.push_back(m.config().image_token_id);
  for (auto t : tok->encode("<|vision_end|>Where is the cat?<|im_end|>\n")) ids.push_back(t);
  cm::ForwardInputs in;
  in.input_ids = torch::tensor(ids, torch::kLong).unsqueeze(0);
  in.vision = &vision;
  in.logits = cm::LogitsRequest::all();
  auto logits = m.forward(in).logits;
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
  m.save(path("copy"));
  EXPECT_EQ(cu::read_file(path("copy") + "/model.safetensors"), cu::read_file(path("m") + "/model.safetensors"));
  EXPECT_EQ(cu::read_file(path("copy") + "/config.json"), cu::read_file(path("m") + "/config.json"));
  auto back = cm::Qwen3VL::load(path("copy"));
  EXPECT_TRUE(back.forward(in).logits.equal(logits));
}

TEST_F(MakeTiny, SpecErrorsNameKeyAndLine) {
  std::ofstream(path("bad.yaml")) << "seed: 1\ntext:\n  hidden_size: 64\n  hiden_layers: 2\n";
  auto r = run("make-tiny --spec " + path("bad.yaml") + " --tokenizer " + tokenizer_dir() + " --out " + path("x"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.yaml:4: key text.hiden_layers: unknown key"), std::string::npos) << r.output;
  std::ofstream(path("bad2.yaml")) << "text:\n  hidden_size: 64\n  head_dim: 16\n  mrope_section: [4, 4, 4]\n";
  r = run("make-tiny --spec " + path("bad2.yaml") + " --tokenizer " + tokenizer_dir() + " --out " + path("x"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("mrope_section: entries must sum to head_dim / 2 = 8"), std::string::npos) << r.output;
}

TEST_F(MakeTiny, ExpandVocabResizesTheModel) {
  const std::string spec = std::string(COORDEXP_TEST_DATA_DIR) + "/make_tiny/tiny.yaml";
  ASSERT_EQ(run("make-tiny --spec " + spec + " --tokenizer " + tokenizer_dir() + " --out " + path("m")).code, 0);
  auto r = run("expand-vocab --src " + path("m") + " --dst " + path("e") + " --init digits");
  ASSERT_EQ(r.code, 0) << r.output;
  auto tok = coordexp::tokenizer::Tokenizer::from_dir(path("e"));
  const auto& cv = tok->coord_vocab();
  ASSERT_TRUE(cv.valid());
  auto m = cm::Qwen3VL::load(path("e"));
  EXPECT_EQ(m.config().text.vocab_size, cv.first_id + 1000);
  EXPECT_TRUE(fs::exists(path("e") + "/preprocessor_config.json"));
  auto before = cu::SafetensorsFile::open(path("m") + "/model.safetensors")->tensor("model.language_model.embed_tokens.weight");
  auto after = m.module()->language_model->embed_tokens->weight.detach();
  EXPECT_TRUE(after.index({Slice(0, before.size(0))}).equal(before));
  // "digits": <|coord_42|> sits near the mean of the rows of "4" and "2" (noise 0.02 x row std).
  auto digits = (before[*tok->token_to_id("4")] + before[*tok->token_to_id("2")]) / 2;
  auto gap = (after[cv.coord_id(42)] - digits).abs().max().item<double>();
  EXPECT_LT(gap, 0.2 * before.std().item<double>());
  EXPECT_GT(gap, 0.0);
  torch::NoGradGuard no_grad;
  cm::ForwardInputs in;
  in.input_ids = torch::tensor({int64_t(cv.coord_id(0)), int64_t(cv.coord_id(999)), int64_t(cv.wildcard_id)}).unsqueeze(0);
  EXPECT_EQ(m.forward(in).logits.size(1), cv.first_id + 1000);

  // --reinit-coord-rows --init ordinal on the expanded model: only the coord block changes.
  r = run("expand-vocab --src " + path("e") + " --dst " + path("o") + " --init ordinal --reinit-coord-rows");
  ASSERT_EQ(r.code, 0) << r.output;
  auto o = cm::Qwen3VL::load(path("o"));
  auto ord = o.module()->language_model->embed_tokens->weight.detach();
  ASSERT_EQ(ord.sizes(), after.sizes());
  const int64_t block = cv.wildcard_id == cv.first_id - 1 ? cv.wildcard_id : cv.first_id;
  EXPECT_TRUE(ord.index({Slice(0, block)}).equal(after.index({Slice(0, block)})));
  EXPECT_FALSE(ord.index({Slice(cv.first_id, None)}).equal(after.index({Slice(cv.first_id, None)})));
  auto sim = [&](int a, int b) {
    return torch::cosine_similarity(ord[cv.coord_id(a)] - ord.index({Slice(0, block)}).mean(0),
                                    ord[cv.coord_id(b)] - ord.index({Slice(0, block)}).mean(0), 0).item<double>();
  };
  EXPECT_GT(sim(300, 301), sim(300, 700));
}
