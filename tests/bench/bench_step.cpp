// bench_step: where the time of one Stage-1 training step goes, and its model FLOP utilization.
// One HF model directory (make-tiny + expand-vocab: tests/bench/bench_step.sh builds the three sizes),
// one sample of the shape tests/bench/bench_vs_python.sh measures (a 256x256 image = 64 image
// tokens, text around it, T tokens, the last A of them supervised), CPU float32, the trainer's
// defaults (chunked attention, the chunked LM head + CE, AdamW with clipping).
//
// Measured, each as a median over --iters after one warm-up:
//   step      the whole step: vision + decoder forward, head + CE on the A answer rows, backward,
//             gradient norm + clip, AdamW (--fused 1|0), zero_grad;
//   vision    the vision tower + mergers, forward + backward (an upstream gradient on every output);
//   decoder   the text decoder on the sample (image features as inputs), forward + backward from
//             its final hidden states, embedding backward included;
//   head_ce   the LM head + token CE on the A rows, forward + backward (into the tied weight);
//   clip      gradient norm and scaling over every parameter;
//   adamw     the optimizer update, fused and op by op;
//   sgemm     torch::mm of two 2048 x 2048 float32 matrices: the machine's matmul rate here.
// FLOPs are counted analytically (bench_common.h forward_flops; backward = 2x forward), elementwise
// work is not. MFU = counted FLOPs / time / sgemm rate. Threads (LibTorch and
// BLIS): COORDEXP_BENCH_THREADS (default all hardware threads). Prints one JSON object.
//
//   bench_step --model DIR [--tokens 321] [--answer 69] [--image-side 256] [--iters 5] [--fused 1]
//              [--only step|vision|decoder|head_ce|clip|adamw]   (one part, e.g. under perf)
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "coordexp/coord/head_ce.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/adamw.h"
#include "coordexp/train/param_groups.h"

namespace cm = coordexp::model;
namespace ct = coordexp::train;
namespace cc = coordexp::coord;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string g_only;

