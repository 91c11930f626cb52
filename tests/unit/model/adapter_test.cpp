// LoRA / DoRA adapters and the coord offset (model/adapter.h) against independent references: the
// forwards against element loops of the formulas in float64, the gradients of A, B and m against
// float64 central differences (DoRA: of the function whose row norm is held constant, since PEFT
// detaches it), step 0 == the base model bit for bit on the tiny fixture, the frozen base gets no
// gradient, PEFT parameter names, target resolution, and gradient checkpointing on == off.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <functional>

#include "coordexp/model/adapter.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/util/error.h"

namespace cm = coordexp::model;

namespace {

const std::string kFixture = std::string(COORDEXP_TEST_DATA_DIR) + "/qwen3vl-tiny-a";
constexpr int64_t kOut = 5, kIn = 7, kRank = 3, kRows = 4;
constexpr double kScale = 32.0 / 3.0;

torch::Tensor randn64(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn(shape, gen, torch::kDouble);
}

// y[i][o] = b[o] + g[o] * (sum_k x[i][k] W[o][k] + s * sum_j (sum_k x[i][k] A[j][k]) B[o][j]) with
// g = m / N (DoRA) or 1 (LoRA), by explicit loops. N: the row norms of W + s B A from (A_n, B_n).
torch::Tensor reference(const torch::Tensor& x, const torch::Tensor& W, const torch::Tensor& b, const torch::Tensor& A,
                        const torch::Tensor& B, const torch::Tensor& m, const torch::Tensor& A_n,
                        const torch::Tensor& B_n) {
  auto xa = x.accessor<double, 2>();
  auto wa = W.accessor<double, 2>();
  auto aa = A.accessor<double, 2>();
  auto ba = B.accessor<double, 2>();
  std::vector<double> g(kOut, 1.0);
  if (m.defined()) {
    auto an = A_n.accessor<double, 2>();
    auto bn = B_n.accessor<double, 2>();
    for (int64_t o = 0; o < kOut; ++o) {
      double sq = 0;
      for (int64_t k = 0; k < kIn; ++k) {
        double v = wa[o][k];
        for (int64_t j = 0; j < kRank; ++j) v += kScale * bn[o][j] * an[j][k];
        sq += v * v;
      }
      g[o] = m[o].item<double>() / std::sqrt(sq);
    }
  }
  torch::Tensor y = torch::zeros({kRows, kOut}, torch::kDouble);
  auto ya = y.accessor<double, 2>();
  for (int64_t i = 0; i < kRows; ++i)
    for (int64_t o = 0; o < kOut; ++o) {
      double base = 0, lora = 0;
      for (int64_t k = 0; k < kIn; ++k) base += xa[i][k] * wa[o][k];
      for (int64_t j = 0; j < kRank; ++j) {
        double xaj = 0;
        for (int64_t k = 0; k < kIn; ++k) xaj += xa[i][k] * aa[j][k];
        lora += xaj * ba[o][j];
      }
      ya[i][o] = b[o].item<double>() + g[o] * (base + kScale * lora);
    }
  return y;
}

// d/dp of sum(f() * c) by central differences, element by element.
torch::Tensor finite_difference(const std::function<torch::Tensor()>& f, torch::Tensor p, const torch::Tensor& c) {
  torch::NoGradGuard no_grad;
  torch::Tensor g = torch::zeros_like(p);
  auto flat = p.view(-1);
  const double h = 1e-6;
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double v = flat[i].item<double>();
    flat[i] = v + h;
    const double up = (f() * c).sum().item<double>();
    flat[i] = v - h;
    const double down = (f() * c).sum().item<double>();
    flat[i] = v;
    g.view(-1)[i] = (up - down) / (2 * h);
  }
  return g;
}

