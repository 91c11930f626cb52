// Optimizer pieces of the trainer: AdamW against torch::optim::AdamW bit for bit (whole tensors and
// row slices with their own lr/wd; the one-pass kernel on large slices over two threads), freezing, the state round trip through safetensors (continuing
// from a reloaded state is bit-identical) and its error messages, gradient norm / clipping against
// torch::nn::utils::clip_grad_norm_, parameter partitioning by key, the lr schedule's values, and the
// float32 master weights of bfloat16 parameters.
#include <gtest/gtest.h>

#include <filesystem>

#include "coordexp/train/adamw.h"
#include "coordexp/train/param_groups.h"
#include "coordexp/train/schedule.h"
#include "coordexp/util/error.h"
#include "coordexp/util/safetensors.h"

namespace coordexp::train {
namespace {

bool bit_equal(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() && torch::equal(a, b);
}

// A deterministic pseudo-gradient for step k (same on every copy of a parameter).
torch::Tensor fake_grad(const torch::Tensor& p, int k, int salt) {
  auto g = torch::sin(torch::arange(p.numel(), torch::kFloat).reshape(p.sizes()) * (0.37 + 0.11 * k) + salt);
  return g * (1.0 + 0.5 * k);
}

void set_grad(torch::Tensor p, const torch::Tensor& g) { p.mutable_grad() = g.clone(); }

TEST(AdamW, MatchesTorchAdamWBitForBitOnWholeTensorsAndRowSlices) {
  torch::manual_seed(3);
  const auto w0 = torch::randn({12, 5}), b0 = torch::randn({5}), v0 = torch::randn({4, 3});
  std::map<std::string, torch::Tensor> params = {
      {"model.language_model.embed_tokens.weight", w0.clone()},  // rows 4..8 are the "coord rows"
      {"model.language_model.norm.weight", b0.clone()},
      {"model.visual.blocks.0.attn.qkv.weight", v0.clone()},
  };
  AdamWSettings st;
  st.beta1 = 0.8;
  st.beta2 = 0.95;
  st.eps = 1e-6;
  st.weight_decay = 0.1;
  st.groups[static_cast<int>(ParamGroup::kCoordRows)] = {3.0, 0.0, false};
  st.groups[static_cast<int>(ParamGroup::kVision)] = {0.5, 2.0, false};
  AdamW ours(partition_parameters(params, {4, 4}), st);
  ASSERT_EQ(ours.trainable().size(), 5u);  // embed: 3 slices, norm, vision

  // References: torch AdamW on separate tensors holding the same rows (Adam is element-wise, so a
  // row slice with its own settings is exactly a separate tensor with those settings).
  using torch::optim::AdamWOptions;
  auto lm_top = w0.slice(0, 0, 4).clone().requires_grad_(), coord = w0.slice(0, 4, 8).clone().requires_grad_(),
       lm_bot = w0.slice(0, 8, 12).clone().requires_grad_(), norm = b0.clone().requires_grad_(),
       vis = v0.clone().requires_grad_();
  const double lr = 0.01;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{lm_top, lm_bot},
                      std::make_unique<AdamWOptions>(AdamWOptions(lr).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.1)));
  groups.emplace_back(std::vector<torch::Tensor>{coord},
                      std::make_unique<AdamWOptions>(AdamWOptions(3 * lr).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.0)));
  groups.emplace_back(std::vector<torch::Tensor>{norm},  // 1-D: never decayed
                      std::make_unique<AdamWOptions>(AdamWOptions(lr).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.0)));
  groups.emplace_back(std::vector<torch::Tensor>{vis},
                      std::make_unique<AdamWOptions>(AdamWOptions(0.5 * lr).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.2)));
  torch::optim::AdamW ref(std::move(groups), AdamWOptions(lr));

  auto& W = params["model.language_model.embed_tokens.weight"];
  auto& B = params["model.language_model.norm.weight"];
  auto& V = params["model.visual.blocks.0.attn.qkv.weight"];
  for (int k = 0; k < 6; ++k) {
    const auto gw = fake_grad(W, k, 1), gb = fake_grad(B, k, 2), gv = fake_grad(V, k, 3);
    set_grad(W, gw);
    set_grad(B, gb);
    set_grad(V, gv);
    set_grad(lm_top, gw.slice(0, 0, 4));
    set_grad(coord, gw.slice(0, 4, 8));
    set_grad(lm_bot, gw.slice(0, 8, 12));
    set_grad(norm, gb);
    set_grad(vis, gv);
    ours.step(lr);
    ref.step();
  }
  EXPECT_TRUE(bit_equal(W.slice(0, 0, 4), lm_top.detach()));
  EXPECT_TRUE(bit_equal(W.slice(0, 4, 8), coord.detach()));
  EXPECT_TRUE(bit_equal(W.slice(0, 8, 12), lm_bot.detach()));
  EXPECT_TRUE(bit_equal(B, norm.detach()));
  EXPECT_TRUE(bit_equal(V, vis.detach()));
  EXPECT_FALSE(torch::equal(W, w0));
}

