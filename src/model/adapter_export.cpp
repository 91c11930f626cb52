// Streaming export of base + adapter into a plain Hugging Face Qwen3-VL folder (adapter_export.h):
// validate everything first (one error listing every problem), then per base weight file: map it,
// merge the tensors that carry adapters, write the output file, release the mapping. The index keeps
// the base's shard layout; an lm_head materialised by an untied coord offset goes into the last file.
#include "coordexp/model/adapter_export.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "coordexp/model/adapter_files.h"
#include "coordexp/model/adapter_merge.h"
#include "coordexp/model/config.h"
#include "coordexp/model/weights.h"
#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "coordexp/util/safetensors.h"

namespace coordexp::model {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

const char* const kEmbedKey = "model.language_model.embed_tokens.weight";
const char* const kLmHeadKey = "lm_head.weight";
const char* const kPosEmbedKey = "model.visual.pos_embed.weight";
const char* const kIndexFile = "model.safetensors.index.json";

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

std::string list_problems(const std::vector<std::string>& items) {
  constexpr size_t kMaxListed = 20;
  std::string s;
  for (size_t i = 0; i < items.size() && i < kMaxListed; ++i) s += "\n  " + items[i];
  if (items.size() > kMaxListed) s += "\n  ... and " + std::to_string(items.size() - kMaxListed) + " more";
  return s;
}

bool same_path(const std::string& a, const std::string& b) {
  std::error_code ec;
  return fs::exists(a) && fs::exists(b) && fs::equivalent(a, b, ec);
}

// The id of <|coord_0|> in the base tokenizer.json (added_tokens): -1 when the tokenizer lacks the
// token, -2 when there is no tokenizer.json. Only the added_tokens list is read.
int64_t tokenizer_coord0_id(const std::string& base_dir) {
  const std::string path = base_dir + "/tokenizer.json";
  if (!fs::is_regular_file(path)) return -2;
  Json j;
  try {
    j = Json::parse(util::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(std::string("not valid JSON: ") + e.what(), path, "restore the tokenizer file");
  }
  const auto it = j.find("added_tokens");
  if (it == j.end() || !it->is_array()) return -1;
  for (const auto& t : *it)
    if (t.is_object() && t.value("content", "") == "<|coord_0|>" && t.contains("id") && t["id"].is_number_integer())
      return t["id"].get<int64_t>();
  return -1;
}

// config.json of the export: the base's bytes, or with tie_word_embeddings false (top level and
// text_config) when lm_head was materialised.
std::string export_config_text(const std::string& base_dir, bool untie) {
  const std::string path = base_dir + "/config.json";
  const std::string text = util::read_file(path);
  if (!untie) return text;
  Json j = Json::parse(text);
  j["tie_word_embeddings"] = false;
  if (j.contains("text_config") && j["text_config"].is_object()) j["text_config"]["tie_word_embeddings"] = false;
  return j.dump(2) + "\n";
}

void prepare_out_dir(const std::string& out_dir, const std::string& base_dir, const std::string& adapter_dir,
                     bool force) {
  if (same_path(out_dir, base_dir))
    throw ConfigError("--out is the base model directory", out_dir, "write the merged model to a new directory");
  if (same_path(out_dir, adapter_dir))
    throw ConfigError("--out is the adapter directory", out_dir, "write the merged model to a new directory");
  if (fs::exists(out_dir)) {
    if (!fs::is_directory(out_dir)) throw ConfigError("--out exists and is not a directory", out_dir, "pick a directory");
    if (!fs::is_empty(out_dir) && !force)
      throw ConfigError("--out is not empty", out_dir, "pass --force to overwrite it, or choose an empty directory");
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw DataError("cannot create directory: " + ec.message(), out_dir, "check the path and its permissions");
}

// Old weight files in a --force'd output directory that this export does not write.
void remove_stale_weight_files(const std::string& out_dir, const std::vector<std::string>& written) {
  static const std::regex kWeightFile(R"(^model(-\d+-of-\d+)?\.safetensors(\.index\.json)?$)");
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, kWeightFile)) continue;
    if (std::find(written.begin(), written.end(), name) != written.end()) continue;
    std::error_code ec;
    fs::remove(entry.path(), ec);
    if (ec) throw DataError("cannot remove stale weight file: " + ec.message(), entry.path().string(), "remove it by hand");
    spdlog::info("export: removed stale {} from {}", name, out_dir);
  }
}