struct Case {
  torch::Tensor x = randn64({kRows, kIn}, 1), W = randn64({kOut, kIn}, 2), b = randn64({kOut}, 3);
  torch::Tensor A = randn64({kRank, kIn}, 4).mul_(0.3).requires_grad_(true);
  torch::Tensor B = randn64({kOut, kRank}, 5).mul_(0.3).requires_grad_(true);
  torch::Tensor m = (randn64({kOut}, 6).abs_() + 1).requires_grad_(true);
  torch::Tensor c = randn64({kRows, kOut}, 7);  // the upstream gradient
};

TEST(Adapter, LoraForwardAndGradientsMatchFloat64ReferenceAndFiniteDifferences) {
  Case k;
  const torch::Tensor y = cm::lora_linear(k.x, k.x, k.W, k.b, k.A, k.B, kScale);
  const torch::Tensor ref = reference(k.x, k.W, k.b, k.A.detach(), k.B.detach(), {}, {}, {});
  EXPECT_LT((y - ref).abs().max().item<double>(), 1e-12);
  (y * k.c).sum().backward();
  auto f = [&] { return reference(k.x, k.W, k.b, k.A.detach(), k.B.detach(), {}, {}, {}); };
  const torch::Tensor fd_A = finite_difference(f, k.A.detach(), k.c), fd_B = finite_difference(f, k.B.detach(), k.c);
  EXPECT_LT((k.A.grad() - fd_A).abs().max().item<double>(), 1e-6);
  EXPECT_LT((k.B.grad() - fd_B).abs().max().item<double>(), 1e-6);
  EXPECT_GT(fd_A.abs().max().item<double>(), 1e-2);  // not vacuous
}

TEST(Adapter, DoraForwardAndGradientsMatchFloat64ReferenceWithTheDetachedNorm) {
  Case k;
  const torch::Tensor y = cm::dora_linear(k.x, k.x, k.W, k.b, k.A, k.B, k.m, kScale);
  const torch::Tensor A0 = k.A.detach().clone(), B0 = k.B.detach().clone();
  const torch::Tensor ref = reference(k.x, k.W, k.b, A0, B0, k.m.detach(), A0, B0);
  EXPECT_LT((y - ref).abs().max().item<double>(), 1e-12);
  (y * k.c).sum().backward();
  // The norm is a constant of the gradient (DoRA 4.3): differences of the function whose norm is
  // taken at (A0, B0).
  auto f = [&] { return reference(k.x, k.W, k.b, k.A.detach(), k.B.detach(), k.m.detach(), A0, B0); };
  EXPECT_LT((k.A.grad() - finite_difference(f, k.A.detach(), k.c)).abs().max().item<double>(), 1e-6);
  EXPECT_LT((k.B.grad() - finite_difference(f, k.B.detach(), k.c)).abs().max().item<double>(), 1e-6);
  EXPECT_LT((k.m.grad() - finite_difference(f, k.m.detach(), k.c)).abs().max().item<double>(), 1e-6);
  // ... and it is detached: the live-norm function has another gradient.
  auto live = [&] { return reference(k.x, k.W, k.b, k.A.detach(), k.B.detach(), k.m.detach(), k.A.detach(), k.B.detach()); };
  EXPECT_GT((k.B.grad() - finite_difference(live, k.B.detach(), k.c)).abs().max().item<double>(), 1e-4);
}

TEST(Adapter, DoraWithDropoutKeepsTheUndroppedInputForTheBaseTerm) {
  // PEFT: result(x) + (g - 1) * (x_d W^T) + g * s * lora(x_d).
  Case k;
  torch::NoGradGuard no_grad;
  const torch::Tensor xd = k.x * (randn64({kRows, kIn}, 8).gt(0).to(torch::kDouble) * 2);
  const torch::Tensor y = cm::dora_linear(k.x, xd, k.W, k.b, k.A, k.B, k.m, kScale);
  const torch::Tensor g = k.m / (k.W + kScale * k.B.matmul(k.A)).pow(2).sum(1).sqrt();
  const torch::Tensor expect = k.x.matmul(k.W.t()) + k.b + (g - 1) * xd.matmul(k.W.t()) +
                               g * kScale * xd.matmul(k.A.t()).matmul(k.B.t());
  EXPECT_LT((y - expect).abs().max().item<double>(), 1e-12);
  // LoRA: only the A branch sees the dropped input.
  const torch::Tensor yl = cm::lora_linear(k.x, xd, k.W, k.b, k.A, k.B, kScale);
  EXPECT_LT((yl - (k.x.matmul(k.W.t()) + k.b + kScale * xd.matmul(k.A.t()).matmul(k.B.t()))).abs().max().item<double>(),
            1e-12);
}

