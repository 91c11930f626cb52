// Adapter directories in PEFT's layout (adapter_config.json + adapter_model.safetensors) plus the
// coord-offset table (coord_offset.safetensors + coordexp_adapter.json): writing, reading and
// validation. Every problem with a file names the file, the key and the fix. No merging, no module
// wrapping here. Field names and key layout follow PEFT's LoraConfig / save_pretrained (docs/adapters.md).
#include "coordexp/model/adapter_files.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "coordexp/util/safetensors.h"

namespace coordexp::model {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr const char* kLoraASuffix = ".lora_A.weight";
constexpr const char* kLoraBSuffix = ".lora_B.weight";
// PEFT saves DoRA's magnitude without ".weight" (it strips it for format stability, lora/model.py).
constexpr const char* kMagnitudeSuffix = ".lora_magnitude_vector";
constexpr const char* kCoordEmbedKey = "coord_offset.embed_tokens";
constexpr const char* kCoordHeadKey = "coord_offset.lm_head";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string shape_str(at::IntArrayRef shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

std::string join_first(const std::vector<std::string>& items, size_t max_items) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < max_items; ++i) s += (i ? ", " : "") + items[i];
  if (items.size() > max_items) s += ", ... (" + std::to_string(items.size()) + " in all)";
  return s;
}

// JSON for an alpha: PEFT types lora_alpha as int, so an integral alpha is written as an integer.
Json alpha_json(double alpha) {
  if (std::floor(alpha) == alpha && std::fabs(alpha) < 9.0e15) return Json(static_cast<int64_t>(alpha));
  return Json(alpha);
}

// ---- writing ---------------------------------------------------------------------------------

void check_for_write(const AdapterSpec& spec, const AdapterTensors& t) {
  auto fail = [](const std::string& what) {
    throw InternalError("write_adapter_dir: " + what);
  };
  std::set<std::string> modules;
  for (const auto& [m, a] : t.lora_A) modules.insert(m);
  if (spec.kind == AdapterKind::kNone) {
    if (!t.lora_A.empty() || !t.lora_B.empty() || !t.magnitude.empty())
      fail("adapter kind none but LoRA tensors were given");
  } else {
    if (spec.rank <= 0) fail("rank must be positive, got " + std::to_string(spec.rank));
    if (modules.empty()) fail("a LoRA/DoRA adapter needs at least one module");
  }
  if (!spec.target_modules.empty() &&
      std::set<std::string>(spec.target_modules.begin(), spec.target_modules.end()) != modules)
    fail("spec.target_modules differs from the modules of lora_A");
  for (const auto& m : modules) {
    const auto& a = t.lora_A.at(m);
    auto b_it = t.lora_B.find(m);
    if (b_it == t.lora_B.end()) fail("module " + m + " has lora_A but no lora_B");
    const auto& b = b_it->second;
    if (a.dim() != 2 || b.dim() != 2 || a.size(0) != spec.rank || b.size(1) != spec.rank)
      fail("module " + m + ": lora_A " + shape_str(a.sizes()) + " / lora_B " + shape_str(b.sizes()) +
           " do not fit rank " + std::to_string(spec.rank) + " ([r, in] / [out, r])");
    if (spec.kind == AdapterKind::kDora) {
      auto m_it = t.magnitude.find(m);
      if (m_it == t.magnitude.end()) fail("DoRA module " + m + " has no magnitude");
      if (m_it->second.dim() != 1 || m_it->second.size(0) != b.size(0))
        fail("module " + m + ": magnitude " + shape_str(m_it->second.sizes()) + " does not match lora_B " +
             shape_str(b.sizes()));
    }
  }
  for (const auto& [m, b] : t.lora_B)
    if (!modules.count(m)) fail("module " + m + " has lora_B but no lora_A");
  if (spec.kind != AdapterKind::kDora && !t.magnitude.empty()) fail("magnitudes given for a non-DoRA adapter");
  for (const auto& [m, v] : t.magnitude)
    if (!modules.count(m)) fail("module " + m + " has a magnitude but no lora_A");
  if (spec.coord_offset) {
    if (spec.coord_first_id < 0) fail("coord offset without coord_first_id");
    if (!t.coord_offset_embed.defined() || t.coord_offset_embed.dim() != 2 ||
        t.coord_offset_embed.size(0) != kCoordOffsetRows)
      fail("coord offset needs coord_offset_embed [1000, H]");
    if (spec.coord_offset_tied && t.coord_offset_lm_head.defined())
      fail("a tied coord offset has no separate lm_head table");
    if (!spec.coord_offset_tied &&
        (!t.coord_offset_lm_head.defined() || !t.coord_offset_lm_head.sizes().equals(t.coord_offset_embed.sizes())))
      fail("an untied coord offset needs coord_offset_lm_head with the shape of coord_offset_embed");
  } else if (t.coord_offset_embed.defined() || t.coord_offset_lm_head.defined()) {
    fail("coord offset tensors given but spec.coord_offset is false");
  }
}

