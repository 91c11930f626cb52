// Channel-B matching speed: the exact assignment solve on a random N x N cost matrix, and the whole
// B2 step (costs + solve + gates) on N predictions vs N GT boxes where half the predictions are
// near-copies of GT boxes. Matching runs once per rollout on the CPU, so it must stay far below a
// forward pass even for dense images (N = 100).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>

#include "coordexp/matching/assignment.h"
#include "coordexp/matching/matcher.h"

namespace {

using namespace coordexp;

void BM_SolveAssignment(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(0.0, 3.0);
  matching::CostMatrix cost(n, n);
  for (double& x : cost.values) x = u(rng);
  for (auto _ : state) benchmark::DoNotOptimize(matching::solve_assignment(cost));
}
BENCHMARK(BM_SolveAssignment)->Arg(10)->Arg(30)->Arg(100)->Unit(benchmark::kMicrosecond);

void BM_MatchObjects(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  std::mt19937 rng(2);
  std::uniform_real_distribution<double> u(0.0, 0.9), side(0.01, 0.1), jitter(-0.01, 0.01);
  std::vector<matching::MatchObject> gts, preds;
  for (int i = 0; i < n; ++i) {
    const double x = u(rng), y = u(rng);
    gts.push_back(matching::match_object_from_norm("object", protocol::GeometryKind::kBbox,
                                                   {x, y, x + side(rng), y + side(rng)}));
  }
  for (int i = 0; i < n; ++i) {
    if (i % 2 == 0) {
      const matching::Box& g = gts[(i * 7) % n].box;
      preds.push_back(matching::match_object_from_norm(
          "object", protocol::GeometryKind::kBbox,
          {g[0] + jitter(rng), g[1] + jitter(rng), g[2] + jitter(rng), g[3] + jitter(rng)}));
    } else {
      const double x = u(rng), y = u(rng);
      preds.push_back(matching::match_object_from_norm("object", protocol::GeometryKind::kBbox,
                                                       {x, y, x + side(rng), y + side(rng)}));
    }
  }
  const config::MatchingOptions options;
  for (auto _ : state) benchmark::DoNotOptimize(matching::match_objects(preds, gts, options));
}
BENCHMARK(BM_MatchObjects)->Arg(10)->Arg(30)->Arg(100)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