// ------------------------------------------------------------------------------------ on the model

cm::AdapterSpec spec_for(const cm::Qwen3VL& m, const std::string& kind, bool offset, bool tied = true) {
  coordexp::config::AdapterOptions o;
  o.kind = kind;
  o.coord_offset = offset;
  o.tie_head = tied;
  return cm::adapter_spec_from_options(o, m.config(), 1040, kFixture);
}

struct Inputs {
  torch::Tensor ids, pixels, grid;
};

Inputs inputs() {
  Inputs in;
  auto gen = at::detail::createCPUGenerator(11);
  in.pixels = torch::rand({8 * 8, 1536}, gen, torch::kFloat) * 2 - 1;
  in.grid = torch::tensor({1, 8, 8}, torch::kLong).unsqueeze(0);
  std::vector<int64_t> ids = {1025, 872, 198, 1033};
  for (int i = 0; i < 16; ++i) ids.push_back(1036);
  for (int64_t t : {1034, 620, 1040, 1500, 2039, 279, 1041, 13, 1026}) ids.push_back(t);  // coord ids 1040..2039
  in.ids = torch::tensor(ids, torch::kLong).unsqueeze(0);
  return in;
}

torch::Tensor logits_of(cm::Qwen3VL& m, const Inputs& in) {
  const cm::VisionFeatures v = m.encode_images(in.pixels, in.grid);
  cm::ForwardInputs f;
  f.input_ids = in.ids;
  f.vision = &v;
  f.logits = cm::LogitsRequest::all();
  return m.forward(f).logits;
}

TEST(Adapter, StepZeroEqualsTheBaseModelExactly) {
  const Inputs in = inputs();
  cm::Qwen3VL base = cm::Qwen3VL::load(kFixture);
  torch::NoGradGuard no_grad;
  const torch::Tensor want = logits_of(base, in);
  for (const std::string kind : {"lora", "dora"})
    for (bool offset : {false, true}) {
      cm::Qwen3VL m = cm::Qwen3VL::load(kFixture);
      cm::attach_adapters(m, spec_for(m, kind, offset, false), 1);
      EXPECT_TRUE(torch::equal(logits_of(m, in), want)) << kind << " offset " << offset;
    }
}

