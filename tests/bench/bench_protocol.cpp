// Protocol speed on a dense answer: 60 objects (about 1.6k tokens). Parsing a rollout must take
// microseconds, not milliseconds. Needs the Qwen3 tokenizer ($COORDEXP_TOKENIZER_DIR or
// <source>/.cache/tokenizer-qwen3).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>

#include "coordexp/protocol/channel_b.h"
#include "coordexp/protocol/parse.h"
#include "coordexp/protocol/render.h"

namespace {

using namespace coordexp;

const tokenizer::Tokenizer& tok() {
  static const auto t = [] {
    const char* env = std::getenv("COORDEXP_TOKENIZER_DIR");
    auto p = tokenizer::Tokenizer::from_dir(env && *env ? env : std::string(COORDEXP_SOURCE_DIR) + "/.cache/tokenizer-qwen3");
    p->ensure_coord_tokens();
    return p;
  }();
  return *t;
}

std::vector<protocol::Object> objects(int n) {
  static const char* const descs[] = {"person", "black cat", "traffic light", "red car on the left",
                                      "cup", "dining table", "potted plant", "dog's bowl"};
  std::mt19937 rng(1);
  std::vector<protocol::Object> v;
  for (int i = 0; i < n; ++i) {
    const int x = rng() % 900, y = rng() % 900;
    v.push_back({descs[i % 8], protocol::GeometryKind::kBbox,
                 {x, y, x + 1 + static_cast<int>(rng() % 99), y + 1 + static_cast<int>(rng() % 99)}});
  }
  return v;
}

const protocol::TokenizedAnswer& answer60() {
  static const auto a = protocol::render_answer(objects(60), tok(), protocol::FieldOrder::kDescFirst);
  return a;
}

void BM_ParseIds60(benchmark::State& state) {
  const auto& a = answer60();
  for (auto _ : state) benchmark::DoNotOptimize(protocol::parse_ids(a.ids, tok()));
  state.counters["tokens"] = static_cast<double>(a.ids.size());
}
BENCHMARK(BM_ParseIds60)->Unit(benchmark::kMicrosecond);

void BM_ParseText60(benchmark::State& state) {
  const auto& a = answer60();
  for (auto _ : state) benchmark::DoNotOptimize(protocol::parse_text(a.text));
}
BENCHMARK(BM_ParseText60)->Unit(benchmark::kMicrosecond);

void BM_RenderAnswer60(benchmark::State& state) {
  const auto objs = objects(60);
  for (auto _ : state)
    benchmark::DoNotOptimize(protocol::render_answer(objs, tok(), protocol::FieldOrder::kDescFirst));
}
BENCHMARK(BM_RenderAnswer60)->Unit(benchmark::kMicrosecond);

// Rollout truncated inside object 41: keep 40, inject 20 FN.
void BM_BuildYIn60(benchmark::State& state) {
  const auto& a = answer60();
  const std::vector<tokenizer::TokenId> rollout(a.ids.begin(), a.ids.begin() + a.layout.objects[40].tokens.end - 3);
  const auto parsed = protocol::parse_ids(rollout, tok());
  const auto all = objects(60);
  const std::vector<protocol::Object> fn(all.begin() + 40, all.end());
  for (auto _ : state)
    benchmark::DoNotOptimize(protocol::build_y_in(parsed, fn, tok(), protocol::PrefixMode::kRaw,
                                                  protocol::FieldOrder::kDescFirst));
}
BENCHMARK(BM_BuildYIn60)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
