// util/torch_compat.h on CPU: device selection (cpu, auto -> cpu here, cuda -> ConfigError naming the
// key), the autocast setters checked against what ATen's dispatcher does (a CPU matmul comes out bf16
// only with the CPU flag on; the CUDA flag leaves CPU ops alone), scaled_dot_product_attention
// against an explicit float64 loop, default generators against torch's own draws, the version macro.
// The CUDA branches of these functions run only where CUDA is available (skipped otherwise).
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "coordexp/model/autocast.h"
#include "coordexp/util/error.h"
#include "coordexp/util/torch_compat.h"

namespace coordexp::compat {
namespace {

TEST(TorchCompat, VersionMacroComparesMajorThenMinor) {
  EXPECT_TRUE(COORDEXP_TORCH_AT_LEAST(TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR));
  EXPECT_FALSE(COORDEXP_TORCH_AT_LEAST(TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR + 1));
  EXPECT_FALSE(COORDEXP_TORCH_AT_LEAST(TORCH_VERSION_MAJOR + 1, 0));
  EXPECT_TRUE(COORDEXP_TORCH_AT_LEAST(TORCH_VERSION_MAJOR - 1, 99));
  EXPECT_TRUE(COORDEXP_TORCH_AT_LEAST(1, 13));  // the oldest LibTorch coordexp builds against
}

TEST(TorchCompat, SelectDeviceCpuAutoAndCuda) {
  EXPECT_EQ(select_device("cpu", "model.device"), c10::Device(c10::DeviceType::CPU));
  if (cuda_available()) {
    EXPECT_TRUE(select_device("auto", "model.device").is_cuda());
    EXPECT_TRUE(select_device("cuda", "model.device").is_cuda());
    return;
  }
  EXPECT_EQ(cuda_device_count(), 0);
  EXPECT_EQ(select_device("auto", "model.device"), c10::Device(c10::DeviceType::CPU));
  try {
    select_device("cuda", "train.device");
    FAIL() << "cuda accepted without CUDA";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where(), "key train.device");
    EXPECT_NE(e.message().find("CUDA is not available"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("use cpu or auto"), std::string::npos) << e.what();
  }
}

TEST(TorchCompat, SelectDeviceRejectsOtherNamesNamingTheKey) {
  for (const char* bad : {"gpu", "CUDA", "cuda:0", ""}) {
    try {
      select_device(bad, "model.device");
      FAIL() << "accepted '" << bad << "'";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.where(), "key model.device");
      EXPECT_EQ(e.hint(), "use auto, cpu or cuda");
    }
  }
}

// Restores this thread's autocast flags and dtypes whatever a test leaves behind.
struct AutocastRestore {
  model::AutocastState saved = model::AutocastState::current();
  ~AutocastRestore() {
    saved.apply();
    at::autocast::clear_cache();
  }
};

TEST(TorchCompat, AutocastFlagsAndDtypesRoundTripPerDevice) {
  AutocastRestore restore;
  for (const auto device : {c10::DeviceType::CPU, c10::DeviceType::CUDA}) {
    const auto other = device == c10::DeviceType::CPU ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
    set_autocast_enabled(other, false);
    set_autocast_enabled(device, true);
    EXPECT_TRUE(autocast_enabled(device));
    EXPECT_FALSE(autocast_enabled(other)) << "the flags are per device";
    set_autocast_enabled(device, false);
    EXPECT_FALSE(autocast_enabled(device));
    // CUDA autocast takes fp16 or bf16; 1.13's CPU autocast refuses anything but bf16.
    std::vector<c10::ScalarType> dtypes{c10::ScalarType::BFloat16};
    if (device == c10::DeviceType::CUDA) dtypes.push_back(c10::ScalarType::Half);
    for (const auto dtype : dtypes) {
      set_autocast_dtype(device, dtype);
      EXPECT_EQ(autocast_dtype(device), dtype);
    }
    set_autocast_dtype(device, c10::ScalarType::BFloat16);
  }
  EXPECT_THROW(autocast_enabled(c10::DeviceType::XLA), InternalError);
}

TEST(TorchCompat, CpuAutocastFlagIsTheOneAtenDispatchesOn) {
  AutocastRestore restore;
  const auto a = torch::randn({4, 3}), b = torch::randn({3, 5});
  set_autocast_enabled(c10::DeviceType::CPU, false);
  set_autocast_enabled(c10::DeviceType::CUDA, true);  // the CUDA flag must not touch CPU ops
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat);
  set_autocast_enabled(c10::DeviceType::CUDA, false);
  set_autocast_enabled(c10::DeviceType::CPU, true);
  set_autocast_dtype(c10::DeviceType::CPU, c10::ScalarType::BFloat16);
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);  // mm is on autocast's lower-precision list
  EXPECT_TRUE(model::autocast_active());
  set_autocast_enabled(c10::DeviceType::CPU, false);
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat);
  EXPECT_FALSE(model::autocast_active());
}

