// Shared setup of the trainer integration tests: a tiny random Qwen3-VL written by the real binary
// (make-tiny with the real Qwen3 tokenizer, then expand-vocab for the coord rows), a synthetic shapes
// dataset, a small-but-real RunConfig, helpers to run the coordexp-train binary and to read
// metrics.jsonl. Built once per test binary (the model and data are read-only for the tests).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordexp/config/run_config.h"
#include "coordexp/data/dataset.h"
#include "coordexp/data/synthetic.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/tokenizer/tokenizer.h"
#include "coordexp/train/stage1_step.h"
#include "common/run_binary.h"

namespace coordexp::train::testing {
namespace fs = std::filesystem;

inline std::string tokenizer_dir() {
  if (const char* d = std::getenv("COORDEXP_TOKENIZER_DIR"); d && *d) return d;
  return std::string(COORDEXP_SOURCE_DIR) + "/.cache/tokenizer-qwen3";
}

// The binary runner shared by the test binaries (tests/common/run_binary.h).
using coordexp::testing::CommandResult;
using coordexp::testing::run_binary;

// The model and data every test trains on (created on first use, removed at exit).
struct Assets {
  fs::path root;
  std::string model_dir;  // tiny Qwen3-VL with coord rows (make-tiny + expand-vocab)
  std::string train_jsonl, val_jsonl;

  static const Assets& get() {
    static Assets a = [] {
      Assets x;
      x.root = fs::temp_directory_path() / ("coordexp_train_it_" + std::to_string(::getpid()));
      fs::remove_all(x.root);
      fs::create_directories(x.root);
      if (!fs::exists(tokenizer_dir() + "/tokenizer.json"))
        throw std::runtime_error("Qwen3 tokenizer not found in " + tokenizer_dir() +
                                 " (run scripts/fetch-tokenizer.sh " + tokenizer_dir() + " or set COORDEXP_TOKENIZER_DIR)");
      const std::string spec = std::string(COORDEXP_SOURCE_DIR) + "/tests/data/make_tiny/tiny.yaml";
      const std::string raw = (x.root / "tiny-raw").string();
      x.model_dir = (x.root / "tiny").string();
      auto r = run_binary("make-tiny --spec " + spec + " --tokenizer " + tokenizer_dir() + " --out " + raw);
      if (r.code != 0) throw std::runtime_error("make-tiny failed: " + r.output);
      r = run_binary("expand-vocab --src " + raw + " --dst " + x.model_dir);
      if (r.code != 0) throw std::runtime_error("expand-vocab failed: " + r.output);
      data::SyntheticDataOptions d;
      d.out_dir = (x.root / "data").string();
      d.num_train = 8;
      d.num_val = 3;
      d.width = 64;
      d.height = 64;
      d.max_objects = 2;
      d.seed = 7;
      const auto written = data::write_synthetic_dataset(d);
      x.train_jsonl = written.train_jsonl;
      x.val_jsonl = written.val_jsonl;
      std::atexit([] { fs::remove_all(fs::temp_directory_path() / ("coordexp_train_it_" + std::to_string(::getpid()))); });
      return x;
    }();
    return a;
  }
};

// A fresh output directory per test.
inline std::string fresh_dir(const std::string& name) {
  const fs::path p = Assets::get().root / "runs" / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p.string();
}

// A JSONL next to `dir` holding only the training set's first record (its images copied beside it):
// every step of a run on it sees the same batch.
inline std::string one_record_jsonl(const std::string& dir) {
  const std::string one = dir + "_one.jsonl";
  {
    std::ifstream in(Assets::get().train_jsonl);
    std::string first;
    std::getline(in, first);
    std::ofstream(one) << first << "\n";
  }
  fs::copy(fs::path(Assets::get().train_jsonl).parent_path() / "images", fs::path(one).parent_path() / "images",
           fs::copy_options::skip_existing | fs::copy_options::recursive);
  return one;
}

// A small, fast, deterministic configuration: CPU, float32, one compute thread, 64x64 images (a
// 4096-pixel budget: 16 patches of 16 px -> 4 image tokens), one loader worker, no progress line.
inline config::RunConfig base_config(const std::string& output_dir) {
  const Assets& a = Assets::get();
  config::RunConfig c;
  c.model.path = a.model_dir;
  c.data.train_jsonl = {a.train_jsonl};
  c.data.num_workers = 1;
  c.preprocess.min_pixels = 4096;
  c.preprocess.max_pixels = 4096;
  c.train.output_dir = output_dir;
  c.train.device = "cpu";
  c.train.precision = "fp32";
  c.train.seed = 3;
  c.train.num_threads = 1;  // a busy shared 2-core machine makes OpenMP's spin-waits dominate
  c.train.log_every = 1;
  c.train.max_steps = 4;
  c.optim.lr = 1e-3;
  c.optim.warmup_steps = 1;
  c.checkpoint.every = 0;
  c.checkpoint.keep_last = 0;
  c.log.progress = "off";
  return c;
}

// metrics.jsonl records that carry `key`, in file order.
inline std::vector<nlohmann::json> metrics_with(const std::string& output_dir, const std::string& key) {
  std::ifstream in(fs::path(output_dir) / "metrics.jsonl");
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains(key)) out.push_back(j);
  }
  return out;
}

