// Parsing, validation and re-serialisation of Qwen3-VL config.json (see config.h). Only the
// fields the model uses are interpreted; everything else is carried through untouched.
#include "coordexp/model/config.h"

#include <cmath>
#include <sstream>

#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::model {
namespace {

using Json = nlohmann::ordered_json;

std::string key_where(const std::string& where, const std::string& key) {
  return where + ": key " + key;
}

// Typed readers: absent key -> default; wrong type -> FormatError naming the key.
int64_t read_int(const Json& obj, const char* key, const std::string& prefix, int64_t def,
                 const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_number_integer() && !(it->is_number_float() && std::floor(it->get<double>()) == it->get<double>()))
    throw FormatError("expected an integer, got " + it->dump(), key_where(where, prefix + key));
  return it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(it->get<double>());
}

double read_double(const Json& obj, const char* key, const std::string& prefix, double def,
                   const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_number())
    throw FormatError("expected a number, got " + it->dump(), key_where(where, prefix + key));
  return it->get<double>();
}

bool read_bool(const Json& obj, const char* key, const std::string& prefix, bool def,
               const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_boolean())
    throw FormatError("expected true or false, got " + it->dump(), key_where(where, prefix + key));
  return it->get<bool>();
}

std::string read_string(const Json& obj, const char* key, const std::string& prefix,
                        const std::string& def, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_string())
    throw FormatError("expected a string, got " + it->dump(), key_where(where, prefix + key));
  return it->get<std::string>();
}

std::vector<int64_t> read_int_list(const Json& obj, const char* key, const std::string& prefix,
                                   const std::vector<int64_t>& def, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_array())
    throw FormatError("expected a list of integers, got " + it->dump(), key_where(where, prefix + key));
  std::vector<int64_t> out;
  for (const auto& v : *it) {
    if (!v.is_number_integer())
      throw FormatError("expected a list of integers, got " + it->dump(), key_where(where, prefix + key));
    out.push_back(v.get<int64_t>());
  }
  return out;
}

// eos_token_id may be an int or a list (first entry used, informational only).
int64_t read_token_id(const Json& obj, const char* key, const std::string& prefix,
                      const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return -1;
  if (it->is_array()) return it->empty() || !(*it)[0].is_number_integer() ? -1 : (*it)[0].get<int64_t>();
  return read_int(obj, key, prefix, -1, where);
}

void reject_moe(const Json& doc, const Json& text, const std::string& where) {
  const std::string hint = "use a dense Qwen3-VL checkpoint (e.g. Qwen/Qwen3-VL-2B-Instruct)";
  const std::string mt = doc.value("model_type", std::string());
  if (mt == "qwen3_vl_moe")
    throw FormatError("unsupported model_type 'qwen3_vl_moe': Mixture-of-Experts Qwen3-VL is not supported",
                      key_where(where, "model_type"), hint);
  if (text.value("model_type", std::string()) == "qwen3_vl_moe_text" ||
      (text.contains("num_experts") && text["num_experts"].is_number() && text["num_experts"].get<double>() > 0))
    throw FormatError("unsupported Mixture-of-Experts text decoder (qwen3_vl_moe_text / num_experts)",
                      key_where(where, "text_config"), hint);
  if (!mt.empty() && mt != "qwen3_vl")
    throw FormatError("unsupported model_type '" + mt + "' (expected 'qwen3_vl')",
                      key_where(where, "model_type"), hint);
}

// Rope settings from either spelling; fills theta and mrope_section.
void read_rope(const Json& text, TextConfig& t, const std::string& where) {
  const std::string p = "text_config.";
  const Json* rope = nullptr;
  std::string rope_key;
  if (text.contains("rope_parameters") && text["rope_parameters"].is_object()) {
    rope = &text["rope_parameters"];
    rope_key = "rope_parameters";
    t.rope_theta = read_double(*rope, "rope_theta", p + rope_key + ".",
                               read_double(text, "rope_theta", p, t.rope_theta, where), where);
  } else {
    t.rope_theta = read_double(text, "rope_theta", p, t.rope_theta, where);
    if (text.contains("rope_scaling") && text["rope_scaling"].is_object()) {
      rope = &text["rope_scaling"];
      rope_key = "rope_scaling";
    }
  }
  if (!rope) return;
  const std::string rp = p + rope_key + ".";
  std::string type = read_string(*rope, "rope_type", rp, "", where);
  if (type.empty()) type = read_string(*rope, "type", rp, "default", where);
  if (type != "default" && type != "mrope")
    throw FormatError("unsupported rope_type '" + type + "' (Qwen3-VL uses 'default')",
                      key_where(where, rp + "rope_type"));
  t.mrope_section = read_int_list(*rope, "mrope_section", rp, t.mrope_section, where);
}

