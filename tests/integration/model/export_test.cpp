// `coordexp-train export` end to end on the tiny fixture (qwen3vl-tiny-a, tied) and on a created
// untied, sharded base: random adapters written with write_adapter_dir (nonzero B on every linear map
// of vision, mergers and text; DoRA magnitudes != row norms; tied and untied coord offsets) are
// exported, reloaded as plain models with Qwen3VL::load and their logits compared with a float64
// reference forward in which this test applies the adapter math itself (it never calls
// adapter_merge) and with the float32 base carrying the runtime adapters. Also: the folder's files (config tie flag, index layout, copied tokenizer files),
// every documented error, and peak RSS of a streamed export of a 4+-shard model against its largest shard.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "coordexp/model/adapter.h"
#include "coordexp/model/adapter_files.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/util/fs.h"
#include "coordexp/util/safetensors.h"
#include "common/run_binary.h"

namespace cm = coordexp::model;
namespace cu = coordexp::util;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(COORDEXP_TEST_DATA_DIR) + "/qwen3vl-tiny-a";
constexpr int64_t kImStart = 1025, kImEnd = 1026, kVStart = 1033, kVEnd = 1034, kImage = 1036;
constexpr int64_t kCoord0 = 1040;  // rows 1040..2039 of the fixture's 2051-row vocabulary

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("coordexp_export_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// The built binary in a child process (tests/common/run_binary.h).
coordexp::testing::CommandResult run(const std::string& args) { return coordexp::testing::run_binary(args); }

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// A copy of the fixture with the tokenizer/processor/generation files an export must carry over
// (tokenizer.json declares <|coord_0|> = kCoord0, which export checks against the adapter).
void make_tied_base(const std::string& dir) {
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors", "preprocessor_config.json"})
    fs::copy_file(kFixture + "/" + f, dir + "/" + f);
  write_text(dir + "/tokenizer.json",
             R"({"version": "1.0", "added_tokens": [{"id": 1040, "content": "<|coord_0|>", "special": false}]})");
  write_text(dir + "/tokenizer_config.json", R"({"model_max_length": 262144})");
  write_text(dir + "/chat_template.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}\n");
  write_text(dir + "/generation_config.json", R"({"do_sample": false, "eos_token_id": 1026})");
}

// The fixture's shape, untied, random weights, saved as >= 3 shards.
void make_untied_sharded_base(const std::string& dir) {
  auto config = cm::Qwen3VLConfig::from_dir(kFixture);
  config.tie_word_embeddings = false;
  auto m = cm::Qwen3VL::create(config);
  m.init_random(5);
  m.save(dir, {torch::kFloat, 300 * 1024});
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
}

// Every linear map's module path: 2-D ".weight" keys except the embeddings and the head.
std::vector<std::pair<std::string, std::vector<int64_t>>> linear_modules(const cm::Qwen3VLConfig& c) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& s : cm::weight_table(c)) {
    const std::string& k = s.key;
    if (s.shape.size() != 2 || k.size() < 7 || k.substr(k.size() - 7) != ".weight") continue;
    if (k == "model.language_model.embed_tokens.weight" || k == "lm_head.weight" || k == "model.visual.pos_embed.weight")
      continue;
    out.push_back({k.substr(0, k.size() - 7), s.shape});
  }
  return out;
}

