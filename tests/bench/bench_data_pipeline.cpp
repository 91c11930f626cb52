// Data pipeline cost on COCO-like inputs: 128 JPEGs of 500x375 (smart_resize -> 512x384, Pillow
// bicubic, 192 image tokens) with 8 boxes each. Measures opening the dataset (JSONL validation +
// per-record length: answer rendering and tokenization), building one sample (decode, resize,
// patchify, prompt + answer tokens), and loader throughput for 0/1/2 worker threads (batch 4).
// Needs the Qwen3 tokenizer ($COORDEXP_TOKENIZER_DIR or <source>/.cache/tokenizer-qwen3).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "coordexp/data/loader.h"
#include "coordexp/protocol/render.h"
#include "coordexp/tokenizer/chat_format.h"

namespace {

using namespace coordexp;
namespace fs = std::filesystem;

constexpr int kRecords = 128;

struct Fixture {
  fs::path dir;
  std::string jsonl;
  std::shared_ptr<const tokenizer::Tokenizer> tok;
  std::shared_ptr<const model::ImagePreprocessor> pre;
  config::DataOptions data;

  Fixture() {
    dir = fs::temp_directory_path() / ("coordexp_bench_data_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    cv::RNG rng(1);
    std::ofstream out(dir / "train.jsonl");
    for (int i = 0; i < kRecords; ++i) {
      cv::Mat m(375, 500, CV_8UC3);
      rng.fill(m, cv::RNG::UNIFORM, 0, 255);
      const std::string name = "img" + std::to_string(i) + ".jpg";
      cv::imwrite((dir / name).string(), m);
      nlohmann::json rec = {{"images", {name}}, {"width", 500}, {"height", 375}};
      rec["objects"] = nlohmann::json::array();
      for (int k = 0; k < 8; ++k)
        rec["objects"].push_back({{"desc", "object of class " + std::to_string((i + k) % 80)},
                                  {"bbox_2d", {10 + 20 * k, 5 + 30 * k, 200 + 30 * k, 120 + 30 * k}}});
      out << rec.dump() << "\n";
    }
    jsonl = (dir / "train.jsonl").string();
    const char* env = std::getenv("COORDEXP_TOKENIZER_DIR");
    auto t = tokenizer::Tokenizer::from_dir(env && *env ? std::string(env)
                                                        : std::string(COORDEXP_SOURCE_DIR) + "/.cache/tokenizer-qwen3");
    t->ensure_coord_tokens();
    tok = std::move(t);
    pre = std::make_shared<const model::ImagePreprocessor>(model::ImageProcessorConfig{}, config::PreprocessOptions{});
  }
  ~Fixture() { fs::remove_all(dir); }

  std::shared_ptr<const data::DetectionDataset> open(int threads) {
    config::DataOptions d = data;
    d.num_workers = threads;
    return std::make_shared<const data::DetectionDataset>(
        std::vector<std::string>{jsonl}, data::DatasetOptions::from_config(d, config::ProtocolOptions{}), tok, pre);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_DatasetOpen(benchmark::State& state) {
  at::set_num_threads(1);
  fixture();  // writes the images once, outside the timing
  for (auto _ : state) benchmark::DoNotOptimize(fixture().open(static_cast<int>(state.range(0))));
  state.SetItemsProcessed(state.iterations() * kRecords);
}
BENCHMARK(BM_DatasetOpen)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SampleBuild(benchmark::State& state) {
  at::set_num_threads(1);
  const auto ds = fixture().open(1);
  int64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(ds->get(i++ % kRecords, 0));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SampleBuild)->Unit(benchmark::kMillisecond)->UseRealTime();

// The parts of a sample build: image decode + preprocess, prompt tokens, answer tokens.
void BM_PartImage(benchmark::State& state) {
  at::set_num_threads(1);
  const auto ds = fixture().open(1);
  int64_t i = 0;
  for (auto _ : state) {
    const auto& r = ds->record(i++ % kRecords);
    benchmark::DoNotOptimize((*fixture().pre)({model::load_rgb_image(r.images[0])}));
  }
}
BENCHMARK(BM_PartImage)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PartPromptTokens(benchmark::State& state) {
  const auto spec = data::PromptSpec::from_config(fixture().data, config::ProtocolOptions{});
  for (auto _ : state)
    benchmark::DoNotOptimize(tokenizer::build_chat_prompt(*fixture().tok, data::detection_chat_prompt(spec, {192})));
}
BENCHMARK(BM_PartPromptTokens)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PartAnswerTokens(benchmark::State& state) {
  const auto ds = fixture().open(1);
  std::vector<protocol::Object> objects;
  for (const auto& o : ds->record(0).objects) objects.push_back(o.to_protocol());
  for (auto _ : state)
    benchmark::DoNotOptimize(protocol::render_answer(objects, *fixture().tok, protocol::FieldOrder::kDescFirst));
}
BENCHMARK(BM_PartAnswerTokens)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_LoaderSamplesPerSecond(benchmark::State& state) {
  at::set_num_threads(1);
  const auto ds = fixture().open(1);
  data::LoaderOptions o;
  o.batch_size = 4;
  o.num_workers = static_cast<int>(state.range(0));
  o.prefetch_batches = 4;
  data::DataLoader loader(ds, o);
  int64_t samples = 0;
  for (auto _ : state) samples += loader.next().size();
  state.SetItemsProcessed(samples);
}
BENCHMARK(BM_LoaderSamplesPerSecond)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
