// Adapter directories (adapter_files.h): write/read round trip (LoRA, DoRA, bf16, tied/untied coord
// offset, offset only), an adapter_config.json + safetensors written by hand in PEFT's naming
// (keys as PeftModel.save_pretrained produces them, PEFT's defaults for absent fields, regex and
// suffix target_modules), PEFT's target_modules matching rules, and every documented error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "coordexp/model/adapter_files.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "coordexp/util/safetensors.h"

namespace cm = coordexp::model;
namespace cu = coordexp::util;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("coordexp_adapter_files_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  std::string str() const { return path.string(); }
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

const std::string kQ = "model.language_model.layers.0.self_attn.q_proj";
const std::string kV = "model.language_model.layers.0.self_attn.v_proj";
const std::string kQkv = "model.visual.blocks.1.attn.qkv";

// A small adapter with distinct random tensors (rank 4; q: 16->32, v: 16->8, qkv: 12->36).
std::pair<cm::AdapterSpec, cm::AdapterTensors> make_adapter(cm::AdapterKind kind, bool offset, bool tied,
                                                             torch::ScalarType dtype = torch::kFloat32) {
  torch::manual_seed(7);
  cm::AdapterSpec spec;
  spec.kind = kind;
  spec.rank = 4;
  spec.alpha = 8.0;
  spec.dropout = 0.05;
  spec.base_model_name_or_path = "Qwen/Qwen3-VL-2B-Instruct";
  cm::AdapterTensors t;
  const std::vector<std::tuple<std::string, int64_t, int64_t>> mods = {{kQ, 16, 32}, {kV, 16, 8}, {kQkv, 12, 36}};
  if (kind != cm::AdapterKind::kNone) {
    for (const auto& [m, in, out] : mods) {
      t.lora_A[m] = torch::randn({4, in}).to(dtype);
      t.lora_B[m] = torch::randn({out, 4}).to(dtype);
      if (kind == cm::AdapterKind::kDora) t.magnitude[m] = torch::rand({out}).add(0.5).to(dtype);
      spec.target_modules.push_back(m);
    }
    std::sort(spec.target_modules.begin(), spec.target_modules.end());
  }
  if (offset) {
    spec.coord_offset = true;
    spec.coord_offset_tied = tied;
    spec.coord_first_id = 151670;
    t.coord_offset_embed = torch::randn({1000, 24}).to(dtype);
    if (!tied) t.coord_offset_lm_head = torch::randn({1000, 24}).to(dtype);
  }
  return {spec, t};
}

void expect_same(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    EXPECT_EQ(v.scalar_type(), b.at(k).scalar_type()) << k;
    EXPECT_TRUE(torch::equal(v, b.at(k))) << k;
  }
}