// Writes `value` under `key` unless an equal value is already there (keeps the original spelling
// of numbers such as 5000000 vs 5000000.0, so an unchanged config stays byte-identical).
template <class T>
void put(Json& obj, const char* key, const T& value) {
  auto it = obj.find(key);
  if (it != obj.end()) {
    if constexpr (std::is_floating_point_v<T>) {
      if (it->is_number() && it->get<double>() == static_cast<double>(value)) return;
    } else {
      if (*it == Json(value)) return;
    }
  }
  obj[key] = value;
}

}  // namespace

int64_t VisionConfig::pos_grid_side() const {
  return static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(num_position_embeddings))));
}

Qwen3VLConfig Qwen3VLConfig::from_json_text(const std::string& text, const std::string& where) {
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(std::string("invalid JSON: ") + e.what(), where);
  }
  if (!doc.is_object()) throw FormatError("expected a JSON object at the top level", where);
  const Json empty = Json::object();
  const Json& tj = doc.contains("text_config") ? doc["text_config"] : empty;
  const Json& vj = doc.contains("vision_config") ? doc["vision_config"] : empty;
  if (!tj.is_object()) throw FormatError("expected an object", key_where(where, "text_config"));
  if (!vj.is_object()) throw FormatError("expected an object", key_where(where, "vision_config"));
  if (!doc.contains("text_config") || !doc.contains("vision_config"))
    throw FormatError("missing text_config or vision_config", where,
                      "this does not look like a Qwen3-VL config.json (model_type qwen3_vl)");
  reject_moe(doc, tj, where);

  Qwen3VLConfig c;
  const std::string tp = "text_config.", vp = "vision_config.";
  TextConfig& t = c.text;
  t.vocab_size = read_int(tj, "vocab_size", tp, t.vocab_size, where);
  t.hidden_size = read_int(tj, "hidden_size", tp, t.hidden_size, where);
  t.intermediate_size = read_int(tj, "intermediate_size", tp, t.intermediate_size, where);
  t.num_hidden_layers = read_int(tj, "num_hidden_layers", tp, t.num_hidden_layers, where);
  t.num_attention_heads = read_int(tj, "num_attention_heads", tp, t.num_attention_heads, where);
  t.num_key_value_heads = read_int(tj, "num_key_value_heads", tp, t.num_key_value_heads, where);
  t.head_dim = read_int(tj, "head_dim", tp, t.head_dim, where);
  t.rms_norm_eps = read_double(tj, "rms_norm_eps", tp, t.rms_norm_eps, where);
  t.hidden_act = read_string(tj, "hidden_act", tp, t.hidden_act, where);
  t.bos_token_id = read_token_id(tj, "bos_token_id", tp, where);
  t.eos_token_id = read_token_id(tj, "eos_token_id", tp, where);
  read_rope(tj, t, where);
  if (read_bool(tj, "attention_bias", tp, false, where))
    throw FormatError("attention_bias = true is not supported (Qwen3-VL has no attention biases)",
                      key_where(where, tp + "attention_bias"));

  VisionConfig& v = c.vision;
  v.depth = read_int(vj, "depth", vp, v.depth, where);
  v.hidden_size = read_int(vj, "hidden_size", vp, v.hidden_size, where);
  v.num_heads = read_int(vj, "num_heads", vp, v.num_heads, where);
  v.intermediate_size = read_int(vj, "intermediate_size", vp, v.intermediate_size, where);
  v.in_channels = read_int(vj, "in_channels", vp, v.in_channels, where);
  v.patch_size = read_int(vj, "patch_size", vp, v.patch_size, where);
  v.temporal_patch_size = read_int(vj, "temporal_patch_size", vp, v.temporal_patch_size, where);
  v.spatial_merge_size = read_int(vj, "spatial_merge_size", vp, v.spatial_merge_size, where);
  v.out_hidden_size = read_int(vj, "out_hidden_size", vp, v.out_hidden_size, where);
  v.num_position_embeddings = read_int(vj, "num_position_embeddings", vp, v.num_position_embeddings, where);
  v.deepstack_visual_indexes = read_int_list(vj, "deepstack_visual_indexes", vp, v.deepstack_visual_indexes, where);
  v.hidden_act = read_string(vj, "hidden_act", vp, v.hidden_act, where);

  c.image_token_id = read_int(doc, "image_token_id", "", c.image_token_id, where);
  c.video_token_id = read_int(doc, "video_token_id", "", c.video_token_id, where);
  c.vision_start_token_id = read_int(doc, "vision_start_token_id", "", c.vision_start_token_id, where);
  c.vision_end_token_id = read_int(doc, "vision_end_token_id", "", c.vision_end_token_id, where);
  // The top-level flag is what HF's ForConditionalGeneration reads; text_config's copy is a fallback.
  c.tie_word_embeddings = read_bool(doc, "tie_word_embeddings", "",
                                    read_bool(tj, "tie_word_embeddings", tp, false, where), where);
  c.validate(where);
  c.source_ = std::move(doc);
  c.source_text_ = text;
  return c;
}

