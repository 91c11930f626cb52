// Parity of the Qwen3-VL forward against the qwen3vl-tiny-a golden fixture (an independent float64
// reference of HF transformers), stage by stage: vision patch/pos embeddings, vision rotary, every
// vision block, DeepStack features, image embeddings, inputs_embeds, text rotary, every decoder
// layer, last hidden state and logits (rel <= 1e-5, argmax identical); position ids and rope
// deltas exactly. Checked in-process and through `coordexp-train debug-forward`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "coordexp/model/qwen3vl.h"
#include "coordexp/model/rope.h"
#include "coordexp/util/safetensors.h"

namespace cm = coordexp::model;
namespace cu = coordexp::util;

namespace {

const std::string kFixture = std::string(COORDEXP_TEST_DATA_DIR) + "/qwen3vl-tiny-a";

std::shared_ptr<cu::SafetensorsFile> golden() {
  static auto g = cu::SafetensorsFile::open(kFixture + "/golden.safetensors");
  return g;
}

torch::Tensor G(const std::string& name) { return golden()->tensor(name).clone(); }

// rel = max|a - g| / max|g| (the fixture README's metric).
double rel(const torch::Tensor& a, const torch::Tensor& g) {
  auto ad = a.detach().to(torch::kCPU, torch::kDouble), gd = g.to(torch::kDouble);
  EXPECT_EQ(ad.sizes(), gd.sizes());
  if (ad.sizes() != gd.sizes()) return 1e30;
  return (ad - gd).abs().max().item<double>() / gd.abs().max().item<double>();
}

void expect_argmax_identical(const torch::Tensor& logits, const torch::Tensor& golden_logits) {
  auto a = logits.reshape({-1, logits.size(-1)}).argmax(-1);
  auto g = golden_logits.reshape({-1, golden_logits.size(-1)}).argmax(-1);
  EXPECT_TRUE(a.equal(g)) << "argmax differs at " << a.ne(g).sum().item<int64_t>() << " positions";
}

cm::Qwen3VL& fixture_model() {
  static cm::Qwen3VL m = cm::Qwen3VL::load(kFixture);
  return m;
}

}  // namespace

TEST(Qwen3VLGolden, PositionIdsAndRopeDeltasExact) {
  const auto& c = fixture_model().config();
  cm::RopeIndexSpec spec{c.image_token_id, c.video_token_id, c.vision_start_token_id, c.vision.spatial_merge_size};
  auto ri = cm::compute_rope_index(G("input_ids"), G("image_grid_thw"), {}, spec);
  EXPECT_TRUE(ri.position_ids.squeeze(1).equal(G("position_ids")));
  EXPECT_TRUE(ri.rope_deltas.equal(G("rope_deltas")));
  // Spec 5.1 by hand: text 0..3, image (4, 4+r, 4+c) over a 7x10 merged grid, then 14, 15, ...
  auto p = ri.position_ids;
  EXPECT_EQ(p[0][0][3].item<int64_t>(), 3);
  EXPECT_EQ(p[1][0][4 + 69].item<int64_t>(), 4 + 6);
  EXPECT_EQ(p[2][0][4 + 69].item<int64_t>(), 4 + 9);
  EXPECT_EQ(p[0][0][74].item<int64_t>(), 14);
}

TEST(Qwen3VLGolden, EveryStageWithinTolerance) {
  auto& model = fixture_model();
  torch::NoGradGuard no_grad;
  cm::Trace trace;
  auto vision = model.encode_images(G("pixel_values"), G("image_grid_thw"), &trace);
  cm::ForwardInputs in;
  in.input_ids = G("input_ids");
  in.vision = &vision;
  in.logits = cm::LogitsRequest::all();
  in.trace = &trace;
  auto out = model.forward(in);

  const char* stages[] = {"vision_patch_embeds", "vision_pos_embeds", "vision_rope_cos", "vision_rope_sin",
                          "vision_block_0", "vision_block_1", "deepstack_0", "deepstack_1", "image_embeds",
                          "inputs_embeds", "text_layer_0", "text_layer_1", "last_hidden_state"};
  double worst = 0;
  for (const char* s : stages) {
    ASSERT_TRUE(trace.count(s)) << s;
    EXPECT_LE(rel(trace[s], G(s)), 1e-5) << s;
    worst = std::max(worst, rel(trace[s], G(s)));
  }
  EXPECT_LE(rel(trace["text_rope_cos"].squeeze(0), G("text_rope_cos")), 1e-5);
  EXPECT_LE(rel(trace["text_rope_sin"].squeeze(0), G("text_rope_sin")), 1e-5);
  EXPECT_LE(rel(out.logits, G("logits")), 1e-5);
  expect_argmax_identical(out.logits, G("logits"));
  EXPECT_TRUE(out.position_ids.squeeze(1).equal(G("position_ids")));
  EXPECT_TRUE(out.rope_deltas.equal(G("rope_deltas")));
  std::cout << "[parity] logits rel " << rel(out.logits, G("logits")) << ", worst stage rel " << worst << "\n";
}

// bf16 parameters (CPU still computes float32): the advisory bf16 bar of the README.
TEST(Qwen3VLGolden, Bf16ParametersMeetAdvisoryBar) {
  cm::ModelRuntime rt;
  rt.param_dtype = torch::kBFloat16;
  auto model = cm::Qwen3VL::load(kFixture, rt);
  torch::NoGradGuard no_grad;
  auto vision = model.encode_images(G("pixel_values"), G("image_grid_thw"));
  cm::ForwardInputs in;
  in.input_ids = G("input_ids");
  in.vision = &vision;
  in.logits = cm::LogitsRequest::all();
  auto out = model.forward(in);
  EXPECT_EQ(out.logits.scalar_type(), torch::kFloat);
  EXPECT_LE(rel(out.logits, G("logits")), 5e-2);
  auto agree = out.logits.argmax(-1).eq(G("logits").argmax(-1)).to(torch::kDouble).mean().item<double>();
  EXPECT_GE(agree, 0.9);
  EXPECT_GT(rel(out.logits, G("logits")), 0.0);  // the bf16 path really rounded the weights
}

TEST(Qwen3VLGolden, DebugForwardBinaryMatches) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("coordexp_debug_forward_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string in_path = (dir / "in.safetensors").string(), out_path = (dir / "out.safetensors").string();
  cu::write_safetensors(in_path, {{"pixel_values", G("pixel_values")},
                                  {"image_grid_thw", G("image_grid_thw")},
                                  {"input_ids", G("input_ids")}});
  const std::string cmd = std::string(COORDEXP_TRAIN_BIN) + " --log-level warn debug-forward --model " + kFixture +
                          " --inputs " + in_path + " --out " + out_path;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto out = cu::SafetensorsFile::open(out_path);
  auto logits = out->tensor("logits");
  EXPECT_EQ(logits.scalar_type(), torch::kFloat);
  EXPECT_LE(rel(logits, G("logits")), 1e-5);
  expect_argmax_identical(logits, G("logits"));
  EXPECT_LE(rel(out->tensor("vision_features"), G("image_embeds")), 1e-5);
  EXPECT_TRUE(out->tensor("position_ids").squeeze(1).equal(G("position_ids")));
  fs::remove_all(dir);
}
