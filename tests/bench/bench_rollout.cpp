// bench_rollout: rollout::generate decode speed (new tokens per second of decode steps) at batch 1
// and 8, greedy, on the tiny fixture model (tests/data/qwen3vl-tiny-a: overhead-bound) and on
// bench_model's ~100M-parameter shape (random weights, float32, CPU). Each row: one 8x8-patch image
// (16 tokens) + 48 text tokens, 32 new tokens (no stop ids, so every row runs to the limit); the
// *Staggered variant ends row r after 4 * (r + 1) tokens (a constraint forces the stop id), so
// finished rows leave the batch and `row_steps` shows how many sequence-steps were computed.
// Threads (LibTorch and BLIS): COORDEXP_BENCH_THREADS (default: all hardware threads);
// COORDEXP_BENCH_DECODE_THREADS sets GenerationOptions::decode_threads (default 1; 0 = keep).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>

#include "bench_common.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/rollout/generator.h"

namespace cm = coordexp::model;
namespace cr = coordexp::rollout;

namespace {

// New tokens per row: COORDEXP_BENCH_NEW_TOKENS (default 32; fewer keeps slow configurations short).
int64_t new_tokens() {
  static const int64_t n = std::getenv("COORDEXP_BENCH_NEW_TOKENS") ? std::atoi(std::getenv("COORDEXP_BENCH_NEW_TOKENS")) : 32;
  return n;
}

cm::Qwen3VL& tiny_model() {
  static cm::Qwen3VL m = [] {
    coordexp::bench::set_bench_threads();
    return cm::Qwen3VL::load(std::string(COORDEXP_SOURCE_DIR) + "/tests/data/qwen3vl-tiny-a");
  }();
  return m;
}

// bench_model.cpp's shape: 12 layers, hidden 768, vocab 32000.
cm::Qwen3VL& medium_model() {
  static cm::Qwen3VL m = [] {
    coordexp::bench::set_bench_threads();
    const cm::Qwen3VLConfig c = coordexp::bench::medium_config();
    auto m = cm::Qwen3VL::create(c);
    m.init_random(0, {0.02, 0.02, 0.0, 0.0});
    return m;
  }();
  return m;
}

cr::GenerationRequest make_request(const cm::Qwen3VL& model, int64_t rows) {
  const auto& c = model.config();
  const int64_t patch_dim = 3 * c.vision.temporal_patch_size * c.vision.patch_size * c.vision.patch_size;
  auto gen = at::detail::createCPUGenerator(0);
  cr::GenerationRequest req;
  std::vector<torch::Tensor> px, grid;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int64_t> ids{1, 2, c.vision_start_token_id};
    for (int i = 0; i < 16; ++i) ids.push_back(c.image_token_id);
    ids.push_back(c.vision_end_token_id);
    for (int64_t i = 0; i < 48; ++i) ids.push_back(100 + (i * 7 + r) % 900);
    req.prompts.push_back(ids);
    px.push_back(torch::rand({64, patch_dim}, gen, torch::kFloat));
    grid.push_back(torch::tensor({1, 8, 8}, torch::kLong).unsqueeze(0));
  }
  req.pixel_values = torch::cat(px);
  req.image_grid_thw = torch::cat(grid);
  return req;
}

constexpr int64_t kStopId = 7;

// Row r (in the order rows are made) may only pick kStopId after 4 * (r + 1) tokens, and must then.
class StopAfter : public cr::RowConstraint {
 public:
  explicit StopAfter(int64_t length) : length_(length) {}
  void allowed(std::vector<uint8_t>& a) const override {
    const bool stop_now = steps_ + 1 >= length_;
    std::fill(a.begin(), a.end(), static_cast<uint8_t>(stop_now ? 0 : 1));
    a[kStopId] = static_cast<uint8_t>(stop_now ? 1 : 0);
  }
  void advance(int64_t) override { ++steps_; }

 private:
  int64_t length_, steps_ = 0;
};

class StaggeredStops : public cr::ConstraintFactory {
 public:
  std::unique_ptr<cr::RowConstraint> make_row() const override {
    return std::make_unique<StopAfter>(4 * (next_++ % 8 + 1));
  }

 private:
  mutable std::atomic<int64_t> next_{0};
};

void run(benchmark::State& state, cm::Qwen3VL& model, bool staggered) {
  const int64_t rows = state.range(0);
  const auto req = make_request(model, rows);
  cr::GenerationOptions o;
  o.max_new_tokens = new_tokens();
  o.batch_size = rows;
  if (const char* t = std::getenv("COORDEXP_BENCH_DECODE_THREADS")) o.decode_threads = std::atoi(t);
  StaggeredStops stops;
  if (staggered) {
    o.constraint = &stops;
    o.stop_ids = {kStopId};
  }
  double decode_tokens = 0, decode_seconds = 0, prefill_tokens = 0, prefill_seconds = 0, row_steps = 0, steps = 0;
  for (auto _ : state) {
    const auto res = cr::generate(model, req, o);
    decode_tokens += res.stats.decode_tokens;
    decode_seconds += res.stats.decode_seconds;
    prefill_tokens += res.stats.prefill_tokens;
    prefill_seconds += res.stats.prefill_seconds;
    row_steps += res.stats.decode_row_steps;
    steps += res.stats.decode_steps;
  }
  state.counters["decode_tok_per_s"] = decode_tokens / decode_seconds;
  state.counters["prefill_tok_per_s"] = prefill_tokens / prefill_seconds;
  state.counters["row_steps"] = benchmark::Counter(row_steps, benchmark::Counter::kAvgIterations);
  state.counters["row_steps_without_eviction"] = benchmark::Counter(steps * rows, benchmark::Counter::kAvgIterations);
}

void BM_GenerateTiny(benchmark::State& state) { run(state, tiny_model(), false); }
void BM_Generate100M(benchmark::State& state) { run(state, medium_model(), false); }
void BM_Generate100MStaggered(benchmark::State& state) { run(state, medium_model(), true); }

}  // namespace

// bench-smoke (COORDEXP_BENCH_SMOKE): one pass each instead of seconds of them.
const double kShortMinTime = coordexp::bench::smoke_run() ? 0.001 : 2.0;
const double kLongMinTime = coordexp::bench::smoke_run() ? 0.001 : 5.0;
BENCHMARK(BM_GenerateTiny)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->MinTime(kShortMinTime);
BENCHMARK(BM_Generate100M)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->MinTime(kLongMinTime);
BENCHMARK(BM_Generate100MStaggered)->Arg(8)->Unit(benchmark::kMillisecond)->MinTime(kLongMinTime);

BENCHMARK_MAIN();