Qwen3VLConfig Qwen3VLConfig::from_file(const std::string& path) {
  return from_json_text(util::read_file(path), path);
}

Qwen3VLConfig Qwen3VLConfig::from_dir(const std::string& dir) {
  return from_file(dir + "/config.json");
}

void Qwen3VLConfig::validate(const std::string& where) const {
  auto fail = [&](const std::string& key, const std::string& msg) {
    throw FormatError(msg, key_where(where, key));
  };
  auto positive = [&](const std::string& key, int64_t v) {
    if (v <= 0) fail(key, "must be positive, got " + std::to_string(v));
  };
  const TextConfig& t = text;
  positive("text_config.vocab_size", t.vocab_size);
  positive("text_config.hidden_size", t.hidden_size);
  positive("text_config.intermediate_size", t.intermediate_size);
  positive("text_config.num_hidden_layers", t.num_hidden_layers);
  positive("text_config.num_attention_heads", t.num_attention_heads);
  positive("text_config.num_key_value_heads", t.num_key_value_heads);
  positive("text_config.head_dim", t.head_dim);
  if (t.num_attention_heads % t.num_key_value_heads != 0)
    fail("text_config.num_key_value_heads", "must divide num_attention_heads (" +
                                                std::to_string(t.num_attention_heads) + ")");
  if (t.head_dim % 2 != 0) fail("text_config.head_dim", "must be even");
  if (!(t.rms_norm_eps > 0)) fail("text_config.rms_norm_eps", "must be positive");
  if (!(t.rope_theta > 0)) fail("text_config.rope_theta", "must be positive");
  if (t.hidden_act != "silu") fail("text_config.hidden_act", "unsupported activation '" + t.hidden_act + "' (expected silu)");
  if (t.mrope_section.size() != 3)
    fail("text_config.rope_scaling.mrope_section", "must have 3 entries (T, H, W)");
  int64_t sum = 0;
  for (int64_t s : t.mrope_section) {
    if (s < 0) fail("text_config.rope_scaling.mrope_section", "entries must be >= 0");
    sum += s;
  }
  if (sum != t.head_dim / 2)
    fail("text_config.rope_scaling.mrope_section",
         "entries must sum to head_dim / 2 = " + std::to_string(t.head_dim / 2) + ", got " + std::to_string(sum));

  const VisionConfig& v = vision;
  positive("vision_config.depth", v.depth);
  positive("vision_config.hidden_size", v.hidden_size);
  positive("vision_config.num_heads", v.num_heads);
  positive("vision_config.intermediate_size", v.intermediate_size);
  positive("vision_config.in_channels", v.in_channels);
  positive("vision_config.patch_size", v.patch_size);
  positive("vision_config.temporal_patch_size", v.temporal_patch_size);
  positive("vision_config.spatial_merge_size", v.spatial_merge_size);
  positive("vision_config.num_position_embeddings", v.num_position_embeddings);
  if (v.hidden_size % v.num_heads != 0) fail("vision_config.num_heads", "must divide hidden_size");
  if (v.head_dim() % 4 != 0)
    fail("vision_config.num_heads", "vision head dim (hidden_size / num_heads) must be a multiple of 4 for the 2-D rotary");
  if (v.pos_grid_side() * v.pos_grid_side() != v.num_position_embeddings)
    fail("vision_config.num_position_embeddings", "must be a perfect square (a side x side grid)");
  if (v.hidden_act != "gelu_pytorch_tanh")
    fail("vision_config.hidden_act", "unsupported activation '" + v.hidden_act + "' (expected gelu_pytorch_tanh)");
  if (v.out_hidden_size != t.hidden_size)
    fail("vision_config.out_hidden_size", "must equal text_config.hidden_size (" + std::to_string(t.hidden_size) + ")");
  for (size_t k = 0; k < v.deepstack_visual_indexes.size(); ++k) {
    const int64_t b = v.deepstack_visual_indexes[k];
    if (b < 0 || b >= v.depth) fail("vision_config.deepstack_visual_indexes", "entry " + std::to_string(b) + " is not a block index < depth");
    if (k > 0 && b <= v.deepstack_visual_indexes[k - 1])
      fail("vision_config.deepstack_visual_indexes", "entries must be strictly increasing");
  }
  if (static_cast<int64_t>(v.deepstack_visual_indexes.size()) > t.num_hidden_layers)
    fail("vision_config.deepstack_visual_indexes", "more DeepStack taps than text layers");
  for (auto [key, id] : {std::pair{"image_token_id", image_token_id}, {"video_token_id", video_token_id},
                         {"vision_start_token_id", vision_start_token_id}, {"vision_end_token_id", vision_end_token_id}})
    if (id < 0 || id >= t.vocab_size) fail(key, "token id " + std::to_string(id) + " outside the vocabulary");
}