// The one-pass kernel (optim.fused, the default) on slices large enough for LibTorch to split its
// kernels across threads and take its vectorized paths, with odd lengths (scalar tails on both sides),
// weight decay on and off, and extreme gradients (tiny, huge, zero): bit for bit torch::optim::AdamW,
// and bit for bit the op-by-op update (fused = false) of this class.
TEST(AdamW, FusedUpdateIsBitIdenticalToTorchAdamWAndToTheOpByOpUpdateOnLargeSlices) {
  if (!AdamW::fused_kernel_available()) GTEST_SKIP() << "no AVX2 + FMA here: the fused kernel is not used";
  const int threads_before = at::get_num_threads();
  at::set_num_threads(2);
  torch::manual_seed(11);
  const auto w0 = torch::randn({1001, 333}), b0 = torch::randn({100003});
  auto make = [&] {
    return std::map<std::string, torch::Tensor>{{"model.language_model.embed_tokens.weight", w0.clone()},
                                                {"model.language_model.norm.weight", b0.clone()}};
  };
  auto fused_params = make(), plain_params = make();
  AdamWSettings st;
  st.beta1 = 0.9;
  st.beta2 = 0.999;
  st.eps = 1e-8;
  st.weight_decay = 0.05;
  AdamWSettings plain_st = st;
  plain_st.fused = false;
  AdamW fused(partition_parameters(fused_params, {0, 0}), st);
  AdamW plain(partition_parameters(plain_params, {0, 0}), plain_st);

  using torch::optim::AdamWOptions;
  auto ref_w = w0.clone().requires_grad_(), ref_b = b0.clone().requires_grad_();
  const double lr = 3e-3;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{ref_w},
                      std::make_unique<AdamWOptions>(AdamWOptions(lr).weight_decay(0.05)));
  groups.emplace_back(std::vector<torch::Tensor>{ref_b},  // 1-D: never decayed
                      std::make_unique<AdamWOptions>(AdamWOptions(lr).weight_decay(0.0)));
  torch::optim::AdamW ref(std::move(groups), AdamWOptions(lr));

  for (int k = 0; k < 5; ++k) {
    torch::Tensor gw = torch::randn(w0.sizes()) * std::pow(10.0, k - 2);
    gw.view(-1).slice(0, 0, 1000).mul_(1e-20);   // sub-eps gradients
    gw.view(-1).slice(0, 1000, 2000).mul_(1e15);  // huge ones
    gw.view(-1).slice(0, 2000, 2100).zero_();
    const torch::Tensor gb = torch::randn(b0.sizes());
    for (auto* m : {&fused_params, &plain_params}) {
      set_grad((*m)["model.language_model.embed_tokens.weight"], gw);
      set_grad((*m)["model.language_model.norm.weight"], gb);
    }
    set_grad(ref_w, gw);
    set_grad(ref_b, gb);
    fused.step(lr);
    plain.step(lr);
    ref.step();
  }
  at::set_num_threads(threads_before);
  const auto& fw = fused_params["model.language_model.embed_tokens.weight"];
  const auto& fb = fused_params["model.language_model.norm.weight"];
  EXPECT_TRUE(bit_equal(fw, ref_w.detach()));
  EXPECT_TRUE(bit_equal(fb, ref_b.detach()));
  EXPECT_TRUE(bit_equal(fw, plain_params["model.language_model.embed_tokens.weight"]));
  EXPECT_TRUE(bit_equal(fb, plain_params["model.language_model.norm.weight"]));
  const auto fs = fused.state_tensors(), ps = plain.state_tensors();
  ASSERT_EQ(fs.size(), ps.size());
  for (size_t i = 0; i < fs.size(); ++i) EXPECT_TRUE(bit_equal(fs[i].second, ps[i].second)) << fs[i].first;
  EXPECT_GT((fw - w0).abs().max().item<float>(), 1e-3f);
}