Json peft_config_json(const AdapterSpec& spec, const std::vector<std::string>& modules) {
  // The LoraConfig fields PEFT has had since DoRA (0.9); newer optional fields keep their defaults by
  // being absent, so older PEFT versions load the file too.
  Json j;
  j["alpha_pattern"] = Json::object();
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = spec.base_model_name_or_path.empty() ? Json(nullptr) : Json(spec.base_model_name_or_path);
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;  // PeftModel.save_pretrained writes true
  j["init_lora_weights"] = true;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["lora_alpha"] = alpha_json(spec.alpha);
  j["lora_dropout"] = spec.dropout;
  j["modules_to_save"] = nullptr;
  j["peft_type"] = "LORA";
  j["r"] = spec.rank;
  j["rank_pattern"] = Json::object();
  j["revision"] = nullptr;
  // Full module paths: each matches exactly itself under PEFT's list rule.
  j["target_modules"] = modules;
  j["task_type"] = "CAUSAL_LM";
  j["use_dora"] = spec.kind == AdapterKind::kDora;
  j["use_rslora"] = false;
  return j;
}

// ---- reading ---------------------------------------------------------------------------------

struct FileCtx {
  std::string path;
  [[noreturn]] void fail(const std::string& key, const std::string& what, const std::string& hint) const {
    throw DataError(what, key.empty() ? path : path + ": key " + key, hint);
  }
};

Json parse_json_file(const std::string& path) {
  const std::string text = util::read_file(path);
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError(std::string("not valid JSON: ") + e.what(), path,
                    "rewrite the file (it is written by coordexp-train or PEFT's save_pretrained)");
  }
}

int64_t get_int(const FileCtx& f, const Json& j, const char* key, int64_t def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float() && std::floor(it->get<double>()) == it->get<double>())
    return static_cast<int64_t>(it->get<double>());
  f.fail(key, "expected an integer, got " + it->dump(), "write a whole number");
}
double get_number(const FileCtx& f, const Json& j, const char* key, double def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) f.fail(key, "expected a number, got " + it->dump(), "write a number");
  return it->get<double>();
}
bool get_bool(const FileCtx& f, const Json& j, const char* key, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) f.fail(key, "expected true or false, got " + it->dump(), "write true or false");
  return it->get<bool>();
}
std::string get_string(const FileCtx& f, const Json& j, const char* key, const std::string& def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_string()) f.fail(key, "expected a string, got " + it->dump(), "write a string");
  return it->get<std::string>();
}

// A null, empty list, empty object or false value counts as "feature off".
bool is_off(const Json& v) {
  return v.is_null() || (v.is_array() && v.empty()) || (v.is_object() && v.empty()) ||
         (v.is_boolean() && !v.get<bool>());
}