TEST(Adapter, PeftNamesFrozenBaseAndGradientsReachOnlyTheAdapters) {
  cm::Qwen3VL m = cm::Qwen3VL::load(kFixture);
  const auto base_keys = m.named_parameters();
  cm::attach_adapters(m, spec_for(m, "dora", true, false), 1);
  EXPECT_EQ(m.named_parameters().size(), base_keys.size());  // the HF keys only
  const auto ad = m.adapter_parameters();
  // tiny-a: 2 ViT blocks x 4 + 3 mergers x 2 + 2 decoder layers x 7 = 28 linear maps, 3 tensors each.
  EXPECT_EQ(m.adapter_spec().target_modules.size(), 28u);
  EXPECT_EQ(ad.size(), 28u * 3 + 2);
  ASSERT_TRUE(ad.count("model.language_model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_EQ(ad.at("model.language_model.layers.0.self_attn.q_proj.lora_A.weight").sizes(), (std::vector<int64_t>{16, 64}));
  EXPECT_EQ(ad.at("model.language_model.layers.0.self_attn.q_proj.lora_B.weight").sizes(), (std::vector<int64_t>{64, 16}));
  EXPECT_EQ(ad.at("model.visual.blocks.1.attn.qkv.lora_magnitude_vector").sizes(), (std::vector<int64_t>{96}));
  EXPECT_TRUE(ad.count("model.visual.merger.linear_fc2.lora_A.weight"));
  EXPECT_TRUE(ad.count(cm::kCoordOffsetEmbedKey) && ad.count(cm::kCoordOffsetHeadKey));
  // A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0, m = ||W||_row.
  const auto& A = ad.at("model.language_model.layers.1.mlp.down_proj.lora_A.weight");  // in = 128
  EXPECT_LE(A.abs().max().item<double>(), 1.0 / std::sqrt(128.0));
  EXPECT_GT(A.abs().max().item<double>(), 0.9 / std::sqrt(128.0));
  EXPECT_EQ(ad.at("model.language_model.layers.1.mlp.down_proj.lora_B.weight").abs().max().item<double>(), 0.0);
  const torch::Tensor W = base_keys.at("model.language_model.layers.1.mlp.down_proj.weight");
  EXPECT_LT((ad.at("model.language_model.layers.1.mlp.down_proj.lora_magnitude_vector") - W.pow(2).sum(1).sqrt())
                .abs().max().item<double>(), 1e-5);

  const Inputs in = inputs();
  logits_of(m, in).pow(2).mean().backward();
  for (const auto& [k, p] : m.named_parameters()) {
    EXPECT_FALSE(p.requires_grad()) << k;
    EXPECT_FALSE(p.grad().defined()) << k;
  }
  for (const auto& [k, p] : ad) {
    ASSERT_TRUE(p.grad().defined()) << k;
    if (k.find("lora_B") != std::string::npos || k.rfind("coord_offset", 0) == 0 ||
        k.find("magnitude") != std::string::npos)
      EXPECT_GT(p.grad().abs().max().item<double>(), 0.0) << k;
  }
  // The untied head table gets the head's gradient only on the coord columns' rows; the embedding
  // table only at the coord ids of the input (1040, 1041, 1500, 2039 -> rows 0, 1, 460, 999).
  const torch::Tensor ge = ad.at(cm::kCoordOffsetEmbedKey).grad().abs().sum(1);
  EXPECT_GT(ge[0].item<double>(), 0.0);
  EXPECT_GT(ge[999].item<double>(), 0.0);
  EXPECT_EQ(ge[2].item<double>(), 0.0);
}

TEST(Adapter, CoordOffsetIsAddedToTheEmbeddingAndHeadRows) {
  cm::Qwen3VL m = cm::Qwen3VL::load(kFixture);
  cm::Qwen3VL base = cm::Qwen3VL::load(kFixture);
  cm::attach_adapters(m, spec_for(m, "none", true, true), 1);
  EXPECT_EQ(m.adapter_parameters().size(), 1u);  // tied: one table
  torch::NoGradGuard no_grad;
  torch::Tensor table = m.coord_offset().embed;
  table.copy_(randn64({1000, 64}, 9).to(torch::kFloat));
  const torch::Tensor E = base.module()->language_model->embed_tokens->weight;
  EXPECT_TRUE(torch::allclose(m.coord_embedding_rows(1040), E.narrow(0, 1040, 1000) + table));
  const torch::Tensor head = m.lm_head_weight();
  EXPECT_TRUE(torch::equal(head.narrow(0, 0, 1040), E.narrow(0, 0, 1040)));
  EXPECT_TRUE(torch::allclose(head.narrow(0, 1040, 1000), E.narrow(0, 1040, 1000) + table));
  // The forward equals a base model whose embedding (tied head) rows carry the offset.
  base.module()->language_model->embed_tokens->weight.narrow(0, 1040, 1000).add_(table);
  const Inputs in = inputs();
  EXPECT_LT((logits_of(m, in) - logits_of(base, in)).abs().max().item<double>(), 1e-4);
}

TEST(Adapter, TargetsResolveLikePeftAndBadPatternsNameTheKey) {
  cm::Qwen3VL m = cm::Qwen3VL::load(kFixture);
  coordexp::config::AdapterOptions o;
  o.kind = "lora";
  const auto all = cm::resolve_adapter_targets(m.config(), o);
  EXPECT_EQ(all.size(), 28u);
  for (const auto& p : all) EXPECT_EQ(p.find("lm_head"), std::string::npos);
  o.targets = {"language_model.*.q_proj"};
  EXPECT_EQ(cm::resolve_adapter_targets(m.config(), o),
            (std::vector<std::string>{"model.language_model.layers.0.self_attn.q_proj",
                                      "model.language_model.layers.1.self_attn.q_proj"}));
  o.targets = {"qkv", "down_proj"};
  EXPECT_EQ(cm::resolve_adapter_targets(m.config(), o).size(), 4u);
  o.targets = {"all-linear"};
  o.freeze.vision = true;
  o.freeze.merger = true;
  EXPECT_EQ(cm::resolve_adapter_targets(m.config(), o).size(), 14u);
  o.targets = {"proj"};  // a dotted suffix, not a substring: matches attn.proj only
  EXPECT_THROW(cm::resolve_adapter_targets(m.config(), o), coordexp::ConfigError);  // vision frozen: nothing left
  o.freeze = {};
  EXPECT_EQ(cm::resolve_adapter_targets(m.config(), o).size(), 2u);
  o.targets = {"lm_head"};
  try {
    cm::resolve_adapter_targets(m.config(), o);
    FAIL() << "lm_head is not a target";
  } catch (const coordexp::ConfigError& e) {
    EXPECT_EQ(e.where(), "adapter.targets");
    EXPECT_NE(std::string(e.what()).find("lm_head"), std::string::npos);
  }
  o.kind = "qlora";
  EXPECT_THROW(o.validate(), coordexp::ConfigError);
}

TEST(Adapter, GradientCheckpointingGivesTheSameAdapterGradients) {
  const Inputs in = inputs();
  std::map<std::string, torch::Tensor> grads[2];
  for (int ckpt = 0; ckpt < 2; ++ckpt) {
    cm::Qwen3VL m = cm::Qwen3VL::load(kFixture);
    cm::attach_adapters(m, spec_for(m, "dora", true), 1);
    {
      torch::NoGradGuard no_grad;  // B != 0 so that every factor matters
      for (auto& [k, p] : m.adapter_parameters())
        if (k.find("lora_B") != std::string::npos) p.copy_(randn64(p.sizes().vec(), 12).to(torch::kFloat) * 0.05);
    }
    m.set_gradient_checkpointing(ckpt == 1, ckpt == 1);
    logits_of(m, in).pow(2).mean().backward();
    for (const auto& [k, p] : m.adapter_parameters()) grads[ckpt][k] = p.grad().clone();
  }
  for (const auto& [k, g] : grads[0]) {
    EXPECT_TRUE(torch::allclose(grads[1].at(k), g, 1e-5, 1e-7)) << k;
    EXPECT_GT(g.abs().max().item<double>(), 0.0) << k;
  }
}

TEST(Adapter, TensorsRoundTripAndMismatchesNameTheTensor) {
  cm::Qwen3VL a = cm::Qwen3VL::load(kFixture), b = cm::Qwen3VL::load(kFixture);
  cm::attach_adapters(a, spec_for(a, "lora", true), 1);
  cm::attach_adapters(b, spec_for(b, "lora", true), 2);  // other A
  cm::load_adapter_tensors(b, cm::adapter_tensors(a), "test");
  for (const auto& [k, p] : a.adapter_parameters()) EXPECT_TRUE(torch::equal(p, b.adapter_parameters().at(k))) << k;
  cm::AdapterTensors t = cm::adapter_tensors(a);
  t.lora_A.erase(t.lora_A.begin());
  EXPECT_THROW(cm::load_adapter_tensors(b, t, "test"), coordexp::FormatError);
  EXPECT_THROW(cm::attach_adapters(a, spec_for(a, "lora", false), 1), coordexp::InternalError);
}

}  // namespace
