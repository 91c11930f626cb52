// bench_sampling: next-token sampling math (rollout/sampling.h) for one row at the real Qwen3-VL
// vocabulary, V = 152,670 (151,669 ids + 1,001 coord tokens): the top-k and top-p keep masks alone
// and the whole sampling distribution (float32 logits -> float64 probabilities: temperature,
// top-k, softmax, top-p, renormalisation). Logits are N(0, sigma^2): sigma 2 gives a flat
// distribution (the 0.9 nucleus holds tens of thousands of tokens), sigma 6 a peaked one (a few
// dozen); the `kept` counter shows the size of the kept set. One thread (COORDEXP_BENCH_THREADS
// overrides); COORDEXP_BENCH_VOCAB changes V.
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "bench_common.h"
#include "coordexp/rollout/sampling.h"

namespace cr = coordexp::rollout;

namespace {

int64_t vocab() {
  static const char* env = std::getenv("COORDEXP_BENCH_VOCAB");
  static const int64_t v = env ? std::atoll(env) : 152670;
  return v;
}

void set_threads() {
  if (!std::getenv("COORDEXP_BENCH_THREADS")) setenv("COORDEXP_BENCH_THREADS", "1", 0);
  coordexp::bench::set_bench_threads();
}

torch::Tensor logits(double sigma) {
  auto gen = at::detail::createCPUGenerator(7);
  return torch::randn({vocab()}, gen, torch::kFloat) * sigma;
}

// Args: sigma, top_k.
void BM_TopKMask(benchmark::State& state) {
  set_threads();
  const auto x = logits(static_cast<double>(state.range(0))).to(torch::kDouble);
  int64_t kept = 0;
  for (auto _ : state) kept = cr::top_k_keep_mask(x, state.range(1)).sum().item<int64_t>();
  state.counters["kept"] = static_cast<double>(kept);
}
BENCHMARK(BM_TopKMask)->Args({2, 50})->Args({2, 1000})->Unit(benchmark::kMillisecond);

// Args: sigma, top_p in thousandths.
void BM_TopPMask(benchmark::State& state) {
  set_threads();
  const auto probs = torch::softmax(logits(static_cast<double>(state.range(0))).to(torch::kDouble), 0);
  const double top_p = static_cast<double>(state.range(1)) / 1000.0;
  int64_t kept = 0;
  for (auto _ : state) kept = cr::top_p_keep_mask(probs, top_p).sum().item<int64_t>();
  state.counters["kept"] = static_cast<double>(kept);
}
BENCHMARK(BM_TopPMask)->Args({6, 900})->Args({6, 950})->Args({2, 900})->Args({2, 999})->Unit(benchmark::kMillisecond);

// Args: sigma, top_k, top_p in thousandths (temperature 1).
void BM_SamplingDistribution(benchmark::State& state) {
  set_threads();
  const auto x = logits(static_cast<double>(state.range(0)));
  const cr::SamplingParams params{1.0, state.range(1), static_cast<double>(state.range(2)) / 1000.0};
  int64_t kept = 0;
  for (auto _ : state) kept = cr::sampling_distribution(x, params).gt(0).sum().item<int64_t>();
  state.counters["kept"] = static_cast<double>(kept);
}
BENCHMARK(BM_SamplingDistribution)
    ->Args({6, 0, 1000})
    ->Args({6, 0, 900})
    ->Args({6, 50, 950})
    ->Args({2, 0, 900})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