// `target_modules` / `exclude_modules`: string regex or list of names.
void read_module_list(const FileCtx& f, const Json& j, const char* key, bool* is_regex, std::string* regex,
                      std::vector<std::string>* names) {
  auto it = j.find(key);
  *is_regex = false;
  if (it == j.end() || it->is_null()) return;
  if (it->is_string()) {
    *is_regex = true;
    *regex = it->get<std::string>();
    if (*regex != "all-linear") {
      try {
        std::regex re(*regex);
      } catch (const std::regex_error& e) {
        f.fail(key, "not a valid regular expression: " + *regex + " (" + e.what() + ")",
               "write a regex that std::regex (ECMAScript) accepts, or a list of module names");
      }
    }
    return;
  }
  if (!it->is_array()) f.fail(key, "expected a string (regex) or a list of module names, got " + it->dump(), "");
  for (const auto& e : *it) {
    if (!e.is_string()) f.fail(key, "list entries must be strings, got " + e.dump(), "");
    names->push_back(e.get<std::string>());
  }
}

bool regex_or_names_match(bool is_regex, const std::string& regex, const std::vector<std::string>& names,
                          const std::string& module) {
  if (is_regex) {
    if (regex == "all-linear") return module != "lm_head" && !ends_with(module, ".lm_head");
    return std::regex_match(module, std::regex(regex));
  }
  for (const auto& n : names)
    if (module == n || ends_with(module, "." + n)) return true;
  return false;
}

// Fields that change what the tensors mean or which tensors exist; we refuse them rather than
// merge something different from what PEFT would compute.
void refuse_unsupported(const FileCtx& f, const Json& j) {
  struct Refused {
    const char* key;
    const char* why;
  };
  static const Refused kRefused[] = {
      {"use_rslora", "rank-stabilised scaling (alpha / sqrt(r)) is not supported; retrain with use_rslora false "
                     "(or fold sqrt(r) into lora_alpha: alpha' = alpha * sqrt(r))"},
      {"rank_pattern", "per-module ranks are not supported; use one r for every module"},
      {"alpha_pattern", "per-module alphas are not supported; use one lora_alpha for every module"},
      {"fan_in_fan_out", "transposed (Conv1D) weights do not occur in Qwen3-VL; save with fan_in_fan_out false"},
      {"modules_to_save", "full module copies are not supported (they break inference engines for embeddings); "
                          "train the coord rows with the coord offset instead"},
      {"trainable_token_indices", "PEFT's trainable tokens are not supported; use the coord offset "
                                  "(coord_offset.safetensors)"},
      {"target_parameters", "LoRA on raw parameters is not supported; target modules"},
      {"lora_bias", "LoRA bias terms are not supported; save with lora_bias false"},
      {"layer_replication", "layer replication is not supported"},
      {"use_qalora", "QA-LoRA is not supported"},
      {"alora_invocation_tokens", "activated LoRA is not supported"},
      {"use_bdlora", "block-diagonal LoRA is not supported"},
      {"arrow_config", "Arrow routing is not supported"},
      {"velora_config", "VeLoRA is not supported"},
      {"monteclora_config", "MonteCLoRA is not supported"},
      {"kasa_config", "KaSA is not supported"},
  };
  for (const auto& r : kRefused) {
    auto it = j.find(r.key);
    if (it != j.end() && !is_off(*it)) f.fail(r.key, std::string("unsupported value ") + it->dump(), r.why);
  }
  const std::string bias = get_string(f, j, "bias", "none");
  if (bias != "none")
    f.fail("bias", "bias \"" + bias + "\" is not supported (bias tensors would be trained and saved)",
           "save with bias \"none\"");
}

torch::Tensor owned(const torch::Tensor& view) { return view.clone(); }  // detach from the mmap

void require_float(const FileCtx& f, const std::string& key, const torch::Tensor& t) {
  if (!t.is_floating_point())
    f.fail("", "tensor " + key + " has non-float dtype " + std::string(c10::toString(t.scalar_type())),
           "adapter tensors must be F32, BF16, F16 or F64");
}

}  // namespace