// Runs `fn`, expects a coordexp::UserError whose message contains every one of `parts`.
template <class Fn>
void expect_error(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown; expected one containing " << parts[0];
  } catch (const coordexp::UserError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

// A PEFT-style directory written by hand: config text + tensors under PEFT's key names.
void write_peft_dir(const TempDir& d, const std::string& config, const cu::NamedTensors& tensors) {
  write_text(d / "adapter_config.json", config);
  cu::write_safetensors(d / "adapter_model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace

TEST(AdapterFiles, RoundTripEveryKind) {
  struct Case {
    cm::AdapterKind kind;
    bool offset, tied;
    torch::ScalarType dtype;
  };
  const std::vector<Case> cases = {{cm::AdapterKind::kLora, false, true, torch::kFloat32},
                                   {cm::AdapterKind::kDora, true, true, torch::kFloat32},
                                   {cm::AdapterKind::kDora, true, false, torch::kBFloat16},
                                   {cm::AdapterKind::kLora, true, false, torch::kFloat32},
                                   {cm::AdapterKind::kNone, true, false, torch::kFloat32}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(cm::to_string(c.kind)) + (c.offset ? (c.tied ? " tied" : " untied") : " no-offset"));
    TempDir d;
    auto [spec, t] = make_adapter(c.kind, c.offset, c.tied, c.dtype);
    cm::write_adapter_dir(d.str(), spec, t);
    EXPECT_TRUE(cm::is_adapter_dir(d.str()));
    EXPECT_EQ(fs::exists(d / "coord_offset.safetensors"), c.offset);
    const cm::AdapterDir r = cm::read_adapter_dir(d.str());
    EXPECT_EQ(r.spec.kind, c.kind);
    EXPECT_EQ(r.spec.rank, 4);
    EXPECT_DOUBLE_EQ(r.spec.alpha, 8.0);
    EXPECT_DOUBLE_EQ(r.spec.dropout, 0.05);
    EXPECT_DOUBLE_EQ(r.spec.scale(), 2.0);
    EXPECT_EQ(r.spec.target_modules, spec.target_modules);
    EXPECT_EQ(r.spec.base_model_name_or_path, "Qwen/Qwen3-VL-2B-Instruct");
    EXPECT_EQ(r.spec.coord_offset, c.offset);
    if (c.offset) {
      EXPECT_EQ(r.spec.coord_offset_tied, c.tied);
      EXPECT_EQ(r.spec.coord_first_id, 151670);
      EXPECT_TRUE(torch::equal(r.tensors.coord_offset_embed, t.coord_offset_embed));
      EXPECT_EQ(r.tensors.coord_offset_embed.scalar_type(), c.dtype);
      EXPECT_EQ(r.tensors.coord_offset_lm_head.defined(), !c.tied);
      if (!c.tied) {
        EXPECT_TRUE(torch::equal(r.tensors.coord_offset_lm_head, t.coord_offset_lm_head));
      }
    }
    expect_same(r.tensors.lora_A, t.lora_A);
    expect_same(r.tensors.lora_B, t.lora_B);
    expect_same(r.tensors.magnitude, t.magnitude);
  }
}

// The files themselves carry PEFT's names and fields (checked on the raw files, not via our reader).
TEST(AdapterFiles, WritesPeftKeysAndFields) {
  TempDir d;
  auto [spec, t] = make_adapter(cm::AdapterKind::kDora, true, false);
  cm::write_adapter_dir(d.str(), spec, t);
  auto f = cu::SafetensorsFile::open(d / "adapter_model.safetensors");
  std::set<std::string> keys;
  for (const auto& i : f->tensors()) keys.insert(i.name);
  const std::set<std::string> expected = {
      "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight",
      "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_B.weight",
      "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_magnitude_vector",
      "base_model.model.model.language_model.layers.0.self_attn.v_proj.lora_A.weight",
      "base_model.model.model.language_model.layers.0.self_attn.v_proj.lora_B.weight",
      "base_model.model.model.language_model.layers.0.self_attn.v_proj.lora_magnitude_vector",
      "base_model.model.model.visual.blocks.1.attn.qkv.lora_A.weight",
      "base_model.model.model.visual.blocks.1.attn.qkv.lora_B.weight",
      "base_model.model.model.visual.blocks.1.attn.qkv.lora_magnitude_vector"};
  EXPECT_EQ(keys, expected);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const auto cfg = nlohmann::json::parse(cu::read_file(d / "adapter_config.json"));
  EXPECT_EQ(cfg.at("peft_type"), "LORA");
  EXPECT_EQ(cfg.at("task_type"), "CAUSAL_LM");
  EXPECT_EQ(cfg.at("r"), 4);
  EXPECT_TRUE(cfg.at("lora_alpha").is_number_integer());  // PEFT types lora_alpha as int
  EXPECT_EQ(cfg.at("lora_alpha"), 8);
  EXPECT_EQ(cfg.at("use_dora"), true);
  EXPECT_EQ(cfg.at("use_rslora"), false);
  EXPECT_EQ(cfg.at("bias"), "none");
  EXPECT_EQ(cfg.at("fan_in_fan_out"), false);
  EXPECT_TRUE(cfg.at("modules_to_save").is_null());
  EXPECT_EQ(cfg.at("target_modules"), nlohmann::json(spec.target_modules));
  auto c = cu::SafetensorsFile::open(d / "coord_offset.safetensors");
  ASSERT_NE(c->find("coord_offset.embed_tokens"), nullptr);
  ASSERT_NE(c->find("coord_offset.lm_head"), nullptr);
  const auto cj = nlohmann::json::parse(cu::read_file(d / "coordexp_adapter.json"));
  EXPECT_EQ(cj.at("coord_offset"), true);
  EXPECT_EQ(cj.at("coord_offset_tied"), false);
  EXPECT_EQ(cj.at("coord_first_id"), 151670);
}

// A directory as PEFT writes it for Qwen3-VL with target_modules ["q_proj", "v_proj"] (suffix rule),
// fields in PEFT's order and a lora_alpha written as float; r and alpha read from the file.
TEST(AdapterFiles, ReadsHandWrittenPeftDirectory) {
  TempDir d;
  const std::string cfg = R"({
  "alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "Qwen/Qwen3-VL-2B-Instruct",
  "bias": "none", "corda_config": null, "eva_config": null, "exclude_modules": null,
  "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
  "layer_replication": null, "layers_pattern": null, "layers_to_transform": null, "loftq_config": {},
  "lora_alpha": 16.0, "lora_bias": false, "lora_dropout": 0.1, "megatron_config": null,
  "megatron_core": "megatron.core", "modules_to_save": null, "peft_type": "LORA", "peft_version": "0.17.1",
  "r": 2, "rank_pattern": {}, "revision": null, "target_modules": ["v_proj", "q_proj"],
  "target_parameters": null, "task_type": "CAUSAL_LM", "trainable_token_indices": null,
  "use_dora": false, "use_qalora": false, "use_rslora": false
})";
  const auto a0 = torch::arange(2 * 6, torch::kFloat32).reshape({2, 6});
  const auto b0 = torch::arange(10 * 2, torch::kFloat32).reshape({10, 2}).neg();
  const auto a1 = torch::ones({2, 6});
  const auto b1 = torch::full({3, 2}, 0.5);
  write_peft_dir(d, cfg,
                 {{"base_model.model.model.language_model.layers.3.self_attn.q_proj.lora_A.weight", a0},
                  {"base_model.model.model.language_model.layers.3.self_attn.q_proj.lora_B.weight", b0},
                  {"base_model.model.model.language_model.layers.3.self_attn.v_proj.lora_A.weight", a1},
                  {"base_model.model.model.language_model.layers.3.self_attn.v_proj.lora_B.weight", b1}});
  const auto r = cm::read_adapter_dir(d.str());
  EXPECT_EQ(r.spec.kind, cm::AdapterKind::kLora);
  EXPECT_EQ(r.spec.rank, 2);
  EXPECT_DOUBLE_EQ(r.spec.alpha, 16.0);
  EXPECT_DOUBLE_EQ(r.spec.scale(), 8.0);
  EXPECT_DOUBLE_EQ(r.spec.dropout, 0.1);
  EXPECT_FALSE(r.spec.coord_offset);
  const std::vector<std::string> mods = {"model.language_model.layers.3.self_attn.q_proj",
                                         "model.language_model.layers.3.self_attn.v_proj"};
  EXPECT_EQ(r.spec.target_modules, mods);
  EXPECT_TRUE(torch::equal(r.tensors.lora_A.at(mods[0]), a0));
  EXPECT_TRUE(torch::equal(r.tensors.lora_B.at(mods[0]), b0));
  EXPECT_TRUE(torch::equal(r.tensors.lora_A.at(mods[1]), a1));
  EXPECT_TRUE(torch::equal(r.tensors.lora_B.at(mods[1]), b1));
  EXPECT_TRUE(r.tensors.magnitude.empty());
}

