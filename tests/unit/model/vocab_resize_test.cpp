// expand_embedding_rows and expand_checkpoint_vocab: trained rows kept bit for bit, new and
// reused padding rows follow the "mean", "digits" and "ordinal" rules with the stated noise, deterministic in
// the seed; the checkpoint version keeps every other tensor byte-identical and updates vocab_size.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "coordexp/model/qwen3vl.h"
#include "coordexp/model/vocab_resize.h"
#include "coordexp/util/error.h"
#include "coordexp/util/safetensors.h"

namespace cm = coordexp::model;
namespace cu = coordexp::util;
namespace fs = std::filesystem;
using torch::indexing::None;
using torch::indexing::Slice;

namespace {

// 40 rows: 30 trained, 10 untrained padding rows; coord wildcard 30, <|coord_k|> = 31 + k.
cm::CoordRows coord_rows() {
  cm::CoordRows r;
  r.coord.wildcard_id = 30;
  r.coord.first_id = 31;
  r.num_trained_rows = 30;
  for (int d = 0; d < 10; ++d) r.digit_ids[d] = 10 + d;
  return r;
}

}  // namespace

TEST(VocabResize, MeanAndDigitRules) {
  auto old = torch::randn({40, 8}, at::detail::createCPUGenerator(3), torch::kFloat);
  const auto rows = coord_rows();
  cm::VocabResizeOptions o;
  o.noise_scale = 0;
  auto mean_rows = cm::expand_embedding_rows(old, 1031, rows, o);
  ASSERT_EQ(mean_rows.sizes(), (std::vector<int64_t>{1031, 8}));
  EXPECT_TRUE(mean_rows.index({Slice(0, 30)}).equal(old.index({Slice(0, 30)})));
  auto mean = old.index({Slice(0, 30)}).to(torch::kDouble).mean(0).to(torch::kFloat);
  for (int64_t r : {30, 35, 39, 700, 1030}) EXPECT_TRUE(torch::allclose(mean_rows[r], mean, 0, 1e-6)) << r;

  o.init = "digits";
  auto digit_rows = cm::expand_embedding_rows(old, 1031, rows, o);
  auto digits_150 = (old[11].to(torch::kDouble) + old[15] + old[10]) / 3;  // "1", "5", "0"
  EXPECT_TRUE(torch::allclose(digit_rows[31 + 150], digits_150.to(torch::kFloat), 0, 1e-6));
  EXPECT_TRUE(torch::allclose(digit_rows[31 + 7], old[17], 0, 1e-6));
  EXPECT_TRUE(torch::allclose(digit_rows[30], mean, 0, 1e-6));  // the wildcard uses the mean rule

  // Noise: per-dimension std = noise_scale * std of the trained rows; same seed, same rows.
  o.init = "mean";
  o.noise_scale = 0.5;
  auto noisy = cm::expand_embedding_rows(old, 1031, rows, o);
  EXPECT_TRUE(noisy.equal(cm::expand_embedding_rows(old, 1031, rows, o)));
  auto dev = (noisy.index({Slice(30, None)}) - mean).to(torch::kDouble);
  auto ratio = dev.std(0) / old.index({Slice(0, 30)}).to(torch::kDouble).std(0, false);
  EXPECT_NEAR(ratio.mean().item<double>(), 0.5, 0.05);
  o.seed = 1;
  EXPECT_FALSE(noisy.equal(cm::expand_embedding_rows(old, 1031, rows, o)));

  o.init = "bogus";
  EXPECT_THROW(cm::expand_embedding_rows(old, 1031, rows, o), coordexp::ConfigError);
}

