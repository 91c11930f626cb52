// bench_adapters: one training step (forward + backward + AdamW update) of the ~119M-parameter bench
// Qwen3-VL (bench_common.h medium_config, random weights, float32, CPU) with full fine-tuning, LoRA
// or DoRA (rank 16, alpha 32, all linear maps: the CoordExp recipe) plus the coord offset for the
// adapters. One mode per process so peak RSS is the mode's own:
//   bench_adapters --mode full|lora|dora [--iters 3] [--rank 16] [--answer 128]
// Sample: one 448x448 image (784 patches, 196 tokens) + text, 512 tokens; token CE on the last
// `answer` positions (Stage-1 computes logits at the answer rows only). Prints ms per step (median of
// iters after one warm-up step), trainable parameters, RSS before the model was made and the peak.
// Threads: COORDEXP_BENCH_THREADS (default: all hardware threads).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "coordexp/model/adapter.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/adamw.h"
#include "coordexp/train/param_groups.h"

namespace cm = coordexp::model;
namespace ct = coordexp::train;

namespace {

constexpr int64_t kImageSide = 28;
constexpr int64_t kTextTokens = 316;
constexpr int64_t kCoordFirst = 29000;  // rows 29000..29999 play the coord tokens

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

double rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "lora";
  int64_t iters = 3, rank = 16, answer = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--mode") mode = v;
    else if (k == "--iters") iters = std::stoll(v);
    else if (k == "--rank") rank = std::stoll(v);
    else if (k == "--answer") answer = std::stoll(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (mode != "full" && mode != "lora" && mode != "dora") {
    std::fprintf(stderr, "--mode full|lora|dora\n");
    return 2;
  }
  coordexp::bench::set_bench_threads();
  const double rss_start = rss_mib();
  cm::Qwen3VL m = cm::Qwen3VL::create(coordexp::bench::medium_config());
  m.init_random(0, {0.02, 0.02, 0.0, 0.0});
  const auto& c = m.config();
  int64_t base_params = 0;
  for (const auto& [k, p] : m.named_parameters()) base_params += p.numel();

  std::vector<ct::ParamSlice> slices;
  if (mode == "full") {
    slices = ct::partition_parameters(m.named_parameters(), {kCoordFirst, 1000});
  } else {
    coordexp::config::AdapterOptions o;
    o.kind = mode;
    o.rank = rank;
    o.alpha = 2.0 * static_cast<double>(rank);
    o.coord_offset = true;
    cm::attach_adapters(m, cm::adapter_spec_from_options(o, c, kCoordFirst, ""), 0);
    slices = ct::partition_parameters(m.adapter_parameters(), {kCoordFirst, 1000});
  }
  int64_t trainable = 0;
  for (const auto& s : slices) trainable += s.value().numel();
  ct::AdamWSettings settings;
  settings.weight_decay = 0.01;
  ct::AdamW opt(slices, settings);

  // One image + text, logits and CE on the last `answer` positions.
  const int64_t np = kImageSide * kImageSide, nv = np / 4;
  auto gen = at::detail::createCPUGenerator(1);
  const torch::Tensor pixels = torch::rand({np, c.vision.patch_dim()}, gen, torch::kFloat) * 2 - 1;
  const torch::Tensor grid = torch::tensor({int64_t(1), kImageSide, kImageSide}, torch::kLong).view({1, 3});
  const torch::Tensor text = torch::randint(0, 30000, {kTextTokens}, gen, torch::kLong);
  const torch::Tensor ids = torch::cat({text.narrow(0, 0, 3), torch::tensor({c.vision_start_token_id}),
                                        torch::full({nv}, c.image_token_id, torch::kLong),
                                        torch::tensor({c.vision_end_token_id}), text.narrow(0, 3, kTextTokens - 5)})
                                .unsqueeze(0);
  const int64_t T = ids.size(1);
  torch::Tensor mask = torch::zeros({1, T}, torch::kBool);
  mask.narrow(1, T - answer - 1, answer).fill_(true);  // rows predicting the last `answer` tokens
  const torch::Tensor targets = ids.narrow(1, T - answer, answer).reshape({-1});

  std::vector<double> ms;
  double loss_value = 0.0;
  for (int64_t it = 0; it <= iters; ++it) {
    const auto t0 = std::chrono::steady_clock::now();
    const cm::VisionFeatures vision = m.encode_images(pixels, grid);
    cm::ForwardInputs f;
    f.input_ids = ids;
    f.vision = &vision;
    f.logits = cm::LogitsRequest::at(mask);
    const torch::Tensor logits = m.forward(f).logits;
    const torch::Tensor loss = torch::nn::functional::cross_entropy(logits, targets);
    loss.backward();
    opt.step(1e-4);
    opt.zero_grad();
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    loss_value = loss.item<double>();
    if (it > 0) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("mode %-4s: %.0f ms per step (median of %zu), %lld base + %lld trainable parameters, "
              "RSS %.0f MiB before the model, peak %.0f MiB (loss %.4f)\n",
              mode.c_str(), ms[ms.size() / 2], ms.size(), static_cast<long long>(base_params),
              static_cast<long long>(trainable), rss_start, peak_rss_mib(), loss_value);
  return 0;
}