// Absent fields take PEFT's LoraConfig defaults (r 8, lora_alpha 8); DoRA magnitudes without
// ".weight"; a regex target_modules that must match the whole module path.
TEST(AdapterFiles, PeftDefaultsDoraAndRegexTargets) {
  TempDir d;
  const std::string m = "model.visual.blocks.0.attn.qkv";
  write_peft_dir(d, R"({"peft_type": "LORA", "use_dora": true, "target_modules": ".*\\.attn\\.qkv"})",
                 {{"base_model.model." + m + ".lora_A.weight", torch::randn({8, 4})},
                  {"base_model.model." + m + ".lora_B.weight", torch::randn({12, 8})},
                  {"base_model.model." + m + ".lora_magnitude_vector", torch::rand({12})}});
  const auto r = cm::read_adapter_dir(d.str());
  EXPECT_EQ(r.spec.kind, cm::AdapterKind::kDora);
  EXPECT_EQ(r.spec.rank, 8);
  EXPECT_DOUBLE_EQ(r.spec.alpha, 8.0);
  EXPECT_DOUBLE_EQ(r.spec.scale(), 1.0);
  EXPECT_DOUBLE_EQ(r.spec.dropout, 0.0);
  ASSERT_EQ(r.tensors.magnitude.count(m), 1u);
  EXPECT_EQ(r.tensors.magnitude.at(m).size(0), 12);
}