// "ordinal": coord row k = mean + scale * std (per dimension) * phi(k). phi is checked against the
// formula written out here, and for what it is for: neighbouring bins start with nearly the same
// row, far bins with unrelated rows, so the similarity falls with the bin distance.
TEST(VocabResize, OrdinalRuleGivesNeighbouringBinsSimilarRows) {
  const int64_t H = 64;
  auto old = torch::randn({40, H}, at::detail::createCPUGenerator(5), torch::kFloat) * 0.05 + 0.01;
  const auto rows = coord_rows();
  cm::VocabResizeOptions o;
  o.init = "ordinal";
  o.noise_scale = 0;
  o.ordinal_scale = 0.7;
  auto out = cm::expand_embedding_rows(old, 1031, rows, o).to(torch::kDouble);
  EXPECT_TRUE(out.index({Slice(0, 30)}).equal(old.index({Slice(0, 30)}).to(torch::kDouble)));
  auto base = old.index({Slice(0, 30)}).to(torch::kDouble);
  auto mean = base.mean(0), sd = base.std(0, false);
  EXPECT_TRUE(torch::allclose(out[30], mean, 0, 1e-6)) << "the wildcard uses the mean rule";
  for (int64_t k : {0, 1, 499, 998, 999}) {
    // phi(k)_d = sqrt(2) cos(w_f k / 999 - (d odd) pi / 2), w_f = pi 500^(f / (F - 1)), f = d / 2.
    auto phi = torch::empty({H}, torch::kDouble);
    for (int64_t d = 0; d < H; ++d) {
      const double w = M_PI * std::pow(500.0, static_cast<double>(d / 2) / (H / 2 - 1));
      phi[d] = std::sqrt(2.0) * std::cos(w * k / 999.0 - (d % 2 ? M_PI / 2 : 0.0));
    }
    EXPECT_TRUE(torch::allclose(cm::ordinal_coord_features(k, H), phi, 0, 1e-12)) << k;
    EXPECT_TRUE(torch::allclose(out[31 + k], mean + 0.7 * sd * phi, 0, 1e-6)) << k;
  }
  // Unit RMS per dimension over the 1000 bins (each dimension a sinusoid of k).
  std::vector<torch::Tensor> all;
  for (int64_t k = 0; k < 1000; ++k) all.push_back(cm::ordinal_coord_features(k, H));
  auto feats = torch::stack(all);
  EXPECT_NEAR(feats.pow(2).mean(0).sqrt().mean().item<double>(), 1.0, 0.02);
  // Similarity of phi(500) with phi(500 + delta) falls with delta.
  auto cos_sim = [&](int64_t a, int64_t b) {
    return torch::cosine_similarity(feats[a], feats[b], 0).item<double>();
  };
  EXPECT_GT(cos_sim(500, 501), 0.85);  // 0.897 at H = 64
  EXPECT_GT(cos_sim(500, 501), cos_sim(500, 505));
  EXPECT_GT(cos_sim(500, 505), cos_sim(500, 550));
  EXPECT_LT(std::abs(cos_sim(500, 900)), 0.3);
}

TEST(VocabResize, CheckpointKeepsOtherTensorsAndUpdatesConfig) {
  // An untied bf16 model whose vocabulary ends before the coord ids.
  auto cfg = cm::Qwen3VLConfig::from_dir(std::string(COORDEXP_TEST_DATA_DIR) + "/qwen3vl-tiny-a");
  cfg.text.vocab_size = 1040;
  cfg.tie_word_embeddings = false;
  auto m = cm::Qwen3VL::create(cfg);
  m.init_random(5, {0.05, 0.5, 0.02, 0.1});
  const fs::path src = fs::temp_directory_path() / ("coordexp_vocab_" + std::to_string(::getpid()));
  const fs::path dst = src.string() + "_out";
  m.save(src.string(), {torch::kBFloat16, 0});

  cm::CoordRows rows;
  rows.coord.wildcard_id = 1050;
  rows.coord.first_id = 1051;
  rows.num_trained_rows = 1038;  // rows 1038, 1039 are untrained padding
  auto r = cm::expand_checkpoint_vocab(src.string(), dst.string(), rows, {});
  EXPECT_EQ(r.vocab_before, 1040);
  EXPECT_EQ(r.vocab_after, 2051);
  EXPECT_EQ(r.rows_initialised, 2051 - 1038);

  auto before = cu::SafetensorsFile::open((src / "model.safetensors").string());
  auto after = cu::SafetensorsFile::open((dst / "model.safetensors").string());
  for (const auto& info : before->tensors()) {
    const bool resized = info.name == "model.language_model.embed_tokens.weight" || info.name == "lm_head.weight";
    auto a = after->tensor(info.name);
    EXPECT_EQ(a.scalar_type(), torch::kBFloat16) << info.name;
    if (!resized) {
      EXPECT_TRUE(a.equal(before->tensor(info.name))) << info.name;
      continue;
    }
    EXPECT_EQ(a.size(0), 2051);
    EXPECT_TRUE(a.index({Slice(0, 1038)}).equal(before->tensor(info.name).index({Slice(0, 1038)}))) << info.name;
  }
  EXPECT_FALSE(after->tensor("lm_head.weight").index({Slice(1038, None)}).equal(
      after->tensor("model.language_model.embed_tokens.weight").index({Slice(1038, None)})));  // own noise stream
  auto reloaded = cm::Qwen3VL::load(dst.string());
  EXPECT_EQ(reloaded.config().text.vocab_size, 2051);
  torch::NoGradGuard no_grad;
  cm::ForwardInputs in;
  in.input_ids = torch::tensor({1025, 1201, 2050}, torch::kLong).unsqueeze(0);
  EXPECT_EQ(reloaded.forward(in).logits.size(1), 2051);
  // In place and idempotent: a second expansion with the same tokenizer changes nothing.
  rows.num_trained_rows = 2051;
  auto again = cm::expand_checkpoint_vocab(dst.string(), dst.string(), rows, {});
  EXPECT_EQ(again.rows_initialised, 0);
  EXPECT_TRUE(cu::SafetensorsFile::open((dst / "model.safetensors").string())->tensor("lm_head.weight").equal(
      after->tensor("lm_head.weight")));
  fs::remove_all(src);
  fs::remove_all(dst);
}