// A random adapter over every linear map of `base`; DoRA magnitudes are the row norms of W + sBA
// times U(0.7, 1.3) (so DoRA differs from LoRA).
std::pair<cm::AdapterSpec, cm::AdapterTensors> random_adapter(const std::string& base, cm::AdapterKind kind,
                                                               bool offset, bool tied_offset, uint64_t seed) {
  torch::manual_seed(seed);
  const auto config = cm::Qwen3VLConfig::from_dir(base);
  auto ckpt = cu::SafetensorsCheckpoint::open_dir(base);
  cm::AdapterSpec spec;
  spec.kind = kind;
  spec.rank = 4;
  spec.alpha = 8.0;
  cm::AdapterTensors t;
  for (const auto& [m, shape] : linear_modules(config)) {
    if (kind == cm::AdapterKind::kNone) break;
    t.lora_A[m] = torch::randn({4, shape[1]}) * 0.1;
    t.lora_B[m] = torch::randn({shape[0], 4}) * 0.1;
    if (kind == cm::AdapterKind::kDora) {
      const auto W = ckpt.tensor(m + ".weight").to(torch::kDouble);
      const auto M = W + spec.scale() * torch::matmul(t.lora_B[m].to(torch::kDouble), t.lora_A[m].to(torch::kDouble));
      t.magnitude[m] = (M.norm(2, {1}) * (torch::rand({shape[0]}, torch::kDouble) * 0.6 + 0.7)).to(torch::kFloat);
    }
    spec.target_modules.push_back(m);
  }
  std::sort(spec.target_modules.begin(), spec.target_modules.end());
  if (offset) {
    spec.coord_offset = true;
    spec.coord_offset_tied = tied_offset;
    spec.coord_first_id = kCoord0;
    t.coord_offset_embed = torch::randn({1000, config.text.hidden_size}) * 0.05;
    if (!tied_offset) t.coord_offset_lm_head = torch::randn({1000, config.text.hidden_size}) * 0.05;
  }
  return {spec, t};
}

// One sample: text with coord ids (the offset rows matter), an image, more text.
struct Inputs {
  torch::Tensor ids, pixels, grid;
};
Inputs sample() {
  auto gen = at::detail::createCPUGenerator(11);
  Inputs in;
  const int64_t gh = 8, gw = 12;
  in.pixels = torch::rand({gh * gw, 1536}, gen, torch::kFloat) * 2 - 1;
  in.grid = torch::tensor({int64_t(1), gh, gw}, torch::kLong).view({1, 3});
  std::vector<int64_t> ids = {kImStart, 872, 198, kVStart};
  for (int64_t i = 0; i < gh * gw / 4; ++i) ids.push_back(kImage);
  for (int64_t t : {kVEnd, int64_t(620), int64_t(1040), int64_t(1500), int64_t(2039), int64_t(13), kImEnd, int64_t(1777),
                    int64_t(1041), int64_t(905)})
    ids.push_back(t);
  in.ids = torch::tensor(ids, torch::kLong).unsqueeze(0);
  return in;
}

// Logits [T, V] (float64) of `m` on sample().
torch::Tensor logits_of(cm::Qwen3VL& m) {
  const auto in = sample();
  auto vision = m.encode_images(in.pixels.to(m.runtime().param_dtype), in.grid);
  cm::ForwardInputs f;
  f.input_ids = in.ids;
  f.vision = &vision;
  f.logits = cm::LogitsRequest::all();
  torch::NoGradGuard no_grad;
  return m.forward(f).logits[0].to(torch::kDouble);
}

// Logits of a plain model (no adapter files involved), computed in `dtype`.
torch::Tensor plain_logits(const std::string& dir, torch::ScalarType dtype = torch::kFloat) {
  cm::ModelRuntime rt;
  rt.param_dtype = dtype;
  auto m = cm::Qwen3VL::load(dir, rt);
  return logits_of(m);
}

// Logits of the float32 base with the adapters attached at run time (model/adapter.h): the model
// that training uses.
torch::Tensor adapted_logits(const std::string& base, const cm::AdapterSpec& spec, const cm::AdapterTensors& t) {
  auto m = cm::Qwen3VL::load(base);
  cm::attach_adapters(m, spec, 0);
  cm::load_adapter_tensors(m, t, "test adapter");
  return logits_of(m);
}