AdapterKind parse_adapter_kind(const std::string& name, const std::string& key) {
  if (name == "none") return AdapterKind::kNone;
  if (name == "lora") return AdapterKind::kLora;
  if (name == "dora") return AdapterKind::kDora;
  throw ConfigError("unknown adapter kind \"" + name + "\"", "key " + key, "use none, lora or dora");
}

const char* to_string(AdapterKind kind) {
  switch (kind) {
    case AdapterKind::kNone: return "none";
    case AdapterKind::kLora: return "lora";
    case AdapterKind::kDora: return "dora";
  }
  return "?";
}

bool peft_module_matches(const PeftTargetModules& t, const std::string& module) {
  const bool excluded = t.has_exclude_regex
                            ? regex_or_names_match(true, t.exclude_regex, {}, module)
                            : regex_or_names_match(false, {}, t.exclude_names, module);
  if (excluded) return false;
  return regex_or_names_match(t.is_regex, t.regex, t.names, module);
}

bool is_adapter_dir(const std::string& dir) {
  return fs::is_regular_file(fs::path(dir) / kAdapterConfigFile);
}

void write_adapter_dir(const std::string& dir, const AdapterSpec& spec, const AdapterTensors& tensors) {
  check_for_write(spec, tensors);
  fs::create_directories(dir);
  std::vector<std::string> modules;
  for (const auto& [m, a] : tensors.lora_A) modules.push_back(m);  // std::map: sorted

  util::NamedTensors lora;
  for (const auto& m : modules) {
    lora.emplace_back(kPeftKeyPrefix + m + kLoraASuffix, tensors.lora_A.at(m));
    lora.emplace_back(kPeftKeyPrefix + m + kLoraBSuffix, tensors.lora_B.at(m));
    if (spec.kind == AdapterKind::kDora) lora.emplace_back(kPeftKeyPrefix + m + kMagnitudeSuffix, tensors.magnitude.at(m));
  }
  util::write_safetensors((fs::path(dir) / kAdapterWeightsFile).string(), lora, {{"format", "pt"}});

  const fs::path coord_path = fs::path(dir) / kCoordOffsetFile;
  if (spec.coord_offset) {
    util::NamedTensors coord{{kCoordEmbedKey, tensors.coord_offset_embed}};
    if (!spec.coord_offset_tied) coord.emplace_back(kCoordHeadKey, tensors.coord_offset_lm_head);
    util::write_safetensors(coord_path.string(), coord, {{"format", "pt"}});
  } else if (fs::exists(coord_path)) {
    fs::remove(coord_path);  // stale table of an earlier save into the same directory
  }
  Json coord_json;
  coord_json["coord_offset"] = spec.coord_offset;
  coord_json["coord_offset_tied"] = spec.coord_offset_tied;
  coord_json["coord_first_id"] = spec.coord_first_id;
  coord_json["adapter_kind"] = to_string(spec.kind);
  util::write_file_atomic((fs::path(dir) / kCoordAdapterFile).string(), coord_json.dump(2) + "\n");
  // adapter_config.json last: is_adapter_dir() is true only once the tensors are in place.
  util::write_file_atomic((fs::path(dir) / kAdapterConfigFile).string(),
                          peft_config_json(spec, modules).dump(2) + "\n");
  util::fsync_dir(dir);
}