nlohmann::ordered_json Qwen3VLConfig::to_json() const {
  Json doc = source_.is_object() ? source_ : Json::object();
  if (!source_.is_object()) {
    doc["architectures"] = Json::array({"Qwen3VLForConditionalGeneration"});
    doc["model_type"] = "qwen3_vl";
  }
  put(doc, "image_token_id", image_token_id);
  put(doc, "video_token_id", video_token_id);
  put(doc, "vision_start_token_id", vision_start_token_id);
  put(doc, "vision_end_token_id", vision_end_token_id);
  put(doc, "tie_word_embeddings", tie_word_embeddings);

  Json& tj = doc["text_config"];
  if (!tj.is_object()) tj = Json::object();
  if (!tj.contains("model_type")) tj["model_type"] = "qwen3_vl_text";
  put(tj, "vocab_size", text.vocab_size);
  put(tj, "hidden_size", text.hidden_size);
  put(tj, "intermediate_size", text.intermediate_size);
  put(tj, "num_hidden_layers", text.num_hidden_layers);
  put(tj, "num_attention_heads", text.num_attention_heads);
  put(tj, "num_key_value_heads", text.num_key_value_heads);
  put(tj, "head_dim", text.head_dim);
  put(tj, "hidden_act", text.hidden_act);
  put(tj, "rms_norm_eps", text.rms_norm_eps);
  if (!tj.contains("attention_bias")) tj["attention_bias"] = false;
  if (tj.contains("tie_word_embeddings")) put(tj, "tie_word_embeddings", tie_word_embeddings);
  if (text.bos_token_id >= 0 && !tj.contains("bos_token_id")) tj["bos_token_id"] = text.bos_token_id;
  if (text.eos_token_id >= 0 && !tj.contains("eos_token_id")) tj["eos_token_id"] = text.eos_token_id;
  if (tj.contains("rope_parameters") && tj["rope_parameters"].is_object()) {
    Json& rp = tj["rope_parameters"];
    put(rp, "rope_theta", text.rope_theta);
    put(rp, "mrope_section", text.mrope_section);
  } else {
    put(tj, "rope_theta", text.rope_theta);
    Json& rs = tj["rope_scaling"];
    if (!rs.is_object()) rs = Json{{"mrope_interleaved", true}, {"rope_type", "default"}};
    put(rs, "mrope_section", text.mrope_section);
  }

  Json& vj = doc["vision_config"];
  if (!vj.is_object()) vj = Json::object();
  if (!vj.contains("model_type")) vj["model_type"] = "qwen3_vl";
  put(vj, "depth", vision.depth);
  put(vj, "hidden_size", vision.hidden_size);
  put(vj, "num_heads", vision.num_heads);
  put(vj, "intermediate_size", vision.intermediate_size);
  put(vj, "hidden_act", vision.hidden_act);
  put(vj, "in_channels", vision.in_channels);
  put(vj, "patch_size", vision.patch_size);
  put(vj, "temporal_patch_size", vision.temporal_patch_size);
  put(vj, "spatial_merge_size", vision.spatial_merge_size);
  put(vj, "out_hidden_size", vision.out_hidden_size);
  put(vj, "num_position_embeddings", vision.num_position_embeddings);
  put(vj, "deepstack_visual_indexes", vision.deepstack_visual_indexes);
  return doc;
}

std::string Qwen3VLConfig::to_json_text() const {
  Json doc = to_json();
  if (source_.is_object() && doc == source_) return source_text_;
  return doc.dump(2) + "\n";
}

}  // namespace coordexp::model