template <class F>
double median_seconds(const char* part, int iters, F&& f) {
  if (!g_only.empty() && g_only != part && std::string(part) != "sgemm") return 0.0;  // sgemm: the MFU's base
  f();  // warm-up (allocator, optimizer state)
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    const double s = now_s();
    f();
    t.push_back(now_s() - s);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Args {
  std::string model;
  int64_t tokens = 321, answer = 69, image_side = 256;
  int iters = 5;
  bool fused = true;
  std::string only;  // measure only this part (perf profiles)
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") a.model = v;
    else if (k == "--tokens") a.tokens = std::atoll(v.c_str());
    else if (k == "--answer") a.answer = std::atoll(v.c_str());
    else if (k == "--image-side") a.image_side = std::atoll(v.c_str());
    else if (k == "--iters") a.iters = std::atoi(v.c_str());
    else if (k == "--fused") a.fused = v != "0";
    else if (k == "--only") a.only = v;
    else {
      std::cerr << "bench_step: unknown flag " << k << "\n";
      std::exit(2);
    }
  }
  if (a.model.empty()) {
    std::cerr << "usage: bench_step --model DIR [--tokens T] [--answer A] [--image-side PX] [--iters N] [--fused 1|0]\n";
    std::exit(2);
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  g_only = a.only;
  coordexp::bench::set_bench_threads();
  cm::ModelRuntime runtime;
  runtime.attention = cm::AttentionKind::kChunked;  // the trainer's default (model.attn_implementation)
  cm::Qwen3VL model = cm::Qwen3VL::load(a.model, runtime);
  const auto& c = model.config();
  const int64_t V = c.text.vocab_size, H = c.text.hidden_size;

  // The sample: <|im_start|>user\n<vision_start> pads <vision_end> text ... answer (A tokens).
  const int64_t g = a.image_side / (c.vision.patch_size), np = g * g, nv = np / 4;
  auto gen = at::detail::createCPUGenerator(1);
  const torch::Tensor pixels = torch::rand({np, c.vision.patch_dim()}, gen, torch::kFloat) * 2 - 1;
  const torch::Tensor grid = torch::tensor({int64_t(1), g, g}, torch::kLong).view({1, 3});
  const int64_t text_len = a.tokens - nv - 2;
  if (text_len < a.answer + 4) {
    std::cerr << "bench_step: --tokens " << a.tokens << " leaves no room for the image (" << nv
              << " tokens) and an answer of " << a.answer << "\n";
    return 2;
  }
  const torch::Tensor text = torch::randint(0, std::min<int64_t>(V, 150000), {text_len}, gen, torch::kLong);
  const torch::Tensor ids = torch::cat({text.narrow(0, 0, 3), torch::tensor({c.vision_start_token_id}),
                                        torch::full({nv}, c.image_token_id, torch::kLong),
                                        torch::tensor({c.vision_end_token_id}), text.narrow(0, 3, text_len - 3)})
                                .unsqueeze(0);
  const int64_t T = ids.size(1), A = a.answer;
  const torch::Tensor targets = ids[0].slice(0, T - A, T).contiguous();       // rows T-A-1 .. T-2 predict them
  const torch::Tensor terms = torch::arange(A, torch::kLong).remainder(3);  // struct / desc / coord rows
  const torch::Tensor row_w = torch::ones({A});
  const int64_t coord_first = V - 1001;
  const int64_t chunk_rows = 256;  // loss.head_chunk_rows' default
  const std::array<double, cc::kNumHeadCeTerms> unit_scale{1.0, 1.0, 1.0};

  auto params = model.named_parameters();
  int64_t num_params = 0;
  {
    std::set<const void*> seen;
    for (const auto& [k, p] : params)
      if (seen.insert(p.unsafeGetTensorImpl()).second) num_params += p.numel();
  }
  ct::AdamWSettings settings;
  settings.fused = a.fused;
  ct::AdamW opt(ct::partition_parameters(params, {coord_first, 1000}), settings);
  ct::AdamWSettings plain_settings = settings;
  plain_settings.fused = false;
  ct::AdamW plain_opt(ct::partition_parameters(params, {coord_first, 1000}), plain_settings);
  const double lr = 1e-6;

  auto head_loss = [&](const torch::Tensor& hidden_rows) {
    return cc::chunked_head_ce(hidden_rows, model.lm_head_weight(), targets, terms, row_w, coord_first,
                                  unit_scale, chunk_rows)
        .term_sums.sum();
  };
  auto decoder_hidden = [&](const cm::VisionFeatures& vision) {
    cm::ForwardInputs in;
    in.input_ids = ids;
    in.vision = &vision;
    in.logits = cm::LogitsRequest::none();
    in.return_hidden_states = true;
    return model.forward(in).hidden_states;
  };

  // The whole step.
  const double step_s = median_seconds("step", a.iters, [&] {
    const cm::VisionFeatures vision = model.encode_images(pixels, grid);
    const torch::Tensor h = decoder_hidden(vision);
    head_loss(h[0].slice(0, T - A - 1, T - 1)).backward();
    const double norm = ct::grad_norm(opt.trainable());
    ct::scale_grads(opt.trainable(), ct::clip_factor(norm, 1.0));
    opt.step(lr);
    opt.zero_grad();
  });

  // Parts in isolation.
  const double vision_s = median_seconds("vision", a.iters, [&] {
    const cm::VisionFeatures v = model.encode_images(pixels, grid);
    torch::Tensor loss = v.image_embeds.sum();
    for (const auto& d : v.deepstack) loss = loss + d.sum();
    loss.backward();
    opt.zero_grad();
  });
  cm::VisionFeatures fixed_vision;
  {
    torch::NoGradGuard no_grad;
    fixed_vision = model.encode_images(pixels, grid);
  }
  fixed_vision.image_embeds.requires_grad_(true);
  for (auto& d : fixed_vision.deepstack) d.requires_grad_(true);
  const torch::Tensor upstream = torch::randn({1, T, H}, gen, torch::kFloat) * 1e-3;
  const double decoder_s = median_seconds("decoder", a.iters, [&] {
    (decoder_hidden(fixed_vision) * upstream).sum().backward();
    opt.zero_grad();
  });
  const torch::Tensor rows = torch::randn({A, H}, gen, torch::kFloat).requires_grad_(true);
  const double head_s = median_seconds("head_ce", a.iters, [&] {
    head_loss(rows).backward();
    opt.zero_grad();
  });
  // The optimizer parts on gradients of every parameter (a full step leaves them).
  auto fill_grads = [&] {
    for (const auto& [k, p] : params) {
      torch::Tensor t = p;
      if (t.requires_grad()) t.mutable_grad() = torch::randn(t.sizes(), gen, torch::kFloat) * 1e-3;
    }
  };
  fill_grads();
  const double clip_s = median_seconds("clip", a.iters, [&] {
    const double norm = ct::grad_norm(opt.trainable());
    ct::scale_grads(opt.trainable(), ct::clip_factor(norm, 1e9));
  });
  const double adamw_fused_s = median_seconds("adamw", a.iters, [&] { opt.step(lr); });
  const double adamw_plain_s = median_seconds("adamw", a.iters, [&] { plain_opt.step(lr); });
  opt.zero_grad();

  const torch::Tensor ma = torch::randn({2048, 2048}), mb = torch::randn({2048, 2048});
  const double sgemm_s = median_seconds("sgemm", std::max(a.iters, 3), [&] { (void)torch::mm(ma, mb); });
  const double sgemm_rate = 2.0 * 2048.0 * 2048.0 * 2048.0 / sgemm_s;

  // Chunked attention computes whole query chunks against the keys up to their end; counted in
  // full, as bench_model does.
  const coordexp::bench::ForwardFlops f = coordexp::bench::forward_flops(c, np, T, A);
  const double step_flops = 3 * (f.vision + f.decoder + f.head);
  auto part = [&](double seconds, double flops) {
    nlohmann::ordered_json j;
    j["ms"] = seconds * 1e3;
    j["share_of_step"] = seconds / step_s;
    if (flops > 0) {
      j["gflop"] = flops * 1e-9;
      j["mfu"] = flops / seconds / sgemm_rate;
    }
    return j;
  };
  nlohmann::ordered_json out;
  out["model"] = a.model;
  out["params"] = num_params;
  out["vocab"] = V;
  out["tokens"] = T;
  out["answer_rows"] = A;
  out["image_patches"] = np;
  out["threads"] = at::get_num_threads();
  out["sgemm_gflop_s"] = sgemm_rate * 1e-9;
  out["step"] = part(step_s, step_flops);
  out["step"]["adamw"] = a.fused ? "fused" : "op by op";
  out["vision"] = part(vision_s, 3 * f.vision);
  out["decoder"] = part(decoder_s, 3 * f.decoder);
  out["head_ce"] = part(head_s, 3 * f.head);
  out["clip"] = part(clip_s, 0);
  out["adamw_fused"] = part(adamw_fused_s, 0);
  out["adamw_op_by_op"] = part(adamw_plain_s, 0);
  const double parts = vision_s + decoder_s + head_s + clip_s + (a.fused ? adamw_fused_s : adamw_plain_s);
  out["parts_sum_ms"] = parts * 1e3;
  out["unaccounted_ms"] = (step_s - parts) * 1e3;
  std::cout << out.dump() << std::endl;
  return 0;
}
