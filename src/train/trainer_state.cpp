// JSON form of TrainerState (a tagged, versioned object) and the settings diff used on resume.
#include "coordexp/train/trainer_state.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <set>

#include "coordexp/util/error.h"

namespace coordexp::train {
namespace {

constexpr const char* kFormat = "coordexp-trainer-state";
constexpr int kVersion = 1;

nlohmann::ordered_json ancestors_json(const RunLineage& l) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const auto& x : l.ancestors) {
    nlohmann::ordered_json e;
    e["run_id"] = x.run_id;
    e["until_step"] = x.until_step;
    a.push_back(std::move(e));
  }
  return a;
}

std::vector<RunLineage::Ancestor> ancestors_from(const nlohmann::json& a, const std::string& where, const std::string& hint) {
  if (!a.is_array()) throw FormatError("run ancestors are not an array", where, hint);
  std::vector<RunLineage::Ancestor> out;
  for (const auto& e : a) {
    if (!e.is_object() || !e.contains("run_id") || !e["run_id"].is_string() || !e.contains("until_step") ||
        !e["until_step"].is_number_integer())
      throw FormatError("a run ancestor is not {\"run_id\": string, \"until_step\": integer}", where, hint);
    out.push_back({e["run_id"].get<std::string>(), e["until_step"].get<int64_t>()});
  }
  return out;
}

}  // namespace

bool RunLineage::contains(const std::string& checkpoint_run_id, int64_t step) const {
  if (checkpoint_run_id == run_id) return true;
  for (const auto& a : ancestors)
    if (a.run_id == checkpoint_run_id && step <= a.until_step) return true;
  return false;
}

RunLineage RunLineage::branch(int64_t step, std::string new_run_id) const {
  RunLineage out;
  for (const auto& a : ancestors)
    if (a.until_step <= step) out.ancestors.push_back(a);
  out.ancestors.push_back({run_id, step});
  out.run_id = std::move(new_run_id);
  return out;
}

std::string RunLineage::to_json() const {
  nlohmann::ordered_json j;
  j["run_id"] = run_id;
  j["ancestors"] = ancestors_json(*this);
  return j.dump(2) + "\n";
}

RunLineage RunLineage::from_json(const std::string& text, const std::string& where) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  const std::string hint = "delete it (checkpoint.resume auto then takes the highest-step checkpoint) or resume a "
                           "checkpoint explicitly";
  if (j.is_discarded() || !j.is_object() || !j.contains("run_id") || !j["run_id"].is_string())
    throw FormatError("not a run lineage (a JSON object with a string run_id)", where, hint);
  RunLineage l;
  l.run_id = j["run_id"].get<std::string>();
  if (j.contains("ancestors")) l.ancestors = ancestors_from(j["ancestors"], where, hint);
  return l;
}

std::string new_run_id() {
  std::random_device rd;
  uint64_t x = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  x ^= static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) * 0x9E3779B97F4A7C15ull;
  x ^= static_cast<uint64_t>(::getpid()) << 17;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

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
  j["run_id"] = lineage.run_id;
  j["run_ancestors"] = ancestors_json(lineage);
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
  if (j.contains("run_id")) {  // absent before run lineages: run id ""
    if (!j["run_id"].is_string()) throw FormatError("key run_id is not a string", where, hint);
    s.lineage.run_id = j["run_id"].get<std::string>();
  }
  if (j.contains("run_ancestors")) s.lineage.ancestors = ancestors_from(j["run_ancestors"], where, hint);
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
