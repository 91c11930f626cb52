// Evaluation speed: `eval::evaluate` (COCO bbox + score-free metrics) on 5,000 images x 20 GT objects
// with 20 predictions each (80 categories; most predictions near-copies of a GT box, some wrong desc,
// some random), from in-memory records; and parsing the same predictions from JSONL text.
// Run: ./build/tests/bench/bench_eval --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "coordexp/eval/evaluate.h"
#include "coordexp/protocol/coords.h"

namespace {

using namespace coordexp;

constexpr int kImages = 5000, kObjects = 20, kCategories = 80, kW = 640, kH = 480;

struct Inputs {
  eval::GroundTruth gt;
  eval::PredictionSet preds;
  std::string pred_jsonl;
};

const Inputs& inputs() {
  static const Inputs in = [] {
    Inputs x;
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> u(0.0, 1.0), jitter(-0.04, 0.04);
    std::vector<data::Record> records;
    std::ostringstream jsonl;
    for (int i = 0; i < kImages; ++i) {
      data::Record r;
      r.images = {"img_" + std::to_string(i) + ".jpg"};
      r.width = kW, r.height = kH;
      r.source = "gt.jsonl:" + std::to_string(i + 1);
      eval::PredLine line;
      line.line = i + 1;
      line.image = r.images[0];
      line.parse_status = "complete";
      nlohmann::json objs = nlohmann::json::array();
      for (int k = 0; k < kObjects; ++k) {
        const double w = 8 + u(rng) * 200, h = 8 + u(rng) * 200;
        const double x1 = u(rng) * (kW - w), y1 = u(rng) * (kH - h);
        data::GtObject o;
        o.desc = "category " + std::to_string(static_cast<int>(u(rng) * kCategories));
        for (double v : {x1 / kW, y1 / kH, (x1 + w) / kW, (y1 + h) / kH}) o.coords.push_back({protocol::norm_to_bin(v), v});
        eval::PredObject p;
        p.desc = u(rng) < 0.9 ? o.desc : "category " + std::to_string(static_cast<int>(u(rng) * kCategories));
        if (u(rng) < 0.8) {
          p.xyxy = {x1 + jitter(rng) * w, y1 + jitter(rng) * h, x1 + w + jitter(rng) * w, y1 + h + jitter(rng) * h};
        } else {
          const double px = u(rng) * (kW - w), py = u(rng) * (kH - h);
          p.xyxy = {px, py, px + w, py + h};
        }
        for (int c = 0; c < 4; ++c) p.xyxy[c] = std::clamp(p.xyxy[c], 0.0, static_cast<double>(c % 2 ? kH : kW));
        if (p.xyxy[2] < p.xyxy[0]) std::swap(p.xyxy[0], p.xyxy[2]);
        if (p.xyxy[3] < p.xyxy[1]) std::swap(p.xyxy[1], p.xyxy[3]);
        p.score = std::round(u(rng) * 100) / 100;
        objs.push_back({{"desc", p.desc}, {"bbox_2d", p.xyxy}, {"score", p.score}});
        r.objects.push_back(std::move(o));
        line.objects.push_back(std::move(p));
      }
      jsonl << nlohmann::json{{"images", r.images}, {"width", kW}, {"height", kH}, {"parse_status", "complete"},
                              {"objects", objs}}.dump()
            << "\n";
      records.push_back(std::move(r));
      x.preds.lines.push_back(std::move(line));
    }
    x.preds.num_lines = kImages;
    x.gt = eval::GroundTruth::from_records(std::move(records));
    x.pred_jsonl = jsonl.str();
    return x;
  }();
  return in;
}

void BM_Evaluate(benchmark::State& state) {
  const Inputs& in = inputs();
  double ap = 0;
  for (auto _ : state) ap = eval::evaluate(in.gt, in.preds).coco.ap;
  state.counters["AP"] = ap;
  state.counters["images"] = kImages;
}
BENCHMARK(BM_Evaluate)->Unit(benchmark::kMillisecond);

void BM_ReadPredictions(benchmark::State& state) {
  const Inputs& in = inputs();
  for (auto _ : state) {
    std::istringstream s(in.pred_jsonl);
    benchmark::DoNotOptimize(eval::read_predictions(s, "pred.jsonl"));
  }
  state.counters["MB"] = static_cast<double>(in.pred_jsonl.size()) / 1e6;
}
BENCHMARK(BM_ReadPredictions)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