// softmax(q k^T / sqrt(E) + mask) v, one scalar at a time in double.
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const torch::Tensor& mask) {
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), E = q.size(3), S = k.size(2);
  auto out = torch::zeros({B, H, L, E}, torch::kDouble);
  auto qa = q.accessor<double, 4>(), ka = k.accessor<double, 4>(), va = v.accessor<double, 4>();
  auto oa = out.accessor<double, 4>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> s(static_cast<size_t>(S));
        double top = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < S; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < E; ++e) dot += qa[b][h][i][e] * ka[b][h][j][e];
          s[j] = dot / std::sqrt(static_cast<double>(E)) + (mask.defined() ? mask[b][0][i][j].item<double>() : 0.0);
          top = std::max(top, s[j]);
        }
        double z = 0;
        for (auto& x : s) z += (x = std::exp(x - top));
        for (int64_t j = 0; j < S; ++j)
          for (int64_t e = 0; e < E; ++e) oa[b][h][i][e] += s[j] / z * va[b][h][j][e];
      }
  return out;
}

TEST(TorchCompat, ScaledDotProductAttentionMatchesAnExplicitFloat64Loop) {
  torch::manual_seed(3);
  const auto opts = torch::TensorOptions().dtype(torch::kDouble);
  const auto q = torch::randn({2, 3, 4, 5}, opts), k = torch::randn({2, 3, 6, 5}, opts), v = torch::randn({2, 3, 6, 5}, opts);
  auto mask = torch::zeros({2, 1, 4, 6}, opts);
  mask.index_put_({0, 0, 1, torch::indexing::Slice(3, 6)}, -std::numeric_limits<double>::infinity());  // padding
  mask.index_put_({1, 0, torch::indexing::Slice(), 0}, -2.5);                                          // a bias
  EXPECT_TRUE(torch::allclose(scaled_dot_product_attention(q, k, v, torch::Tensor()),
                              reference_attention(q, k, v, torch::Tensor()), 1e-12, 1e-12));
  const auto masked = scaled_dot_product_attention(q, k, v, mask);
  EXPECT_TRUE(torch::allclose(masked, reference_attention(q, k, v, mask), 1e-12, 1e-12));
  // Fully masked keys get exactly zero weight: the masked row only mixes values 0..2.
  auto v2 = v.clone();
  v2.index_put_({0, torch::indexing::Slice(), torch::indexing::Slice(3, 6)}, 1e6);
  EXPECT_TRUE(torch::allclose(scaled_dot_product_attention(q, k, v2, mask)[0].select(1, 1), masked[0].select(1, 1),
                              1e-12, 1e-12));
}

TEST(TorchCompat, ScaledDotProductAttentionPassesGradients) {
  torch::manual_seed(4);
  const auto opts = torch::TensorOptions().dtype(torch::kDouble);
  auto q = torch::randn({1, 2, 3, 4}, opts).requires_grad_(), k = torch::randn({1, 2, 3, 4}, opts).requires_grad_();
  auto v = torch::randn({1, 2, 3, 4}, opts).requires_grad_();
  // Central finite differences in float64 against autograd through the compat call.
  scaled_dot_product_attention(q, k, v, torch::Tensor()).pow(2).sum().backward();
  const double h = 1e-6;
  for (int64_t idx : {0, 5, 11, 17}) {
    auto qp = q.detach().clone().view(-1), qm = q.detach().clone().view(-1);
    qp[idx] += h;
    qm[idx] -= h;
    const double fp = scaled_dot_product_attention(qp.view(q.sizes()), k.detach(), v.detach(), {}).pow(2).sum().item<double>();
    const double fm = scaled_dot_product_attention(qm.view(q.sizes()), k.detach(), v.detach(), {}).pow(2).sum().item<double>();
    EXPECT_NEAR(q.grad().view(-1)[idx].item<double>(), (fp - fm) / (2 * h), 1e-7) << "q[" << idx << "]";
  }
}

TEST(TorchCompat, DefaultCpuGeneratorIsTheOneTorchDrawsFrom) {
  at::Generator gen = default_generator(c10::Device(c10::DeviceType::CPU));
  torch::Tensor state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state();
  }
  const auto first = torch::randn({8});
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  }
  EXPECT_TRUE(torch::equal(torch::randn({8}), first));
  if (!cuda_available()) {
    EXPECT_THROW(default_generator(c10::Device(c10::DeviceType::CUDA, 0)), InternalError);
  } else {
    EXPECT_TRUE(default_generator(c10::Device(c10::DeviceType::CUDA, 0)).device().is_cuda());
  }
}

}  // namespace
}  // namespace coordexp::compat
