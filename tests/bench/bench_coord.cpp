// CoordExp math cost vs the full-vocab softmax the LM already pays: coord decode + L_geo (gather,
// log-softmax over 1000 bins, exp decode, canonicalize, SmoothL1 + CIoU) forward+backward for 4096
// coord slots (1024 boxes), against a full-vocab (151936) log-softmax over the same 4096 positions.
// Single intra-op thread for reproducible numbers; the full-vocab side runs in 8 chunks of 512 rows
// (log-softmax is row-independent, so the work is identical while peak memory stays ~0.6 GB).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "coordexp/coord/losses.h"

namespace {

using namespace coordexp;

constexpr int64_t kSlots = 4096;
constexpr int64_t kFullVocab = 151936;
constexpr int64_t kChunk = 512;

std::vector<coord::ObjectSpan> boxes_for(int64_t slots) {
  torch::manual_seed(0);
  const torch::Tensor gt = torch::rand({slots / 4, 4}, torch::kDouble);
  std::vector<coord::ObjectSpan> objects(slots / 4);
  for (int64_t i = 0; i < slots / 4; ++i) {
    objects[i].coord_positions = {4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3};
    for (int j = 0; j < 4; ++j) objects[i].gt_box[j] = gt[i][j].item<double>();
  }
  return objects;
}

// Library entry point: coord_terms on aligned logits whose vocab is just the 1000 coord columns
// (the gather from a full-vocab row is a view + a [4096, 1000] row copy either way).
void BM_CoordDecodeGeoForwardBackward(benchmark::State& state) {
  at::set_num_threads(1);
  const auto objects = boxes_for(kSlots);
  const torch::Tensor logits = (torch::randn({kSlots, 1000}) * 3).requires_grad_(true);
  config::CoordOptions coord;
  coord.decode_mode = state.range(0) == 0 ? "exp" : "st";
  config::LossOptions loss;
  loss.geo.weight = 1.0;
  for (auto _ : state) {
    const coord::LossTerms terms = coord::coord_terms(logits, objects, coord::Context::kGt, coord::CoordIdRange{0}, coord, loss);
    const torch::Tensor total = coord::total_loss(terms, terms.counts(), loss);
    total.backward();
    benchmark::DoNotOptimize(logits.grad().data_ptr<float>());
    logits.mutable_grad().reset();
  }
  state.SetLabel(coord.decode_mode);
}
BENCHMARK(BM_CoordDecodeGeoForwardBackward)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// Full-vocab log-softmax forward over the same 4096 positions (what token CE computes anyway).
void BM_FullVocabLogSoftmaxForward(benchmark::State& state) {
  at::set_num_threads(1);
  const torch::Tensor chunk = torch::randn({kChunk, kFullVocab});
  torch::Tensor out = torch::empty_like(chunk);
  for (auto _ : state) {
    for (int64_t r = 0; r < kSlots; r += kChunk) torch::log_softmax_out(out, chunk, 1);
    benchmark::DoNotOptimize(out.data_ptr<float>());
  }
}
BENCHMARK(BM_FullVocabLogSoftmaxForward)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
