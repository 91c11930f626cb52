// `coordexp-train make-tiny --spec SPEC.yaml --tokenizer DIR --out DIR`: a randomly initialised
// Qwen3-VL of any size in the Hugging Face layout (config.json, model.safetensors, tokenizer files,
// preprocessor_config.json), for tests, the demo and benchmarks. The spec is a small YAML file
// (example: tests/data/make_tiny/tiny.yaml); special token ids come from the tokenizer. Not a
// training recipe: the init scales only keep activations O(1).
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <set>

#include "apps/commands.h"
#include "coordexp/model/qwen3vl.h"
#include "coordexp/tokenizer/tokenizer.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::apps {
namespace {

struct MakeTinyArgs {
  std::string spec, tokenizer_dir, out;
};

// Reads typed scalars from one YAML mapping, naming file:line and key in every error, and rejects
// keys it was not asked about (typos must not be ignored silently).
class SpecSection {
 public:
  SpecSection(const YAML::Node& node, std::string file, std::string prefix)
      : node_(node), file_(std::move(file)), prefix_(std::move(prefix)) {
    if (node_ && !node_.IsMap()) fail(node_, prefix_.empty() ? "(top level)" : prefix_, "expected a mapping");
  }
  template <class T>
  void get(const char* key, T& out) {
    known_.insert(key);
    if (!node_ || !node_[key]) return;
    const YAML::Node v = node_[key];
    try {
      out = v.as<T>();
    } catch (const YAML::Exception&) {
      fail(v, prefix_ + key, "wrong type for this field");
    }
  }
  SpecSection section(const char* key) {
    known_.insert(key);
    return SpecSection(node_ ? node_[key] : YAML::Node(), file_, prefix_ + key + ".");
  }
  void reject_unknown() const {
    if (!node_) return;
    for (const auto& kv : node_) {
      const auto key = kv.first.as<std::string>();
      if (!known_.count(key)) fail(kv.first, prefix_ + key, "unknown key");
    }
  }