AdapterDir read_adapter_dir(const std::string& dir) {
  AdapterDir out;
  AdapterSpec& spec = out.spec;
  AdapterTensors& t = out.tensors;

  const std::string config_path = (fs::path(dir) / kAdapterConfigFile).string();
  if (!fs::is_regular_file(config_path))
    throw DataError("not an adapter directory: " + config_path + " is missing", dir,
                    "pass a directory written by coordexp-train (checkpoint) or PEFT's save_pretrained");
  const FileCtx cfg{config_path};
  const Json j = parse_json_file(config_path);
  if (!j.is_object()) cfg.fail("", "expected a JSON object", "");
  const std::string peft_type = get_string(cfg, j, "peft_type", "");
  if (peft_type != "LORA")
    cfg.fail("peft_type", "expected \"LORA\", got " + (j.contains("peft_type") ? j["peft_type"].dump() : "nothing"),
             "only LoRA and DoRA adapters (peft_type LORA, use_dora true/false) are supported");
  refuse_unsupported(cfg, j);
  // PEFT's defaults (LoraConfig): r 8, lora_alpha 8, lora_dropout 0, use_dora false.
  spec.rank = get_int(cfg, j, "r", 8);
  if (spec.rank <= 0) cfg.fail("r", "rank must be positive, got " + std::to_string(spec.rank), "");
  spec.alpha = get_number(cfg, j, "lora_alpha", 8.0);
  spec.dropout = get_number(cfg, j, "lora_dropout", 0.0);
  if (spec.dropout < 0.0 || spec.dropout >= 1.0)
    cfg.fail("lora_dropout", "must be in [0, 1), got " + std::to_string(spec.dropout), "");
  const bool use_dora = get_bool(cfg, j, "use_dora", false);
  spec.base_model_name_or_path = get_string(cfg, j, "base_model_name_or_path", "");
  PeftTargetModules targets;
  read_module_list(cfg, j, "target_modules", &targets.is_regex, &targets.regex, &targets.names);
  read_module_list(cfg, j, "exclude_modules", &targets.has_exclude_regex, &targets.exclude_regex,
                   &targets.exclude_names);

  // ---- adapter_model.safetensors
  const std::string weights_path = (fs::path(dir) / kAdapterWeightsFile).string();
  if (!fs::is_regular_file(weights_path)) {
    if (fs::exists(fs::path(dir) / "adapter_model.bin"))
      throw DataError("only adapter_model.bin (pickle) found, " + std::string(kAdapterWeightsFile) + " is missing",
                      dir, "re-save with PEFT's save_pretrained(..., safe_serialization=True)");
    throw DataError(std::string(kAdapterWeightsFile) + " is missing", dir,
                    "the adapter directory needs the tensors next to adapter_config.json");
  }
  const FileCtx wf{weights_path};
  auto file = util::SafetensorsFile::open(weights_path);
  std::vector<std::string> unexpected;
  for (const auto& info : file->tensors()) {
    const std::string& key = info.name;
    std::string module;
    std::map<std::string, torch::Tensor>* slot = nullptr;
    if (!starts_with(key, kPeftKeyPrefix)) {
      unexpected.push_back(key);
      continue;
    }
    const std::string rest = key.substr(std::string(kPeftKeyPrefix).size());
    if (ends_with(rest, kLoraASuffix)) {
      module = rest.substr(0, rest.size() - std::string(kLoraASuffix).size());
      slot = &t.lora_A;
    } else if (ends_with(rest, kLoraBSuffix)) {
      module = rest.substr(0, rest.size() - std::string(kLoraBSuffix).size());
      slot = &t.lora_B;
    } else if (ends_with(rest, kMagnitudeSuffix)) {
      module = rest.substr(0, rest.size() - std::string(kMagnitudeSuffix).size());
      slot = &t.magnitude;
    } else {
      unexpected.push_back(key);
      continue;
    }
    if (module.empty()) {
      unexpected.push_back(key);
      continue;
    }
    torch::Tensor tensor = file->tensor(key);
    require_float(wf, key, tensor);
    (*slot)[module] = owned(tensor);
    file->release_pages(key);  // read once: the file's pages need not stay resident next to the copy
  }
  if (!unexpected.empty())
    wf.fail("", "unexpected tensor keys (" + std::to_string(unexpected.size()) + "): " + join_first(unexpected, 5),
            "keys must be \"base_model.model.<module>.lora_A.weight\", \".lora_B.weight\" or "
            "\".lora_magnitude_vector\" without an adapter name (PEFT's save_pretrained strips \".default\"); "
            "embedding LoRA (lora_embedding_A/B) is not supported");

  std::set<std::string> modules;
  for (const auto& [m, a] : t.lora_A) modules.insert(m);
  for (const auto& [m, b] : t.lora_B)
    if (!modules.count(m))
      wf.fail(kPeftKeyPrefix + m + kLoraBSuffix, "lora_B without lora_A",
              "save both factors of every module");
  for (const auto& m : modules) {
    const std::string a_key = kPeftKeyPrefix + m + kLoraASuffix;
    const std::string b_key = kPeftKeyPrefix + m + kLoraBSuffix;
    auto b_it = t.lora_B.find(m);
    if (b_it == t.lora_B.end()) wf.fail(a_key, "lora_A without lora_B", "save both factors of every module");
    const auto& a = t.lora_A.at(m);
    const auto& b = b_it->second;
    if (a.dim() != 2 || a.size(0) != spec.rank)
      wf.fail(a_key, "shape " + shape_str(a.sizes()) + ", expected [r=" + std::to_string(spec.rank) + ", in]",
              "lora_A must be [r, in_features] with r from adapter_config.json");
    if (b.dim() != 2 || b.size(1) != spec.rank)
      wf.fail(b_key, "shape " + shape_str(b.sizes()) + ", expected [out, r=" + std::to_string(spec.rank) + "]",
              "lora_B must be [out_features, r] with r from adapter_config.json");
    if (use_dora) {
      auto m_it = t.magnitude.find(m);
      if (m_it == t.magnitude.end())
        wf.fail(kPeftKeyPrefix + m + kMagnitudeSuffix, "missing: use_dora is true but this module has no magnitude",
                "save the DoRA magnitude of every module, or set use_dora false");
      if (m_it->second.dim() != 1 || m_it->second.size(0) != b.size(0))
        wf.fail(kPeftKeyPrefix + m + kMagnitudeSuffix,
                "shape " + shape_str(m_it->second.sizes()) + ", expected [" + std::to_string(b.size(0)) + "] (out of lora_B)",
                "the magnitude has one entry per output row");
    }
    if (!peft_module_matches(targets, m))
      cfg.fail("target_modules", "module " + m + " has adapter tensors in " + std::string(kAdapterWeightsFile) +
                                     " but target_modules does not match it (PEFT would not load them)",
               "add the module (or a suffix of it) to target_modules");
  }
  for (const auto& [m, v] : t.magnitude) {
    if (!use_dora)
      wf.fail(kPeftKeyPrefix + m + kMagnitudeSuffix, "DoRA magnitude present but use_dora is false",
              "set use_dora true in adapter_config.json, or remove the magnitudes");
    if (!modules.count(m))
      wf.fail(kPeftKeyPrefix + m + kMagnitudeSuffix, "magnitude without lora_A/lora_B", "");
  }
  spec.target_modules.assign(modules.begin(), modules.end());
  spec.kind = use_dora ? AdapterKind::kDora : (modules.empty() ? AdapterKind::kNone : AdapterKind::kLora);

  // ---- coord offset
  const std::string coord_json_path = (fs::path(dir) / kCoordAdapterFile).string();
  const std::string coord_path = (fs::path(dir) / kCoordOffsetFile).string();
  if (fs::is_regular_file(coord_json_path)) {
    const FileCtx cf{coord_json_path};
    const Json c = parse_json_file(coord_json_path);
    if (!c.is_object()) cf.fail("", "expected a JSON object", "");
    spec.coord_offset = get_bool(cf, c, "coord_offset", false);
    spec.coord_offset_tied = get_bool(cf, c, "coord_offset_tied", true);
    spec.coord_first_id = get_int(cf, c, "coord_first_id", -1);
    const std::string kind = get_string(cf, c, "adapter_kind", "");
    if (!kind.empty()) {
      AdapterKind declared;
      try {
        declared = parse_adapter_kind(kind, "adapter_kind");
      } catch (const ConfigError&) {
        cf.fail("adapter_kind", "unknown adapter kind \"" + kind + "\"", "use none, lora or dora");
      }
      if (declared != spec.kind)
        cf.fail("adapter_kind", "says " + kind + " but adapter_config.json / " + std::string(kAdapterWeightsFile) +
                                    " hold a " + to_string(spec.kind) + " adapter",
                "the files come from different saves; save the adapter again");
    }
    if (spec.coord_offset) {
      if (spec.coord_first_id < 0)
        cf.fail("coord_first_id", "missing or negative with coord_offset true",
                "set it to the id of <|coord_0|> in the tokenizer");
      if (!fs::is_regular_file(coord_path))
        throw DataError(std::string(kCoordOffsetFile) + " is missing but " + kCoordAdapterFile +
                            " says coord_offset true",
                        dir, "copy the coord-offset table along with the adapter");
      const FileCtx of{coord_path};
      auto cfile = util::SafetensorsFile::open(coord_path);
      for (const auto& info : cfile->tensors())
        if (info.name != kCoordEmbedKey && info.name != kCoordHeadKey)
          of.fail("", "unexpected tensor key " + info.name,
                  std::string("only ") + kCoordEmbedKey + " and " + kCoordHeadKey + " belong here");
      if (!cfile->find(kCoordEmbedKey))
        of.fail(kCoordEmbedKey, "missing", "the coord-offset table needs the embedding rows");
      t.coord_offset_embed = owned(cfile->tensor(kCoordEmbedKey));
      require_float(of, kCoordEmbedKey, t.coord_offset_embed);
      if (t.coord_offset_embed.dim() != 2 || t.coord_offset_embed.size(0) != kCoordOffsetRows)
        of.fail(kCoordEmbedKey, "shape " + shape_str(t.coord_offset_embed.sizes()) + ", expected [1000, hidden]",
                "one row per coord token <|coord_0|>..<|coord_999|>");
      const bool has_head = cfile->find(kCoordHeadKey) != nullptr;
      if (spec.coord_offset_tied && has_head)
        of.fail(kCoordHeadKey, "present but coord_offset_tied is true in " + std::string(kCoordAdapterFile),
                "a tied offset has one table (embed_tokens, shared with the head); set coord_offset_tied false "
                "or drop the lm_head table");
      if (!spec.coord_offset_tied) {
        if (!has_head)
          of.fail(kCoordHeadKey, "missing but coord_offset_tied is false in " + std::string(kCoordAdapterFile),
                  "an untied offset has a separate lm_head table");
        t.coord_offset_lm_head = owned(cfile->tensor(kCoordHeadKey));
        require_float(of, kCoordHeadKey, t.coord_offset_lm_head);
        if (!t.coord_offset_lm_head.sizes().equals(t.coord_offset_embed.sizes()))
          of.fail(kCoordHeadKey, "shape " + shape_str(t.coord_offset_lm_head.sizes()) + " differs from " +
                                     kCoordEmbedKey + " " + shape_str(t.coord_offset_embed.sizes()),
                  "both tables are [1000, hidden]");
      }
    } else if (fs::exists(coord_path)) {
      throw DataError(std::string(kCoordOffsetFile) + " exists but " + kCoordAdapterFile + " says coord_offset false",
                      dir, "set coord_offset true (with coord_offset_tied and coord_first_id) or remove the table");
    }
  } else if (fs::exists(coord_path)) {
    throw DataError(std::string(kCoordOffsetFile) + " exists without " + kCoordAdapterFile, dir,
                    "write coordexp_adapter.json with coord_offset, coord_offset_tied and coord_first_id");
  }
  if (spec.kind == AdapterKind::kNone && !spec.coord_offset)
    throw DataError("the adapter holds nothing: no LoRA/DoRA tensors and no coord offset", dir,
                    "check that the right directory was given");
  return out;
}

}  // namespace coordexp::model
