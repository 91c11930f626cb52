// JSON form of TrainerState (a tagged, versioned object) and the settings diff used on resume.
#include "coordexp/train/trainer_state.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "coordexp/util/error.h"

namespace coordexp::train {
namespace {

constexpr const char* kFormat = "coordexp-trainer-state";
constexpr int kVersion = 1;

}  // namespace

std::string TrainerState::to_json() const {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["step"] = step;
  j["num_samples"] = num_samples;
  j["num_tokens"] = num_tokens;
  j["num_nonfinite_skipped"] = num_nonfinite_skipped;
  j["consecutive_nonfinite"] = consecutive_nonfinite;
  j["data_loader"] = nlohmann::ordered_json::parse(loader_state_json.empty() ? "{}" : loader_state_json);
  j["b_sampler_position"] = b_sampler_position;
  j["num_b_steps"] = num_b_steps;
  if (!b_producer_json.empty()) j["b_producer"] = nlohmann::ordered_json::parse(b_producer_json);
  j["world_size"] = world_size;
  j["config"] = config;
  return j.dump(2) + "\n";
}

TrainerState TrainerState::from_json(const std::string& text, const std::string& where) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  const std::string hint = "the checkpoint is damaged or not a coordexp checkpoint; resume from another one";
  if (j.is_discarded() || !j.is_object()) throw FormatError("not a JSON object", where, hint);
  if (j.value("format", "") != kFormat) throw FormatError("key format is not '" + std::string(kFormat) + "'", where, hint);
  if (j.value("version", 0) != kVersion)
    throw FormatError("unsupported trainer-state version", where, "written by another coordexp version");
  TrainerState s;
  auto get_int = [&](const char* key, int64_t& out) {
    if (!j.contains(key) || !j[key].is_number_integer()) throw FormatError(std::string("key ") + key + " missing or not an integer", where, hint);
    out = j[key].get<int64_t>();
  };
  get_int("step", s.step);
  get_int("num_samples", s.num_samples);
  get_int("num_tokens", s.num_tokens);
  get_int("num_nonfinite_skipped", s.num_nonfinite_skipped);
  get_int("consecutive_nonfinite", s.consecutive_nonfinite);
  // Channel-B state arrived after version 1 files existed: absent = no B step yet.
  if (j.contains("b_sampler_position")) get_int("b_sampler_position", s.b_sampler_position);
  if (j.contains("num_b_steps")) get_int("num_b_steps", s.num_b_steps);
  if (j.contains("world_size")) get_int("world_size", s.world_size);  // absent before world sizes were checked
  if (j.contains("b_producer")) {
    if (!j["b_producer"].is_object()) throw FormatError("key b_producer is not an object", where, hint);
    s.b_producer_json = j["b_producer"].dump();
  }
  if (!j.contains("data_loader") || !j["data_loader"].is_object())
    throw FormatError("key data_loader missing or not an object", where, hint);
  s.loader_state_json = j["data_loader"].dump();
  if (!j.contains("config") || !j["config"].is_object()) throw FormatError("key config missing or not an object", where, hint);
  for (const auto& [k, v] : j["config"].items()) {
    if (!v.is_string()) throw FormatError("key config." + k + " is not a string", where, hint);
    s.config[k] = v.get<std::string>();
  }
  return s;
}

std::vector<SettingChange> diff_settings(const std::map<std::string, std::string>& before,
                                         const std::map<std::string, std::string>& after,
                                         const std::vector<std::string>& ignore) {
  const std::set<std::string> skip(ignore.begin(), ignore.end());
  std::set<std::string> keys;
  for (const auto& [k, v] : before) keys.insert(k);
  for (const auto& [k, v] : after) keys.insert(k);
  std::vector<SettingChange> out;
  for (const auto& k : keys) {
    if (skip.count(k)) continue;
    const auto b = before.find(k), a = after.find(k);
    const std::string bv = b == before.end() ? "" : b->second, av = a == after.end() ? "" : a->second;
    if (bv != av || (b == before.end()) != (a == after.end())) out.push_back({k, bv, av});
  }
  return out;
}

}  // namespace coordexp::train