 private:
  [[noreturn]] void fail(const YAML::Node& n, const std::string& key, const std::string& msg) const {
    throw ConfigError(msg, file_ + ":" + std::to_string(n.Mark().line + 1) + ": key " + key,
                      "see tests/data/make_tiny/tiny.yaml for the fields");
  }
  YAML::Node node_;
  std::string file_, prefix_;
  std::set<std::string> known_;
};

int64_t required_id(const tokenizer::Tokenizer& tok, const char* token, const std::string& dir) {
  const auto id = tok.token_to_id(token);
  if (!id) throw FormatError(std::string("tokenizer has no ") + token + " token", dir + "/tokenizer.json",
                             "use a Qwen3 / Qwen3-VL tokenizer");
  return *id;
}

// preprocessor_config.json of the official Qwen3-VL checkpoints (spec 6.1) with this model's geometry.
std::string preprocessor_config(const model::VisionConfig& v) {
  nlohmann::ordered_json j;
  j["image_mean"] = {0.5, 0.5, 0.5};
  j["image_processor_type"] = "Qwen2VLImageProcessorFast";
  j["image_std"] = {0.5, 0.5, 0.5};
  j["merge_size"] = v.spatial_merge_size;
  j["patch_size"] = v.patch_size;
  j["processor_class"] = "Qwen3VLProcessor";
  j["size"] = {{"longest_edge", 16777216}, {"shortest_edge", 65536}};
  j["temporal_patch_size"] = v.temporal_patch_size;
  return j.dump(2) + "\n";
}

int run_make_tiny(const MakeTinyArgs& a) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(a.spec);
  } catch (const YAML::BadFile&) {
    throw ConfigError("cannot read the spec file", a.spec);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(std::string("invalid YAML: ") + e.what(), a.spec);
  }
  model::Qwen3VLConfig c;
  std::string dtype = "float32";
  int64_t seed = 0, vocab_size = 0;
  model::InitScales init;
  SpecSection top(root, a.spec, "");
  top.get("seed", seed);
  top.get("dtype", dtype);
  top.get("tie_word_embeddings", c.tie_word_embeddings);
  top.get("vocab_size", vocab_size);
  SpecSection text = top.section("text");
  text.get("hidden_size", c.text.hidden_size);
  text.get("intermediate_size", c.text.intermediate_size);
  text.get("num_hidden_layers", c.text.num_hidden_layers);
  text.get("num_attention_heads", c.text.num_attention_heads);
  text.get("num_key_value_heads", c.text.num_key_value_heads);
  text.get("head_dim", c.text.head_dim);
  text.get("mrope_section", c.text.mrope_section);
  text.get("rope_theta", c.text.rope_theta);
  text.get("rms_norm_eps", c.text.rms_norm_eps);
  text.reject_unknown();
  SpecSection vision = top.section("vision");
  vision.get("depth", c.vision.depth);
  vision.get("hidden_size", c.vision.hidden_size);
  vision.get("num_heads", c.vision.num_heads);
  vision.get("intermediate_size", c.vision.intermediate_size);
  vision.get("num_position_embeddings", c.vision.num_position_embeddings);
  vision.get("deepstack_visual_indexes", c.vision.deepstack_visual_indexes);
  vision.get("patch_size", c.vision.patch_size);
  vision.get("temporal_patch_size", c.vision.temporal_patch_size);
  vision.get("spatial_merge_size", c.vision.spatial_merge_size);
  vision.reject_unknown();
  SpecSection scales = top.section("init");
  scales.get("linear_std", init.linear_std);
  scales.get("embed_std", init.embed_std);
  scales.get("bias_std", init.bias_std);
  scales.get("norm_noise", init.norm_noise);
  scales.reject_unknown();
  top.reject_unknown();
  if (dtype != "float32" && dtype != "bfloat16")
    throw ConfigError("invalid value '" + dtype + "'", a.spec + ": key dtype", "allowed: float32 | bfloat16");

  const auto tok = tokenizer::Tokenizer::from_dir(a.tokenizer_dir);  // after the spec: its errors come first
  const auto tok_vocab = static_cast<int64_t>(tok->vocab_size());
  if (vocab_size != 0 && vocab_size < tok_vocab)
    throw ConfigError("vocab_size " + std::to_string(vocab_size) + " is smaller than the tokenizer's " +
                          std::to_string(tok_vocab), a.spec + ": key vocab_size", "omit it to use the tokenizer's size");
  c.text.vocab_size = vocab_size != 0 ? vocab_size : tok_vocab;
  c.vision.out_hidden_size = c.text.hidden_size;
  c.image_token_id = required_id(*tok, "<|image_pad|>", a.tokenizer_dir);
  c.video_token_id = required_id(*tok, "<|video_pad|>", a.tokenizer_dir);
  c.vision_start_token_id = required_id(*tok, "<|vision_start|>", a.tokenizer_dir);
  c.vision_end_token_id = required_id(*tok, "<|vision_end|>", a.tokenizer_dir);
  c.text.bos_token_id = tok->endoftext_id();
  c.text.eos_token_id = tok->im_end_id();
  try {
    c.validate(a.spec);
  } catch (const FormatError& e) {  // in a spec this is the user's configuration
    throw ConfigError(e.message(), e.where(), e.hint());
  }

  auto m = model::Qwen3VL::create(c);
  m.init_random(static_cast<uint64_t>(seed), init);
  std::filesystem::create_directories(a.out);
  m.save(a.out, {dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat, 0});
  tok->save(a.out);
  util::write_file_atomic(a.out + "/preprocessor_config.json", preprocessor_config(c.vision));
  int64_t num_params = 0;
  for (const auto& [k, p] : m.named_parameters()) num_params += p.numel();
  std::cout << "make-tiny: wrote " << a.out << " (" << num_params << " parameters, " << dtype << ", vocab "
            << c.text.vocab_size << ")\n";
  return 0;
}

}  // namespace

CommandRegistration add_make_tiny_command(CLI::App& app, const GlobalFlags&) {
  auto args = std::make_shared<MakeTinyArgs>();
  auto* sub = app.add_subcommand("make-tiny", "Write a randomly initialised Hugging Face-format Qwen3-VL from a small YAML spec");
  sub->add_option("--spec", args->spec, "model spec YAML (sizes, dtype, seed; see tests/data/make_tiny/tiny.yaml)")->required();
  sub->add_option("--tokenizer", args->tokenizer_dir, "directory with tokenizer.json (special token ids, vocab size)")->required();
  sub->add_option("--out", args->out, "output model directory")->required();
  return {sub, [args] { return run_make_tiny(*args); }};
}

}  // namespace coordexp::apps