// Reference: the base in float64 with every weight replaced by the merged weight computed here from
// PEFT's formulas, the offset rows added to the embedding, and the head applied by hand to the
// final hidden states (so an untied head can differ from a tied embedding).
torch::Tensor reference_logits(const std::string& base, const cm::AdapterSpec& spec, const cm::AdapterTensors& t) {
  cm::ModelRuntime rt;
  rt.param_dtype = torch::kDouble;
  auto m = cm::Qwen3VL::load(base, rt);
  auto params = m.named_parameters();
  torch::NoGradGuard no_grad;
  const double s = spec.alpha / static_cast<double>(spec.rank);
  for (const auto& mod : spec.target_modules) {
    auto& W = params.at(mod + ".weight");
    const auto A = t.lora_A.at(mod).to(torch::kDouble), B = t.lora_B.at(mod).to(torch::kDouble);
    auto M = W + s * torch::matmul(B, A);
    if (spec.kind == cm::AdapterKind::kDora) {
      const auto row_norm = (M * M).sum(1, true).sqrt();
      M = t.magnitude.at(mod).to(torch::kDouble).view({-1, 1}) * M / row_norm;
    }
    W.copy_(M);
  }
  auto& E = params.at("model.language_model.embed_tokens.weight");
  const torch::Tensor E_base = E.clone();
  const bool tied = m.config().tie_word_embeddings;
  torch::Tensor head = tied ? E : params.at("lm_head.weight");
  head = head.clone();
  if (spec.coord_offset) {
    const auto off_e = t.coord_offset_embed.to(torch::kDouble);
    E.narrow(0, spec.coord_first_id, 1000).add_(off_e);
    if (spec.coord_offset_tied) {
      head.narrow(0, spec.coord_first_id, 1000).add_(off_e);
    } else {
      if (tied) head = E_base.clone();
      head.narrow(0, spec.coord_first_id, 1000).add_(t.coord_offset_lm_head.to(torch::kDouble));
    }
  }
  const auto in = sample();
  auto vision = m.encode_images(in.pixels.to(torch::kDouble), in.grid);
  cm::ForwardInputs f;
  f.input_ids = in.ids;
  f.vision = &vision;
  f.logits = cm::LogitsRequest::none();
  f.return_hidden_states = true;
  const auto h = m.forward(f).hidden_states[0];
  return torch::matmul(h, head.t());
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(cu::read_file(path)); }

struct Case {
  const char* name;
  bool sharded_untied_base;
  cm::AdapterKind kind;
  bool offset, tied_offset;
};

class Export : public ::testing::TestWithParam<Case> {};

}  // namespace