void require_finite(const torch::Tensor& t, const std::string& key, const std::string& adapter_dir) {
  if (!torch::isfinite(t).all().item<bool>())
    throw DataError("merged weight " + key + " has NaN/Inf values", adapter_dir,
                    "the adapter is broken (a DoRA row norm of 0 or non-finite factors); check the checkpoint");
}

}  // namespace

const std::vector<std::string>& export_copied_file_names() {
  static const std::vector<std::string> kNames = {
      "tokenizer.json",        "tokenizer_config.json",   "vocab.json",
      "merges.txt",            "special_tokens_map.json", "added_tokens.json",
      "chat_template.json",    "chat_template.jinja",     "preprocessor_config.json",
      "video_preprocessor_config.json", "generation_config.json"};
  return kNames;
}

std::string resolve_adapter_dir(const std::string& adapter) {
  if (is_adapter_dir(adapter)) return adapter;
  const std::string nested = (fs::path(adapter) / "adapter").string();
  if (is_adapter_dir(nested)) return nested;
  if (!fs::exists(adapter)) throw ConfigError("--adapter does not exist", adapter, "pass an adapter directory or a checkpoint");
  throw DataError("no adapter_config.json here or in adapter/", adapter,
                  "pass a directory written by PEFT's save_pretrained or a coordexp checkpoint of a run with "
                  "adapter.kind lora/dora or adapter.coord_offset true");
}