TEST(AdamW, FrozenGroupsAndRowsStayPutAndStateRoundTripContinuesBitExactly) {
  torch::manual_seed(4);
  auto make_params = [] {
    torch::manual_seed(5);
    return std::map<std::string, torch::Tensor>{
        {"lm_head.weight", torch::randn({10, 3})},
        {"model.language_model.layers.0.mlp.up_proj.weight", torch::randn({3, 3})},
        {"model.visual.merger.linear_fc1.weight", torch::randn({2, 3})},
        {"model.visual.patch_embed.proj.weight", torch::randn({2, 3})},
    };
  };
  AdamWSettings st;
  st.weight_decay = 0.05;
  st.groups[static_cast<int>(ParamGroup::kCoordRows)].frozen = true;
  st.groups[static_cast<int>(ParamGroup::kVision)].frozen = true;

  auto params_a = make_params();
  const auto head0 = params_a["lm_head.weight"].clone(), patch0 = params_a["model.visual.patch_embed.proj.weight"].clone();
  AdamW a(partition_parameters(params_a, {2, 5}), st);
  EXPECT_FALSE(params_a["model.visual.patch_embed.proj.weight"].requires_grad());
  EXPECT_TRUE(params_a["lm_head.weight"].requires_grad());  // its non-coord rows train
  auto run_step = [](std::map<std::string, torch::Tensor>& p, AdamW& opt, int k) {
    int salt = 0;
    for (auto& [key, t] : p)
      if (t.requires_grad()) set_grad(t, fake_grad(t, k, ++salt));
    opt.step(1e-2 * (k + 1));
    opt.zero_grad();
  };
  for (int k = 0; k < 3; ++k) run_step(params_a, a, k);
  EXPECT_TRUE(bit_equal(params_a["lm_head.weight"].slice(0, 2, 7), head0.slice(0, 2, 7)));
  EXPECT_FALSE(torch::equal(params_a["lm_head.weight"].slice(0, 0, 2), head0.slice(0, 0, 2)));
  EXPECT_TRUE(bit_equal(params_a["model.visual.patch_embed.proj.weight"], patch0));
  EXPECT_FALSE(params_a["lm_head.weight"].grad().defined());  // zero_grad sets to none

  // Save the state through a real safetensors file, rebuild on copies of the parameters, continue.
  const std::string path = (std::filesystem::temp_directory_path() / "coordexp_adamw_state.safetensors").string();
  util::write_safetensors(path, a.state_tensors());
  auto params_b = make_params();
  for (auto& [key, t] : params_b) t.detach().copy_(params_a[key].detach());
  AdamW b(partition_parameters(params_b, {2, 5}), st);
  {
    const auto file = util::SafetensorsFile::open(path);
    std::map<std::string, torch::Tensor> named;
    for (const auto& info : file->tensors()) named[info.name] = file->tensor(info.name);
    b.load_state_tensors(named, path);
    // A partial entry and an entry for a slice that is frozen now are clear errors.
    auto partial = named;
    partial.erase("lm_head.weight[rows 0:2].exp_avg_sq");
    try {
      b.load_state_tensors(partial, path);
      ADD_FAILURE() << "expected FormatError";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("incomplete"), std::string::npos) << e.what();
    }
    auto extra = named;
    extra["lm_head.weight[rows 2:7].exp_avg"] = torch::zeros({5, 3});
    try {
      b.load_state_tensors(extra, path);
      ADD_FAILURE() << "expected FormatError";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("freeze"), std::string::npos) << e.what();
    }
    auto bad_shape = named;
    bad_shape["model.visual.merger.linear_fc1.weight.exp_avg"] = torch::zeros({3, 3});
    EXPECT_THROW(b.load_state_tensors(bad_shape, path), FormatError);
    b.load_state_tensors(named, path);  // failed loads left nothing half-applied
  }
  for (int k = 3; k < 6; ++k) {
    run_step(params_a, a, k);
    run_step(params_b, b, k);
  }
  for (auto& [key, t] : params_a) EXPECT_TRUE(bit_equal(t, params_b[key])) << key;
  std::filesystem::remove(path);
}

