// bench_attention: peak memory and time of forward + backward through one Qwen3-VL-2B-shaped block
// with eager or chunked attention (attention.h), one configuration per process so the peak is its own.
//   bench_attention --block text|vision --impl eager|chunked [--tokens 2048] [--iters 2] [--image-side 64]
// text: one decoder layer (hidden 2048, 16 query / 8 KV heads, head_dim 128, SwiGLU 6144), batch 1,
// causal over --tokens tokens, the mask built inside the step as the model builds it (eager: the dense
// [1, 1, T, T] bias). vision: one ViT block (width 1024, 16 heads, MLP 4096) over one 1024x1024 image
// (64 x 64 = 4096 patches; --image-side sets the patches per side, even; --tokens is ignored).
// Random weights, float32, CPU. Prints ms per step (median of --iters after one warm-up step) and the peak RSS growth over the RSS after setup
// (weights, inputs); parameter gradients (allocated by the first backward) are part of the growth.
// Threads: COORDEXP_BENCH_THREADS (default all hardware threads).
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include <torch/torch.h>

#include "bench_common.h"
#include "coordexp/model/attention.h"
#include "coordexp/model/modules.h"
#include "coordexp/model/rope.h"

namespace cm = coordexp::model;

namespace {

// A "VmRSS:" / "VmHWM:" line of /proc/self/status in MiB.
double status_mib(const std::string& key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  return -1;
}

// Resets VmHWM to the current RSS (Linux: "5" in clear_refs), so the peak is this step's.
void reset_peak() { std::ofstream("/proc/self/clear_refs") << "5"; }

void init_params(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& item : m.named_parameters()) {
    auto& p = item.value();
    if (item.key().find("norm") != std::string::npos) p.fill_(1.0);
    else p.copy_(torch::randn(p.sizes()) * 0.02);
  }
}

cm::TextConfig text_2b() {
  cm::TextConfig c;
  c.hidden_size = 2048;
  c.intermediate_size = 6144;
  c.num_attention_heads = 16;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.mrope_section = {24, 20, 20};
  return c;
}

cm::VisionConfig vision_2b() {
  cm::VisionConfig c;
  c.hidden_size = 1024;
  c.num_heads = 16;
  c.intermediate_size = 4096;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  std::string block = "text", impl = "chunked";
  int64_t T = 2048, iters = 2, image_side = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--block") block = v;
    else if (k == "--impl") impl = v;
    else if (k == "--tokens") T = std::stoll(v);
    else if (k == "--image-side") image_side = std::stoll(v);
    else if (k == "--iters") iters = std::stoll(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if ((block != "text" && block != "vision") || (impl != "eager" && impl != "chunked") || image_side < 2 ||
      image_side % 2 != 0) {
    std::fprintf(stderr, "--block text|vision --impl eager|chunked [--image-side EVEN >= 2]\n");
    return 2;
  }
  // Large blocks straight to mmap, so freed temporaries leave RSS and growth measures live memory.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  coordexp::bench::set_bench_threads();
  torch::manual_seed(0);
  const auto kind = impl == "eager" ? cm::AttentionKind::kEager : cm::AttentionKind::kChunked;
  const auto opts = torch::TensorOptions(torch::kFloat);

  std::function<void()> step;
  cm::DecoderLayer layer{nullptr};
  cm::VisionBlock vblock{nullptr};
  torch::Tensor x, cos, sin, dy;
  std::vector<int64_t> cu;
  int64_t nh = 0, rows = 0;
  if (block == "text") {
    const auto c = text_2b();
    layer = cm::DecoderLayer(c, opts);
    init_params(*layer);
    x = torch::randn({1, T, c.hidden_size}).requires_grad_(true);
    dy = torch::randn({1, T, c.hidden_size});
    auto pos = torch::arange(T, torch::kLong).view({1, 1, T}).expand({3, 1, T}).contiguous();
    std::tie(cos, sin) = cm::mrope_cos_sin(pos, cm::rope_inv_freq(c.head_dim, c.rope_theta), c.mrope_section);
    nh = c.num_attention_heads;
    rows = T;
    step = [&, T] {
      cm::AttentionPlan plan;  // an unpadded batch: causal only (Qwen3VL::forward)
      plan.kind = kind;
      plan.mask.query_offsets = {0};
      plan.causal_only = true;
      if (kind != cm::AttentionKind::kChunked) plan.bias = cm::dense_attention_bias(plan.mask, T, T, torch::kFloat, torch::kCPU);
      layer->forward(x, cos, sin, plan, 0).backward(dy);
    };
  } else {
    const auto c = vision_2b();
    vblock = cm::VisionBlock(c, opts);
    init_params(*vblock);
    const auto grid = torch::tensor({int64_t(1), image_side, image_side}, torch::kLong).view({1, 3});
    rows = image_side * image_side;
    x = torch::randn({rows, c.hidden_size}).requires_grad_(true);
    dy = torch::randn({rows, c.hidden_size});
    std::tie(cos, sin) = cm::vision_rope_cos_sin(grid, c.head_dim(), c.spatial_merge_size);
    cu = cm::vision_cu_seqlens(grid);
    nh = c.num_heads;
    step = [&] { vblock->forward(x, cos, sin, cu, kind).backward(dy); };
  }
  const double scores_mib = static_cast<double>(nh) * rows * rows * 4 / (1 << 20);
  const double rss0 = status_mib("VmRSS:");
  reset_peak();
  std::vector<double> ms;
  double peak = 0;
  for (int64_t it = 0; it <= iters; ++it) {
    x.mutable_grad() = torch::Tensor();
    const auto t0 = std::chrono::steady_clock::now();
    step();
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    peak = std::max(peak, status_mib("VmHWM:"));
    if (it > 0 || iters == 0) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  std::printf("block %-6s impl %-7s rows %6lld heads %lld: %8.1f ms per forward+backward (median of %zu), "
              "peak RSS growth %7.0f MiB (RSS after setup %.0f MiB; one [%lld, %lld, %lld] float32 score "
              "tensor = %.0f MiB), threads %d\n",
              block.c_str(), impl.c_str(), static_cast<long long>(rows), static_cast<long long>(nh), ms[ms.size() / 2],
              ms.size(), peak - rss0, rss0, static_cast<long long>(nh), static_cast<long long>(rows),
              static_cast<long long>(rows), scores_mib, at::get_num_threads());
  return 0;
}