TEST(AdapterFiles, PeftTargetMatchingRules) {
  cm::PeftTargetModules list;
  list.names = {"q_proj", "model.visual.blocks.0.attn.qkv"};
  EXPECT_TRUE(cm::peft_module_matches(list, "model.language_model.layers.0.self_attn.q_proj"));  // suffix
  EXPECT_TRUE(cm::peft_module_matches(list, "q_proj"));                                            // exact
  EXPECT_TRUE(cm::peft_module_matches(list, "model.visual.blocks.0.attn.qkv"));
  EXPECT_FALSE(cm::peft_module_matches(list, "model.visual.blocks.1.attn.qkv"));
  EXPECT_FALSE(cm::peft_module_matches(list, "model.language_model.layers.0.self_attn.xq_proj"));  // not a "." suffix
  list.exclude_names = {"layers.0.self_attn.q_proj"};
  EXPECT_FALSE(cm::peft_module_matches(list, "model.language_model.layers.0.self_attn.q_proj"));
  EXPECT_TRUE(cm::peft_module_matches(list, "model.language_model.layers.1.self_attn.q_proj"));

  cm::PeftTargetModules re;
  re.is_regex = true;
  re.regex = ".*self_attn\\.(q|v)_proj";
  EXPECT_TRUE(cm::peft_module_matches(re, "model.language_model.layers.2.self_attn.v_proj"));
  EXPECT_FALSE(cm::peft_module_matches(re, "model.language_model.layers.2.self_attn.k_proj"));
  re.regex = "self_attn\\.q_proj";  // full match required, not search
  EXPECT_FALSE(cm::peft_module_matches(re, "model.language_model.layers.2.self_attn.q_proj"));

  cm::PeftTargetModules all;
  all.is_regex = true;
  all.regex = "all-linear";
  EXPECT_TRUE(cm::peft_module_matches(all, "model.language_model.layers.2.mlp.down_proj"));
  EXPECT_FALSE(cm::peft_module_matches(all, "lm_head"));
}

TEST(AdapterFiles, ParseAdapterKind) {
  EXPECT_EQ(cm::parse_adapter_kind("dora"), cm::AdapterKind::kDora);
  EXPECT_EQ(cm::parse_adapter_kind("lora"), cm::AdapterKind::kLora);
  EXPECT_EQ(cm::parse_adapter_kind("none"), cm::AdapterKind::kNone);
  expect_error([] { cm::parse_adapter_kind("qlora", "model.adapter.kind"); },
               {"model.adapter.kind", "qlora", "none, lora or dora"});
  EXPECT_THROW(cm::parse_adapter_kind("LoRA"), coordexp::ConfigError);
}