// bfloat16 parameters keep a float32 master in the optimizer: 100 updates of ~1e-4 each, every one
// below half of bf16's rounding step at 1.0 (2^-8), accumulate in the master exactly as in a float32
// run (bit for bit), and the bf16 parameter follows the master's rounding. The master travels in the
// state (".master") and a reloaded state continues bit-exactly; a float32 run's state (no master)
// loads into bf16 parameters by starting the master from them.
TEST(AdamW, Bfloat16ParametersAccumulateSubRoundingUpdatesInAFloat32Master) {
  const std::string key = "model.language_model.layers.0.mlp.up_proj.weight";
  auto make = [&](torch::ScalarType dtype) {
    return std::map<std::string, torch::Tensor>{{"lm_head.weight", torch::ones({6, 3}, dtype)},
                                                {key, torch::full({3, 3}, -1.0, dtype)}};
  };
  AdamWSettings st;
  st.weight_decay = 0.01;
  auto p16 = make(torch::kBFloat16), p32 = make(torch::kFloat);
  AdamW a16(partition_parameters(p16, {2, 3}), st), a32(partition_parameters(p32, {2, 3}), st);
  auto step = [](std::map<std::string, torch::Tensor>& p, AdamW& opt, int k) {
    int salt = 0;
    for (auto& [name, t] : p)  // the same bf16-representable gradient values in both runs
      set_grad(t, (fake_grad(t, k % 5, ++salt).abs() + 0.1).to(torch::kBFloat16).to(t.scalar_type()));
    opt.step(1e-4);
    opt.zero_grad();
  };
  for (int k = 0; k < 100; ++k) {
    step(p16, a16, k);
    step(p32, a32, k);
  }
  ASSERT_EQ(a16.trainable().size(), 4u);  // lm_head rows 0:2, 2:5 (coord), 5:6; up_proj
  for (size_t i = 0; i < a16.trainable().size(); ++i) {
    const ParamSlice& s16 = a16.trainable()[i];
    const torch::Tensor master = a16.master(i);
    ASSERT_TRUE(master.defined()) << s16.state_key();
    EXPECT_EQ(master.scalar_type(), torch::kFloat);
    EXPECT_TRUE(bit_equal(master, a32.trainable()[i].value())) << s16.state_key();
    EXPECT_TRUE(bit_equal(s16.value(), master.to(torch::kBFloat16))) << s16.state_key();
    EXPECT_FALSE(a32.master(i).defined());  // float32 parameters need none
  }
  // The total movement (~1e-2 down) is visible in bf16; each single update alone would have been rounded away.
  EXPECT_GT((p16["lm_head.weight"].to(torch::kFloat) - 1).abs().min().item<double>(), 3e-3);
  EXPECT_GT((p16[key].to(torch::kFloat) + 1).abs().min().item<double>(), 3e-3);
  {
    torch::NoGradGuard no_grad;
    auto one = torch::ones({1}, torch::kBFloat16);
    EXPECT_TRUE(torch::equal(one - 1e-4, one));  // the premise: a lone 1e-4 step is lost in bf16
  }

  // Round trip: the state names the master; a fresh optimizer over bf16 copies continues bit-exactly.
  const auto tensors = a16.state_tensors();
  std::map<std::string, torch::Tensor> named(tensors.begin(), tensors.end());
  ASSERT_TRUE(named.count(key + ".master"));
  EXPECT_EQ(tensors.size(), 4u * 4u);
  EXPECT_EQ(a32.state_tensors().size(), 4u * 3u);  // float32: no master entries (the file is unchanged)
  auto p16b = make(torch::kBFloat16);  // not even the same values: the master sets them
  AdamW b16(partition_parameters(p16b, {2, 3}), st);
  b16.load_state_tensors(named, "test");
  for (auto& [name, t] : p16b) EXPECT_TRUE(bit_equal(t, p16[name])) << name;
  for (int k = 100; k < 103; ++k) {
    step(p16, a16, k);
    step(p16b, b16, k);
  }
  for (auto& [name, t] : p16b) EXPECT_TRUE(bit_equal(t, p16[name])) << name;

  // A float32 run's state into bf16 parameters: the master starts from the parameters.
  const auto t32 = a32.state_tensors();
  auto p16c = make(torch::kBFloat16);
  AdamW c16(partition_parameters(p16c, {2, 3}), st);
  c16.load_state_tensors(std::map<std::string, torch::Tensor>(t32.begin(), t32.end()), "test");
  for (size_t i = 0; i < c16.trainable().size(); ++i)
    EXPECT_TRUE(bit_equal(c16.master(i), c16.trainable()[i].value().to(torch::kFloat)));
}