// Three comparisons, each within 1e-5 relative to the largest logit (1e-5 absolute for logits up to
// 1): (1) the export's weights: the merged model computed in float64 against the float64 reference
// (only the float32 rounding of the stored merged weights differs); (2) the issue's check, float32
// merged model vs the float32 adapted model (runtime adapters, model/adapter.h); (3) float32 merged
// vs the float64 reference. Then: not vacuous (the adapters move the logits by far more, the coord
// columns too when there is an offset). Why relative: the tied fixture's logits reach ~18, where one
// float32 ulp is 1.9e-6; its float32 forwards differ from each other by up to ~1.1e-5 (6 ulps) with
// the same math in another order. The test was disabled for failing with an absolute 1e-5 on
// merged float32 vs reference: 9.9e-6 measured here with the export as it was (a 1% margin that
// other thread counts / BLAS blockings cross); the merge itself was right (check (1): <= 3e-6).
TEST_P(Export, MergedLogitsEqualAdaptedAndReferenceWithin1e5) {
  const Case c = GetParam();
  TempDir d;
  const std::string base = d / "base", adapter = d / "adapter", out = d / "out";
  if (c.sharded_untied_base) {
    make_untied_sharded_base(base);
  } else {
    make_tied_base(base);
  }
  auto [spec, t] = random_adapter(base, c.kind, c.offset, c.tied_offset, 3);
  cm::write_adapter_dir(adapter, spec, t);

  const auto r = run("export --model " + base + " --adapter " + adapter + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;

  const auto merged64 = plain_logits(out, torch::kDouble);
  const auto merged32 = plain_logits(out);
  const auto ref = reference_logits(base, spec, t);
  const auto adapted32 = adapted_logits(base, spec, t);
  const auto base_logits = plain_logits(base);
  ASSERT_EQ(merged64.sizes(), ref.sizes());
  ASSERT_EQ(merged32.sizes(), adapted32.sizes());
  std::cout << "[export " << c.name << "] max |merged - reference| (float64 forwards) = " << max_abs(merged64, ref)
            << ", max |merged - adapted| (float32) = " << max_abs(merged32, adapted32)
            << ", max |merged float32 - reference| = " << max_abs(merged32, ref)
            << "; max |logit| = " << ref.abs().max().item<double>()
            << ", max |adapted - base| = " << max_abs(ref, base_logits) << "\n";
  const double tol = 1e-5 * std::max(1.0, ref.abs().max().item<double>());
  EXPECT_LT(max_abs(merged64, ref), tol);
  EXPECT_LT(max_abs(merged32, adapted32), tol);
  EXPECT_LT(max_abs(merged32, ref), tol);
  EXPECT_GT(max_abs(ref, base_logits), 1e-2) << "the adapter must change the logits for the test to mean anything";
  if (c.offset) {  // the coord columns move with the head offset
    const auto cols = torch::arange(kCoord0, kCoord0 + 1000);
    EXPECT_GT(max_abs(ref.index_select(1, cols), base_logits.index_select(1, cols)), 1e-2);
  }

  // The folder: tie flag, shard layout, copied files.
  const bool materialised = !c.sharded_untied_base && c.offset && !c.tied_offset;
  const auto cfg = read_json(out + "/config.json");
  const bool expect_tied = !c.sharded_untied_base && !materialised;
  EXPECT_EQ(cfg.at("tie_word_embeddings").get<bool>(), expect_tied);
  EXPECT_EQ(cfg.at("text_config").at("tie_word_embeddings").get<bool>(), expect_tied);
  auto out_ckpt = cu::SafetensorsCheckpoint::open_dir(out);
  EXPECT_EQ(out_ckpt.contains("lm_head.weight"), !expect_tied);
  if (c.sharded_untied_base) {
    auto bi = read_json(base + "/model.safetensors.index.json"), oi = read_json(out + "/model.safetensors.index.json");
    EXPECT_EQ(oi.at("weight_map"), bi.at("weight_map"));  // same shard layout
    EXPECT_GE(out_ckpt.num_files(), 3u);
  } else {
    EXPECT_FALSE(fs::exists(out + "/model.safetensors.index.json"));
    EXPECT_EQ(cu::read_file(out + "/tokenizer.json"), cu::read_file(base + "/tokenizer.json"));
    for (const char* f : {"tokenizer_config.json", "chat_template.jinja", "generation_config.json", "preprocessor_config.json"})
      EXPECT_EQ(cu::read_file(out + "/" + f), cu::read_file(base + "/" + f)) << f;
    if (!materialised) {  // nothing to change in config.json: byte for byte
      EXPECT_EQ(cu::read_file(out + "/config.json"), cu::read_file(base + "/config.json"));
    }
  }
  EXPECT_FALSE(cm::is_adapter_dir(out));
}

INSTANTIATE_TEST_SUITE_P(
    TinyFixture, Export,
    ::testing::Values(Case{"tied-base-dora-tied-offset", false, cm::AdapterKind::kDora, true, true},
                      Case{"tied-base-lora-untied-offset", false, cm::AdapterKind::kLora, true, false},
                      Case{"tied-base-dora-no-offset", false, cm::AdapterKind::kDora, false, true},
                      Case{"tied-base-offset-only", false, cm::AdapterKind::kNone, true, false},
                      Case{"untied-sharded-dora-untied-offset", true, cm::AdapterKind::kDora, true, false},
                      Case{"untied-sharded-lora-tied-offset", true, cm::AdapterKind::kLora, true, true}),
    [](const ::testing::TestParamInfo<Case>& i) {
      std::string n = i.param.name;
      for (auto& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

TEST(ExportErrors, NameTheProblemAndTheFix) {
  TempDir d;
  const std::string base = d / "base";
  make_tied_base(base);
  auto write = [&](const std::string& name, const cm::AdapterSpec& spec, const cm::AdapterTensors& t) {
    cm::write_adapter_dir(d / name, spec, t);
    return d / name;
  };
  auto [spec, t] = random_adapter(base, cm::AdapterKind::kLora, true, true, 4);
  const std::string good = write("good", spec, t);

  // --out not empty
  fs::create_directories(d / "full");
  write_text(d / "full/x.txt", "x");
  auto r = run("export --model " + base + " --adapter " + good + " --out " + (d / "full"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--out is not empty"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--force"), std::string::npos) << r.output;
  r = run("export --model " + base + " --adapter " + good + " --out " + (d / "full") + " --force");
  EXPECT_EQ(r.code, 0) << r.output;
  // --out is the base
  r = run("export --model " + base + " --adapter " + good + " --out " + base + " --force");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("base model directory"), std::string::npos) << r.output;

  // a module the base does not have, and a shape mismatch: both in one error with both shapes
  {
    auto s2 = spec;
    auto t2 = t;
    const std::string ghost = "model.language_model.layers.7.self_attn.q_proj";
    t2.lora_A[ghost] = torch::randn({4, 64});
    t2.lora_B[ghost] = torch::randn({64, 4});
    s2.target_modules.push_back(ghost);
    std::sort(s2.target_modules.begin(), s2.target_modules.end());
    const std::string k = "model.language_model.layers.0.mlp.up_proj";
    t2.lora_A[k] = torch::randn({4, 60});
    const auto dir = write("bad_modules", s2, t2);
    r = run("export --model " + base + " --adapter " + dir + " --out " + (d / "o1"));
    EXPECT_EQ(r.code, 1) << r.output;
    for (const std::string& part :
         {std::string("base_model.model.") + ghost + ": matches no base tensor", std::string("lora_A.weight [4, 60]"),
          std::string("in_features 64 of model.language_model.layers.0.mlp.up_proj.weight [128, 64]"),
          std::string("base model the adapter was trained on")})
      EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
    EXPECT_FALSE(fs::exists(d / "o1/model.safetensors")) << "nothing is written before validation passes";
  }
  // coord_first_id beyond the vocabulary, and one that disagrees with the tokenizer
  {
    auto s2 = spec;
    s2.coord_first_id = 1100;
    const auto dir = write("bad_coord", s2, t);
    r = run("export --model " + base + " --adapter " + dir + " --out " + (d / "o2"));
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find("coord_first_id 1100 + 1000 rows is beyond the vocabulary of 2051"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("<|coord_0|> is 1040"), std::string::npos) << r.output;
  }
  // an adapter on the embedding is refused
  {
    auto s2 = spec;
    auto t2 = t;
    const std::string e = "model.language_model.embed_tokens";
    t2.lora_A[e] = torch::randn({4, 64});
    t2.lora_B[e] = torch::randn({2051, 4});
    s2.target_modules.push_back(e);
    std::sort(s2.target_modules.begin(), s2.target_modules.end());
    r = run("export --model " + base + " --adapter " + write("bad_embed", s2, t2) + " --out " + (d / "o3"));
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find("not a linear map"), std::string::npos) << r.output;
  }
  // not an adapter
  r = run("export --model " + base + " --adapter " + base + " --out " + (d / "o4"));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("no adapter_config.json"), std::string::npos) << r.output;
  // a training checkpoint holding the adapter in adapter/ is accepted
  fs::create_directories(d / "ckpt");
  fs::rename(good, d / "ckpt/adapter");
  r = run("export --model " + base + " --adapter " + (d / "ckpt") + " --out " + (d / "o5"));
  EXPECT_EQ(r.code, 0) << r.output;
}

// Peak RSS of a streamed export against the largest shard, measured on the exporting process: the
// peak with wait4 (ru_maxrss), the process baseline (libraries, LibTorch's static allocations) from
// the "RSS ... before loading" line the command prints before it reads anything. The base is ~80 MB
// in >= 4 shards of <= 16 MiB with a DoRA adapter + untied offset on every linear map; the bound is
// baseline + 2 x the largest shard + the adapter's files (the adapter is read whole, a mapped shard's
// pages and one merged tensor with its float64 temporaries are resident at a time), and the growth
// must stay well below the model's size (not streamed = the whole model resident).
TEST(ExportMemory, PeakRssAboutOneShard) {
  TempDir d;
  const std::string base = d / "base";
  {
    auto c = cm::Qwen3VLConfig::from_dir(kFixture);
    c.tie_word_embeddings = true;
    c.text.hidden_size = 512;
    c.text.intermediate_size = 1536;
    c.text.num_hidden_layers = 8;
    c.text.num_attention_heads = 8;
    c.text.num_key_value_heads = 4;
    c.vision.out_hidden_size = 512;
    auto m = cm::Qwen3VL::create(c);
    m.init_random(1);
    m.save(base, {torch::kFloat, 16ull << 20});
    auto [spec, t] = random_adapter(base, cm::AdapterKind::kDora, true, false, 9);
    cm::write_adapter_dir(d / "adapter", spec, t);
  }
  const std::string log = d / "export.log";
  double peak_mb = 0.0;
  {
    std::string bin = COORDEXP_TRAIN_BIN;
    std::vector<std::string> args = {"export", "--model", base, "--adapter", d / "adapter", "--out", d / "out"};
    std::vector<char*> argv = {bin.data()};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (!::freopen(log.c_str(), "w", stdout)) ::_exit(126);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    int status = 0;
    struct rusage ru {};
    ::wait4(pid, &status, 0, &ru);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cu::read_file(log);
    peak_mb = static_cast<double>(ru.ru_maxrss) / 1024.0;
  }
  const std::string out = cu::read_file(log);
  const std::string tag = "export: memory: RSS ";
  const size_t at = out.find(tag);
  ASSERT_NE(at, std::string::npos) << out;
  const double baseline_mb = std::stod(out.substr(at + tag.size()));
  auto file_mb = [](const fs::path& dir, const std::string& ext) {
    double largest = 0.0, total = 0.0;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ext) {
        largest = std::max(largest, fs::file_size(e.path()) / 1048576.0);
        total += fs::file_size(e.path()) / 1048576.0;
      }
    return std::make_pair(largest, total);
  };
  const auto [shard_mb, total_mb] = file_mb(base, ".safetensors");
  const double adapter_mb = file_mb(d / "adapter", ".safetensors").second;
  const double growth_mb = peak_mb - baseline_mb;
  const size_t num_files = cu::SafetensorsCheckpoint::open_dir(base).num_files();
  std::cout << "[export memory] base " << total_mb << " MiB in " << num_files << " files, largest " << shard_mb
            << " MiB; adapter " << adapter_mb << " MiB; peak RSS " << peak_mb << " MiB, baseline " << baseline_mb
            << " MiB: growth " << growth_mb << " MiB = " << growth_mb / shard_mb << " x largest shard ("
            << growth_mb / total_mb << " x the model)\n";
  EXPECT_GE(num_files, 4u);
  EXPECT_LT(growth_mb, 2.0 * shard_mb + adapter_mb);
  EXPECT_LT(growth_mb, 0.6 * total_mb) << "not streamed: the whole model was resident";
}