// The YAML text of a config file for the binary: base_config's settings with grad_accum_steps 2.
inline std::string base_yaml(const std::string& output_dir, int64_t max_steps, int64_t checkpoint_every) {
  const Assets& a = Assets::get();
  return "model: {path: " + a.model_dir + "}\n" +
         "data: {train_jsonl: [" + a.train_jsonl + "], num_workers: 1}\n" +
         "preprocess: {min_pixels: 4096, max_pixels: 4096}\n" +
         "train: {output_dir: " + output_dir + ", device: cpu, precision: fp32, seed: 3, num_threads: 1, "
         "log_every: 1, grad_accum_steps: 2, max_steps: " + std::to_string(max_steps) + "}\n" +
         "optim: {lr: 1.0e-3, warmup_steps: 1}\n" +
         "checkpoint: {every: " + std::to_string(checkpoint_every) + ", keep_last: 0}\n" +
         "log: {progress: plain}\n";
}

// The tiny model's tokenizer, the synthetic training set as a dataset (64x64 images, no workers) and
// helpers to batch it and load the model: what the Channel-A / Channel-B tests share.
struct TinySetup {
  std::shared_ptr<tokenizer::Tokenizer> tok;
  std::shared_ptr<const data::DetectionDataset> dataset;
  coord::CoordIdRange ids;

  TinySetup() {
    const Assets& a = Assets::get();
    tok = tokenizer::Tokenizer::from_dir(a.model_dir);
    ids.first_id = tok->coord_vocab().first_id;
    config::PreprocessOptions pre;
    pre.min_pixels = pre.max_pixels = 4096;
    auto preprocessor = std::make_shared<const model::ImagePreprocessor>(
        model::ImagePreprocessor::from_model_dir(a.model_dir, pre));
    config::DataOptions d;
    d.num_workers = 0;
    dataset = std::make_shared<const data::DetectionDataset>(std::vector<std::string>{a.train_jsonl},
                                                             data::DatasetOptions::from_config(d, {}), tok, preprocessor);
  }

  // Samples [first, first + n) as one micro-batch (right-padded when lengths differ).
  PreparedBatch batch(int64_t first, int64_t n, const config::LossOptions& loss) const {
    std::vector<data::Sample> samples;
    for (int64_t i = first; i < first + n; ++i) samples.push_back(dataset->get(i, 0));
    return prepare_batch(data::collate(std::move(samples), dataset->pad_id()), loss);
  }

  model::Qwen3VL model(torch::ScalarType dtype = torch::kFloat) const {
    model::ModelRuntime rt;
    rt.param_dtype = dtype;
    return model::Qwen3VL::load(Assets::get().model_dir, rt);
  }
};

inline const TinySetup& tiny_setup() {
  static const TinySetup s;
  return s;
}

}  // namespace coordexp::train::testing