TEST(AdamW, GradNormAndClippingMatchTorchAndFindNonFiniteGradients) {
  torch::manual_seed(6);
  std::map<std::string, torch::Tensor> params = {{"model.language_model.a.weight", torch::randn({4, 4})},
                                                 {"model.language_model.b.bias", torch::randn({7})}};
  for (auto& [k, t] : params) {
    t.requires_grad_();
    set_grad(t, 3 * torch::randn(t.sizes()));
  }
  const auto slices = partition_parameters(params, {0, 0});
  std::vector<torch::Tensor> copies;
  for (auto& [k, t] : params) {
    copies.push_back(t.detach().clone().requires_grad_());
    set_grad(copies.back(), t.grad());
  }
  const double norm = grad_norm(slices);
  const double ref_norm = torch::nn::utils::clip_grad_norm_(copies, 1.5);
  EXPECT_NEAR(norm, ref_norm, 1e-5 * ref_norm);
  scale_grads(slices, clip_factor(norm, 1.5));
  EXPECT_NEAR(grad_norm(slices), 1.5, 1e-5);
  EXPECT_DOUBLE_EQ(clip_factor(1.0, 1.5), 1.0);
  EXPECT_DOUBLE_EQ(clip_factor(5.0, 0.0), 1.0);  // clipping off

  EXPECT_EQ(first_nonfinite_grad(slices), "");
  params["model.language_model.b.bias"].mutable_grad()[3] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(first_nonfinite_grad(slices), "model.language_model.b.bias");
  EXPECT_FALSE(std::isfinite(grad_norm(slices)));
}

TEST(ParamGroups, KeysMapToGroupsTiedTensorsOnceAndMissingCoordRowsIsAClearError) {
  EXPECT_EQ(group_of_key("model.visual.patch_embed.proj.weight"), ParamGroup::kVision);
  EXPECT_EQ(group_of_key("model.visual.blocks.3.mlp.linear_fc1.bias"), ParamGroup::kVision);
  EXPECT_EQ(group_of_key("model.visual.pos_embed.weight"), ParamGroup::kVision);
  EXPECT_EQ(group_of_key("model.visual.merger.norm.weight"), ParamGroup::kMerger);
  EXPECT_EQ(group_of_key("model.visual.deepstack_merger_list.1.linear_fc2.weight"), ParamGroup::kMerger);
  EXPECT_EQ(group_of_key("model.language_model.layers.0.self_attn.q_proj.weight"), ParamGroup::kLanguageModel);
  EXPECT_EQ(group_of_key("lm_head.weight"), ParamGroup::kLanguageModel);
  EXPECT_THROW(group_of_key("something.else"), InternalError);

  const auto embed = torch::zeros({20, 2});
  std::map<std::string, torch::Tensor> tied = {{"lm_head.weight", embed},
                                               {"model.language_model.embed_tokens.weight", embed},
                                               {"model.visual.merger.linear_fc1.weight", torch::zeros({2, 2})}};
  const auto slices = partition_parameters(tied, {5, 10});
  ASSERT_EQ(slices.size(), 4u);  // embed/lm_head once: rows 0:5, 5:15, 15:20; merger
  EXPECT_EQ(slices[0].state_key(), "lm_head.weight[rows 0:5]");
  EXPECT_EQ(slices[1].group, ParamGroup::kCoordRows);
  EXPECT_EQ(slices[1].value().size(0), 10);
  EXPECT_EQ(slices[2].state_key(), "lm_head.weight[rows 15:20]");
  EXPECT_EQ(slices[3].state_key(), "model.visual.merger.linear_fc1.weight");
  const auto n = count_elements(slices);
  EXPECT_EQ(n[static_cast<int>(ParamGroup::kCoordRows)], 20);
  EXPECT_EQ(n[static_cast<int>(ParamGroup::kLanguageModel)], 20);

  try {
    partition_parameters(tied, {15, 10});
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("expand-vocab"), std::string::npos) << e.what();
  }
}

TEST(LrSchedule, WarmupThenCosineLinearConstantReachTheirEndpoints) {
  LrSchedule s{1.0, 4, 14, DecayKind::kCosine, 0.1};
  EXPECT_DOUBLE_EQ(s.lr_at(1), 0.25);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 1.0);
  EXPECT_NEAR(s.lr_at(9), 0.1 + 0.9 * 0.5, 1e-12);  // halfway through the decay
  EXPECT_NEAR(s.lr_at(14), 0.1, 1e-12);
  EXPECT_NEAR(s.lr_at(20), 0.1, 1e-12);
  for (int64_t k = 5; k < 14; ++k) EXPECT_GT(s.lr_at(k), s.lr_at(k + 1));
  s.decay = DecayKind::kLinear;
  EXPECT_NEAR(s.lr_at(9), 0.55, 1e-12);
  EXPECT_NEAR(s.lr_at(14), 0.1, 1e-12);
  s.decay = DecayKind::kConstant;
  EXPECT_DOUBLE_EQ(s.lr_at(13), 1.0);
  s.warmup_steps = 0;
  s.decay = DecayKind::kLinear;
  EXPECT_NEAR(s.lr_at(1), 1.0 - 0.9 / 14, 1e-12);
  EXPECT_THROW(parse_decay_kind("step"), ConfigError);
}

}  // namespace
}  // namespace coordexp::train