TEST(AdapterFiles, BadFilesGiveDocumentedErrors) {
  const std::string q = "base_model.model." + kQ;
  const cu::NamedTensors good = {{q + ".lora_A.weight", torch::randn({4, 16})},
                                 {q + ".lora_B.weight", torch::randn({32, 4})}};
  const std::string base = R"("peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"])";
  auto with = [&](const std::string& extra) { return "{" + base + (extra.empty() ? "" : ", " + extra) + "}"; };

  {  // not a directory
    TempDir d;
    expect_error([&] { cm::read_adapter_dir(d.str()); }, {"adapter_config.json", "is missing"});
    EXPECT_FALSE(cm::is_adapter_dir(d.str()));
  }
  {  // broken JSON
    TempDir d;
    write_peft_dir(d, "{\"peft_type\": ", good);
    expect_error([&] { cm::read_adapter_dir(d.str()); }, {"adapter_config.json", "not valid JSON"});
  }
  struct ConfigCase {
    std::string config;
    std::vector<std::string> parts;
  };
  const std::vector<ConfigCase> config_cases = {
      {R"({"peft_type": "IA3", "target_modules": ["q_proj"]})", {"key peft_type", "IA3", "LoRA and DoRA"}},
      {with(R"("use_rslora": true)"), {"key use_rslora", "alpha / sqrt(r)"}},
      {with(R"("rank_pattern": {"q_proj": 8})"), {"key rank_pattern", "one r"}},
      {with(R"("alpha_pattern": {"q_proj": 8})"), {"key alpha_pattern"}},
      {with(R"("modules_to_save": ["embed_tokens"])"), {"key modules_to_save", "coord offset"}},
      {with(R"("trainable_token_indices": [151670])"), {"key trainable_token_indices"}},
      {with(R"("bias": "all")"), {"key bias", "none"}},
      {with(R"("fan_in_fan_out": true)"), {"key fan_in_fan_out"}},
      {with(R"("r": "four")"), {"key r", "integer"}},
      {R"({"peft_type": "LORA", "r": 4, "target_modules": ["k_proj"]})",
       {"key target_modules", kQ, "does not match"}},
      {R"({"peft_type": "LORA", "r": 4, "target_modules": "(unclosed"})", {"key target_modules", "regular expression"}},
      {R"({"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]})", {"lora_A.weight", "[4, 16]", "r=8"}},
  };
  for (const auto& c : config_cases) {
    SCOPED_TRACE(c.config);
    TempDir d;
    write_peft_dir(d, c.config, good);
    expect_error([&] { cm::read_adapter_dir(d.str()); }, c.parts);
  }
  struct TensorCase {
    std::string config;
    cu::NamedTensors tensors;
    std::vector<std::string> parts;
  };
  const std::vector<TensorCase> tensor_cases = {
      // adapter name left in the key (a raw state_dict, not save_pretrained)
      {with(""), {{q + ".lora_A.default.weight", torch::randn({4, 16})}, {q + ".lora_B.default.weight", torch::randn({32, 4})}},
       {"adapter_model.safetensors", "unexpected tensor keys (2)", "lora_A.default.weight", "\".default\""}},
      {with(""), {{q + ".lora_A.weight", torch::randn({4, 16})}}, {"lora_A without lora_B", "q_proj"}},
      {with(""), {{q + ".lora_A.weight", torch::randn({4, 16})}, {q + ".lora_B.weight", torch::randn({32, 3})}},
       {"lora_B.weight", "[32, 3]", "[out, r=4]"}},
      {with(R"("use_dora": true)"), good, {"lora_magnitude_vector", "use_dora is true"}},
      {with(R"("use_dora": true)"),
       {good[0], good[1], {q + ".lora_magnitude_vector", torch::rand({31})}},
       {"lora_magnitude_vector", "[31]", "[32]"}},
      {with(""), {good[0], good[1], {q + ".lora_magnitude_vector", torch::rand({32})}},
       {"lora_magnitude_vector", "use_dora is false"}},
      {with(""), {good[0], good[1], {"model.embed_tokens.weight", torch::randn({10, 4})}},
       {"unexpected tensor keys (1)", "model.embed_tokens.weight"}},
      {with(""), {{q + ".lora_A.weight", torch::ones({4, 16}, torch::kInt32)}, good[1]}, {"non-float dtype"}},
      {with(""), {}, {"holds nothing"}},
  };
  for (const auto& c : tensor_cases) {
    SCOPED_TRACE(c.parts[0]);
    TempDir d;
    write_peft_dir(d, c.config, c.tensors);
    expect_error([&] { cm::read_adapter_dir(d.str()); }, c.parts);
  }
  {  // pickle only
    TempDir d;
    write_text(d / "adapter_config.json", with(""));
    write_text(d / "adapter_model.bin", "pickle");
    expect_error([&] { cm::read_adapter_dir(d.str()); }, {"adapter_model.bin", "safe_serialization=True"});
  }
}

