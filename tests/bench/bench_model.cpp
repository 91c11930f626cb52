// bench_model: a ~100M-parameter Qwen3-VL (random weights, float32, CPU) — forward and
// forward+backward time of one image + text sample with the achieved FLOP rate next to a measured
// sgemm rate, and prefill vs decode tokens/s with the KV cache. FLOPs are counted analytically
// (2 per multiply-add of every matmul actually executed, attention included); elementwise ops are
// not counted. Threads (LibTorch and BLIS): COORDEXP_BENCH_THREADS (default: all hardware threads).
#include <benchmark/benchmark.h>


#include "bench_common.h"
#include "coordexp/model/qwen3vl.h"

namespace cm = coordexp::model;

namespace {

constexpr int64_t kImageSide = 28;  // patches per side: a 448x448 image -> 784 patches, 196 tokens
constexpr int64_t kTextTokens = 316;  // text around the image: 512 tokens in total

cm::Qwen3VL& model() {
  static cm::Qwen3VL m = [] {
    coordexp::bench::set_bench_threads();
    auto m = cm::Qwen3VL::create(coordexp::bench::medium_config());
    m.init_random(0, {0.02, 0.02, 0.0, 0.0});
    return m;
  }();
  return m;
}

int64_t num_params() {
  int64_t n = 0;
  for (const auto& [k, p] : model().named_parameters()) n += p.numel();
  return n;
}

struct Sample {
  torch::Tensor pixels, grid, ids;
};

Sample sample() {
  const auto& c = model().config();
  const int64_t np = kImageSide * kImageSide, nv = np / 4;
  auto gen = at::detail::createCPUGenerator(1);
  Sample s;
  s.pixels = torch::rand({np, c.vision.patch_dim()}, gen, torch::kFloat) * 2 - 1;
  s.grid = torch::tensor({int64_t(1), kImageSide, kImageSide}, torch::kLong).view({1, 3});
  auto text = torch::randint(0, 30000, {kTextTokens}, gen, torch::kLong);
  s.ids = torch::cat({text.narrow(0, 0, 3), torch::tensor({c.vision_start_token_id}),
                      torch::full({nv}, c.image_token_id, torch::kLong), torch::tensor({c.vision_end_token_id}),
                      text.narrow(0, 3, kTextTokens - 5)})
              .unsqueeze(0);
  return s;
}

double forward_flops(int64_t np, int64_t t, int64_t logit_rows) {
  return coordexp::bench::forward_flops(model().config(), np, t, logit_rows).total();
}

void BM_Sgemm(benchmark::State& state) {
  coordexp::bench::set_bench_threads();
  const int64_t n = state.range(0);
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  for (auto _ : state) benchmark::DoNotOptimize(torch::mm(a, b));
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = at::get_num_threads();
}
BENCHMARK(BM_Sgemm)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();

// Image + text, logits at every position (training computes them where labels exist).
void BM_Forward(benchmark::State& state) {
  auto s = sample();
  const int64_t T = s.ids.size(1);
  torch::NoGradGuard no_grad;
  for (auto _ : state) {
    auto vision = model().encode_images(s.pixels, s.grid);
    cm::ForwardInputs in;
    in.input_ids = s.ids;
    in.vision = &vision;
    in.logits = cm::LogitsRequest::all();
    benchmark::DoNotOptimize(model().forward(in).logits);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(forward_flops(s.pixels.size(0), T, T) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["params_M"] = num_params() / 1e6;
  state.counters["tokens"] = T;
}
BENCHMARK(BM_Forward)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();

// Forward + cross-entropy on every position + backward (backward counted as 2x forward FLOPs).
void BM_ForwardBackward(benchmark::State& state) {
  auto s = sample();
  const int64_t T = s.ids.size(1);
  auto labels = torch::randint(0, 30000, {T}, at::detail::createCPUGenerator(2), torch::kLong);
  for (auto _ : state) {
    auto vision = model().encode_images(s.pixels, s.grid);
    cm::ForwardInputs in;
    in.input_ids = s.ids;
    in.vision = &vision;
    in.logits = cm::LogitsRequest::all();
    auto loss = torch::cross_entropy_loss(model().forward(in).logits[0], labels);
    loss.backward();
    model().module()->zero_grad();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(3 * forward_flops(s.pixels.size(0), T, T) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ForwardBackward)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();

// Prefill of the image + text prompt into a KV cache (logits only at the last token).
void BM_Prefill(benchmark::State& state) {
  auto s = sample();
  const int64_t T = s.ids.size(1);
  torch::NoGradGuard no_grad;
  auto vision = model().encode_images(s.pixels, s.grid);
  auto cache = model().make_kv_cache(1, T);
  for (auto _ : state) {
    cache.reset();
    cm::ForwardInputs in;
    in.input_ids = s.ids;
    in.vision = &vision;
    in.cache = &cache;
    benchmark::DoNotOptimize(model().forward(in).logits);
  }
  state.counters["tokens/s"] = benchmark::Counter(T, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Prefill)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();

// Greedy-style decode steps of one token per row after that prompt (batch = state.range(0)).
void BM_Decode(benchmark::State& state) {
  const int64_t B = state.range(0), steps = 64;
  auto s = sample();
  const int64_t T = s.ids.size(1);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> px, grid;
  for (int64_t b = 0; b < B; ++b) {
    px.push_back(s.pixels);
    grid.push_back(s.grid);
  }
  auto vision = model().encode_images(torch::cat(px), torch::cat(grid));
  auto cache = model().make_kv_cache(B, T + steps);
  auto prefill = [&] {
    cache.reset();
    cm::ForwardInputs in;
    in.input_ids = s.ids.expand({B, T}).contiguous();
    in.vision = &vision;
    in.cache = &cache;
    return model().forward(in).logits.argmax(-1);
  };
  auto next = prefill();
  int64_t done = 0;
  for (auto _ : state) {
    if (done == steps) {
      state.PauseTiming();
      next = prefill();
      done = 0;
      state.ResumeTiming();
    }
    cm::ForwardInputs in;
    in.input_ids = next.view({B, 1});
    in.cache = &cache;
    next = model().forward(in).logits.argmax(-1);
    ++done;
  }
  state.counters["tokens/s"] = benchmark::Counter(B, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["context"] = T;
}
BENCHMARK(BM_Decode)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();

}  // namespace

BENCHMARK_MAIN();