ExportReport export_merged_model(const std::string& base_dir, const std::string& adapter,
                                 const std::string& out_dir, const ExportOptions& options) {
  ExportReport report;
  // ---- inputs
  if (!fs::is_regular_file(base_dir + "/config.json"))
    throw ConfigError("--model has no config.json", base_dir, "pass a Hugging Face Qwen3-VL model directory");
  const std::string adapter_dir = resolve_adapter_dir(adapter);
  const Qwen3VLConfig config = Qwen3VLConfig::from_dir(base_dir);
  const std::vector<WeightSpec> table = weight_table(config);
  const auto ckpt = util::SafetensorsCheckpoint::open_dir(base_dir);
  const CheckpointLayout layout = inspect_checkpoint(ckpt, base_dir, table);
  const AdapterDir ad = read_adapter_dir(adapter_dir);
  const AdapterSpec& spec = ad.spec;
  const AdapterTensors& at = ad.tensors;
  std::map<std::string, const WeightSpec*> spec_of;
  for (const auto& s : table) spec_of[s.key] = &s;

  // ---- validate the adapter against the base (every problem in one error)
  std::vector<std::string> problems;
  std::map<std::string, std::string> module_of_key;  // canonical weight key -> adapter module
  for (const auto& m : spec.target_modules) {
    const std::string key = canonical_key(m + ".weight");
    const std::string peft_key = kPeftKeyPrefix + m;
    auto s = spec_of.find(key);
    if (s == spec_of.end() || !layout.tensors.count(key)) {
      problems.push_back(peft_key + ": matches no base tensor (no " + key + " in " + base_dir + ")");
      continue;
    }
    if (key == kEmbedKey || key == kLmHeadKey || key == kPosEmbedKey) {
      problems.push_back(peft_key + ": LoRA on " + key + " is not supported (an embedding table or the LM head, "
                                    "not a linear map; train the coord rows with the coord offset)");
      continue;
    }
    const auto& shape = s->second->shape;
    if (shape.size() != 2) {
      problems.push_back(peft_key + ": base tensor " + key + " " + shape_str(shape) + " is not a linear weight");
      continue;
    }
    const auto& A = at.lora_A.at(m);
    const auto& B = at.lora_B.at(m);
    if (A.size(1) != shape[1])
      problems.push_back(peft_key + ".lora_A.weight " + shape_str(A.sizes()) + " needs in_features " +
                         std::to_string(shape[1]) + " of " + key + " " + shape_str(shape));
    if (B.size(0) != shape[0])
      problems.push_back(peft_key + ".lora_B.weight " + shape_str(B.sizes()) + " needs out_features " +
                         std::to_string(shape[0]) + " of " + key + " " + shape_str(shape));
    module_of_key[key] = m;
  }
  const int64_t V = config.text.vocab_size, H = config.text.hidden_size;
  if (spec.coord_offset) {
    if (at.coord_offset_embed.size(1) != H)
      problems.push_back(std::string(kCoordOffsetFile) + ": coord_offset.embed_tokens " +
                         shape_str(at.coord_offset_embed.sizes()) + " needs hidden size " + std::to_string(H) + " of " +
                         kEmbedKey + " [" + std::to_string(V) + ", " + std::to_string(H) + "]");
    if (spec.coord_first_id + kCoordOffsetRows > V)
      problems.push_back(std::string(kCoordAdapterFile) + ": coord_first_id " + std::to_string(spec.coord_first_id) +
                         " + 1000 rows is beyond the vocabulary of " + std::to_string(V) +
                         " (the base needs the coord tokens: coordexp-train expand-vocab)");
    const int64_t tok_id = tokenizer_coord0_id(base_dir);
    if (tok_id == -1)
      problems.push_back(base_dir + "/tokenizer.json has no <|coord_0|> token (export from the expanded base: "
                                    "coordexp-train expand-vocab)");
    else if (tok_id >= 0 && tok_id != spec.coord_first_id)
      problems.push_back(std::string(kCoordAdapterFile) + ": coord_first_id " + std::to_string(spec.coord_first_id) +
                         " but <|coord_0|> is " + std::to_string(tok_id) + " in " + base_dir + "/tokenizer.json");
  }
  if (!problems.empty())
    throw DataError("the adapter does not fit the base model:" + list_problems(problems), adapter_dir,
                    "export with the base model the adapter was trained on");

  // ---- plan the head: base tied -> lm_head is embed_tokens unless an untied offset materialises it
  const bool base_tied = config.tie_word_embeddings;
  const bool untied_offset = spec.coord_offset && !spec.coord_offset_tied;
  report.lm_head_materialized = base_tied && untied_offset;
  const bool head_stored = layout.tensors.count(kLmHeadKey) > 0;  // untied base, or a tied copy
  // Where lm_head goes in the output: its base file, or the last file when materialised.
  const std::string head_file = head_stored ? layout.tensors.at(kLmHeadKey).file : layout.files.back();
  // The offset table each head row block gets: tied offset -> the one table; untied -> the head table.
  const torch::Tensor head_offset = !spec.coord_offset ? torch::Tensor()
                                    : (spec.coord_offset_tied ? at.coord_offset_embed : at.coord_offset_lm_head);

  prepare_out_dir(out_dir, base_dir, adapter_dir, options.force);

  // The head tensor from the base embedding (tied base): stored dtype of the embedding.
  auto head_from_embedding = [&]() {
    const StoredTensor& st = layout.tensors.at(kEmbedKey);
    auto file = util::SafetensorsFile::open(base_dir + "/" + st.file);
    torch::Tensor E = file->tensor(st.stored_key);
    return add_coord_offset_rows(E, head_offset, spec.coord_first_id);  // a copy; the mapping is released
  };

  // ---- stream the files: per base file, the output header first (names, dtypes and shapes are
  // the base's), then one tensor at a time: mapped (or merged from the mapping), written, dropped,
  // and the mapped pages it read given back. Peak: the largest merged tensor and its float64 temporaries.
  std::vector<std::string> written;
  std::map<std::string, std::string> index_entries;  // stored key -> file
  for (const auto& file_name : layout.files) {
    const auto file = util::SafetensorsFile::open(base_dir + "/" + file_name);
    std::vector<util::StTensorPlan> plan;
    std::map<std::string, std::string> canonical_of;  // stored key -> canonical key
    uint64_t bytes = 0;
    auto add = [&](const std::string& stored, const std::string& canonical, const util::StTensorInfo& info) {
      plan.push_back({stored, info.dtype, info.shape});
      canonical_of[stored] = canonical;
      index_entries[stored] = file_name;
      bytes += (info.data_end - info.data_begin);
    };
    for (const auto& [canonical, st] : layout.tensors)
      if (st.file == file_name) add(st.stored_key, canonical, *file->find(st.stored_key));
    if (report.lm_head_materialized && !head_stored && file_name == head_file) {
      const StoredTensor& e = layout.tensors.at(kEmbedKey);
      add(kLmHeadKey, kLmHeadKey, ckpt.info(e.stored_key));
    }
    auto produce = [&](const std::string& stored) -> torch::Tensor {
      const std::string& canonical = canonical_of.at(stored);
      torch::NoGradGuard no_grad;
      if (stored == kLmHeadKey && !file->find(stored)) return head_from_embedding();  // materialised
      const torch::Tensor view = file->tensor(stored);
      torch::Tensor t = view;
      if (auto m = module_of_key.find(canonical); m != module_of_key.end()) {
        const std::string& mod = m->second;
        if (spec.kind == AdapterKind::kDora) {
          t = merge_dora_weight(t, at.lora_A.at(mod), at.lora_B.at(mod), at.magnitude.at(mod), spec.scale());
          ++report.num_dora_merged;
        } else {
          t = merge_lora_weight(t, at.lora_A.at(mod), at.lora_B.at(mod), spec.scale());
          ++report.num_lora_merged;
        }
        require_finite(t, stored, adapter_dir);
      } else if (spec.coord_offset && canonical == kEmbedKey) {
        t = add_coord_offset_rows(t, at.coord_offset_embed, spec.coord_first_id);
        report.coord_offset_applied = true;
      } else if (spec.coord_offset && canonical == kLmHeadKey) {
        // A stored head: its own rows (untied base) or a tied copy, which must follow the embedding.
        t = base_tied ? head_from_embedding() : add_coord_offset_rows(t, head_offset, spec.coord_first_id);
      }
      if (!t.is_same(view)) file->release_pages(stored);  // merged: the mapped bytes are read
      return t;
    };
    auto release = [&](const std::string& stored) {
      if (file->find(stored)) file->release_pages(stored);
    };
    const auto meta = layout.file_metadata.find(file_name);
    util::write_safetensors_streamed(out_dir + "/" + file_name, plan,
                                     meta == layout.file_metadata.end() ? std::map<std::string, std::string>{}
                                                                        : meta->second,
                                     produce, release);
    written.push_back(file_name);
    report.largest_shard_bytes = std::max(report.largest_shard_bytes, bytes);
    report.total_bytes += bytes;
    spdlog::info("export: wrote {} ({:.1f} MB)", file_name, bytes / 1e6);
  }  // the file's mapping is released here
  if (layout.sharded) {
    Json doc = Json::parse(layout.index_text);
    doc["metadata"]["total_size"] = report.total_bytes;
    Json wm = Json::object();
    for (const auto& [k, f] : index_entries) wm[k] = f;  // sorted, like HF's sort_keys=True
    doc["weight_map"] = wm;
    util::write_file_atomic(out_dir + "/" + kIndexFile, doc.dump(2) + "\n");
    written.push_back(kIndexFile);
  }
  report.weight_files = written;

  // ---- config and the files that make the folder load as-is
  util::write_file_atomic(out_dir + "/config.json", export_config_text(base_dir, report.lm_head_materialized));
  for (const auto& name : export_copied_file_names()) {
    const fs::path src = fs::path(base_dir) / name;
    if (!fs::is_regular_file(src)) continue;
    util::write_file_atomic(out_dir + "/" + name, util::read_file(src.string()));
    report.copied_files.push_back(name);
  }
  remove_stale_weight_files(out_dir, written);
  util::fsync_dir(out_dir);
  return report;
}

}  // namespace coordexp::model