TEST(AdapterFiles, BadCoordOffsetFilesGiveDocumentedErrors) {
  auto fresh = [](bool tied, const TempDir& d) {
    auto [spec, t] = make_adapter(cm::AdapterKind::kLora, true, tied);
    cm::write_adapter_dir(d.str(), spec, t);
  };
  {
    TempDir d;
    fresh(true, d);
    fs::remove(d / "coord_offset.safetensors");
    expect_error([&] { cm::read_adapter_dir(d.str()); }, {"coord_offset.safetensors is missing"});
  }
  {
    TempDir d;
    fresh(true, d);
    cu::write_safetensors(d / "coord_offset.safetensors", {{"coord_offset.embed_tokens", torch::zeros({999, 24})}});
    expect_error([&] { cm::read_adapter_dir(d.str()); }, {"coord_offset.embed_tokens", "[999, 24]", "[1000, hidden]"});
  }
  {
    TempDir d;
    fresh(true, d);
    cu::write_safetensors(d / "coord_offset.safetensors", {{"coord_offset.embed_tokens", torch::zeros({1000, 24})},
                                                           {"coord_offset.lm_head", torch::zeros({1000, 24})}});
    expect_error([&] { cm::read_adapter_dir(d.str()); }, {"coord_offset.lm_head", "coord_offset_tied is true"});
  }
  {
    TempDir d;
    fresh(false, d);
    cu::write_safetensors(d / "coord_offset.safetensors", {{"coord_offset.embed_tokens", torch::zeros({1000, 24})}});
    expect_error([&] { cm::read_adapter_dir(d.str()); }, {"coord_offset.lm_head", "missing", "coord_offset_tied is false"});
  }
  {
    TempDir d;
    fresh(false, d);
    cu::write_safetensors(d / "coord_offset.safetensors", {{"coord_offset.embed_tokens", torch::zeros({1000, 24})},
                                                           {"coord_offset.lm_head", torch::zeros({1000, 16})}});
    expect_error([&] { cm::read_adapter_dir(d.str()); }, {"coord_offset.lm_head", "[1000, 16]", "[1000, 24]"});
  }
  {
    TempDir d;
    fresh(true, d);
    write_text(d / "coordexp_adapter.json", R"({"coord_offset": true, "coord_offset_tied": true})");
    expect_error([&] { cm::read_adapter_dir(d.str()); }, {"coordexp_adapter.json", "key coord_first_id"});
  }
  {
    TempDir d;
    fresh(true, d);
    fs::remove(d / "coordexp_adapter.json");
    expect_error([&] { cm::read_adapter_dir(d.str()); }, {"coord_offset.safetensors exists without"});
  }
  {  // re-saving without an offset removes the stale table
    TempDir d;
    fresh(true, d);
    auto [spec, t] = make_adapter(cm::AdapterKind::kLora, false, true);
    cm::write_adapter_dir(d.str(), spec, t);
    EXPECT_FALSE(fs::exists(d / "coord_offset.safetensors"));
    EXPECT_FALSE(cm::read_adapter_dir(d.str()).spec.coord_offset);
  }
}
