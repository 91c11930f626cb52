// derive_tokenizer_files: cuts a byte-level BPE tokenizer down to its byte tokens, its first M
// merges and its added tokens, renumbers ids densely (source id order) and writes tokenizer.json
// and tokenizer_config.json, then lets Tokenizer add the coord tokens and save. The vocabulary and
// merges are streamed out of the 11 MB source file, never built as JSON objects.
#include "coordexp/tokenizer/derive_vocab.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"
#include "tokenizer/byte_level.h"

namespace coordexp::tokenizer {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// tokenizer.json with model.vocab and model.merges taken out while parsing: an ordered_json object
// of 150k keys would cost a linear search per insert. `rest` keeps empty vocab/merges containers
// at their original positions.
struct SourceJson {
  ojson rest;
  std::vector<std::pair<std::string, int64_t>> vocab;        // token (byte-level spelling) -> id
  std::vector<std::pair<std::string, std::string>> merges;   // (left, right) in rank order
  bool merges_as_strings = false;                            // "a b" (tokenizers < 0.20) or ["a", "b"]
};

SourceJson read_source(const std::string& path) {
  const std::string text = util::read_file(path);
  SourceJson out;
  enum class Capture { kNone, kVocab, kMerges } capture = Capture::kNone;
  std::vector<std::string> keys(3);
  std::string pending_key;
  const auto callback = [&](int depth, ojson::parse_event_t event, ojson& parsed) -> bool {
    using E = ojson::parse_event_t;
    if (event == E::key && depth < 3) keys[static_cast<size_t>(depth)] = parsed.get<std::string>();
    if (depth == 2 && keys[1] == "model" && (event == E::object_start || event == E::array_start)) {
      if (keys[2] == "vocab" && event == E::object_start) capture = Capture::kVocab;
      if (keys[2] == "merges" && event == E::array_start) capture = Capture::kMerges;
      return true;
    }
    if (depth == 2 && (event == E::object_end || event == E::array_end)) {
      capture = Capture::kNone;
      return true;
    }
    if (capture == Capture::kVocab && depth == 3) {
      if (event == E::key) pending_key = parsed.get<std::string>();
      else if (event == E::value) out.vocab.emplace_back(pending_key, parsed.is_number_integer() ? parsed.get<int64_t>() : -1);
      return false;
    }
    if (capture == Capture::kMerges && depth == 3 && (event == E::value || event == E::array_end)) {
      if (parsed.is_string()) {
        out.merges_as_strings = true;
        const std::string s = parsed.get<std::string>();
        const size_t space = s.find(' ');
        out.merges.emplace_back(s.substr(0, space), space == std::string::npos ? "" : s.substr(space + 1));
      } else if (parsed.is_array() && parsed.size() == 2) {
        out.merges.emplace_back(parsed[0].get<std::string>(), parsed[1].get<std::string>());
      }
      return false;
    }
    return true;
  };
  try {
    out.rest = ojson::parse(text, callback);
  } catch (const ojson::exception& e) {
    throw FormatError(std::string("cannot read: ") + e.what(), path, "re-download the tokenizer files");
  }
  return out;
}

// `value`.dump(2) with every line after the first indented by `indent` more spaces.
std::string dump_indented(const ojson& value, int indent) {
  std::string s = value.dump(2);
  const std::string pad(static_cast<size_t>(indent), ' ');
  for (size_t p = s.find('\n'); p != std::string::npos; p = s.find('\n', p + 1 + pad.size())) s.insert(p + 1, pad);
  return s;
}

std::string quoted(const std::string& s) { return ojson(s).dump(); }

// The model object with the kept vocab and merges, in the source's key order, HF's layout.
std::string render_model(const ojson& model, const std::vector<std::pair<std::string, int64_t>>& vocab,
                         const std::vector<std::pair<std::string, std::string>>& merges, bool merges_as_strings) {
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : model.items()) {
    out += first ? "\n    " : ",\n    ";
    first = false;
    out += quoted(key) + ": ";
    if (key == "vocab") {
      out += "{";
      for (size_t i = 0; i < vocab.size(); ++i)
        out += (i ? ",\n      " : "\n      ") + quoted(vocab[i].first) + ": " + std::to_string(vocab[i].second);
      out += vocab.empty() ? "}" : "\n    }";
    } else if (key == "merges") {
      out += "[";
      for (size_t i = 0; i < merges.size(); ++i) {
        out += i ? ",\n      " : "\n      ";
        if (merges_as_strings) out += quoted(merges[i].first + " " + merges[i].second);
        else out += "[\n        " + quoted(merges[i].first) + ",\n        " + quoted(merges[i].second) + "\n      ]";
      }
      out += merges.empty() ? "]" : "\n    ]";
    } else {
      out += dump_indented(value, 4);
    }
  }
  out += first ? "}" : "\n  }";
  return out;
}

}  // namespace

DeriveTokenizerResult derive_tokenizer_files(const std::string& src_dir, size_t num_merges, const std::string& dst_dir) {
  // Loading first runs every format check of the tokenizer (components, vocab, merges, bytes).
  const auto source = Tokenizer::from_dir(src_dir);
  std::error_code ec;
  if (fs::exists(dst_dir) && fs::equivalent(src_dir, dst_dir, ec))
    throw ConfigError("the output directory is the source directory", dst_dir, "write the derived tokenizer elsewhere");
  const std::string json_path = (fs::path(src_dir) / "tokenizer.json").string();
  SourceJson src = read_source(json_path);
  DeriveTokenizerResult r;
  r.source_vocab = src.vocab.size();
  r.source_merges = src.merges.size();
  if (num_merges > src.merges.size())
    throw ConfigError("asked for " + std::to_string(num_merges) + " merges but the source has " +
                          std::to_string(src.merges.size()),
                      "--merges", "use at most " + std::to_string(src.merges.size()));

  // Kept tokens: every single-byte token, then what each kept merge makes. A merge whose parts no
  // kept merge makes can never fire in the cut tokenizer, so it is left out (and counted).
  const auto& table = detail::ByteLevelTable::get();
  std::unordered_set<std::string> kept;
  std::string bytes;
  for (const auto& [token, id] : src.vocab)
    if (table.decode_into(token, bytes) && bytes.size() == 1) kept.insert(token);
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(num_merges);
  for (size_t rank = 0; rank < num_merges; ++rank) {
    const auto& [left, right] = src.merges[rank];
    if (!kept.count(left) || !kept.count(right)) {
      ++r.skipped_merges;
      continue;
    }
    kept.insert(left + right);
    merges.push_back(src.merges[rank]);
  }
  r.kept_merges = merges.size();

  // Dense ids in source id order: the kept vocab first, then the added tokens.
  std::vector<std::pair<std::string, int64_t>> vocab;
  for (const auto& entry : src.vocab)
    if (kept.count(entry.first)) vocab.push_back(entry);
  std::sort(vocab.begin(), vocab.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  for (size_t i = 0; i < vocab.size(); ++i) vocab[i].second = static_cast<int64_t>(i);
  r.kept_vocab = vocab.size();

  const std::string config_path = (fs::path(src_dir) / "tokenizer_config.json").string();
  ojson config;
  const bool has_config = fs::exists(config_path);
  if (has_config) config = ojson::parse(util::read_file(config_path));  // valid: from_dir parsed it
  std::map<int64_t, std::string> added_by_source_id;  // both files' added tokens (they agree: checked at load)
  for (const ojson& t : src.rest.value("added_tokens", ojson::array()))
    added_by_source_id.emplace(t.at("id").get<int64_t>(), t.at("content").get<std::string>());
  if (has_config && config.contains("added_tokens_decoder"))
    for (const auto& [key, value] : config["added_tokens_decoder"].items())
      added_by_source_id.emplace(std::stoll(key), value.at("content").get<std::string>());
  std::unordered_map<int64_t, int64_t> new_id;
  for (const auto& [id, content] : added_by_source_id)
    new_id.emplace(id, static_cast<int64_t>(vocab.size() + new_id.size()));
  r.added_tokens = new_id.size();

  if (src.rest.contains("added_tokens") && src.rest["added_tokens"].is_array())
    for (ojson& t : src.rest["added_tokens"]) t["id"] = new_id.at(t["id"].get<int64_t>());
  std::string doc = "{";
  bool first = true;
  for (const auto& [key, value] : src.rest.items()) {
    doc += (first ? "\n  " : ",\n  ") + quoted(key) + ": ";
    first = false;
    doc += key == "model" ? render_model(value, vocab, merges, src.merges_as_strings) : dump_indented(value, 2);
  }
  doc += "\n}";
  fs::create_directories(dst_dir, ec);
  if (ec) throw DataError("cannot create directory: " + ec.message(), dst_dir, "check permissions");
  util::write_file_atomic((fs::path(dst_dir) / "tokenizer.json").string(), doc);
  if (has_config) {
    if (config.contains("added_tokens_decoder")) {
      std::map<int64_t, ojson> renumbered;
      for (const auto& [key, value] : config["added_tokens_decoder"].items()) renumbered.emplace(new_id.at(std::stoll(key)), value);
      ojson decoder = ojson::object();
      for (auto& [id, value] : renumbered) decoder[std::to_string(id)] = std::move(value);
      config["added_tokens_decoder"] = std::move(decoder);
    }
    util::write_file_atomic((fs::path(dst_dir) / "tokenizer_config.json").string(), config.dump(2) + "\n");
  }
  // Files that name tokens by text only travel as they are; vocab.json / merges.txt would
  // contradict the cut vocabulary, so they are not copied.
  for (const char* name : {"special_tokens_map.json", "chat_template.jinja", "chat_template.json"})
    if (fs::exists(fs::path(src_dir) / name))
      fs::copy_file(fs::path(src_dir) / name, fs::path(dst_dir) / name, fs::copy_options::overwrite_existing);

  auto derived = Tokenizer::from_dir(dst_dir);
  derived->ensure_coord_tokens();
  derived->save(dst_dir);
  r.vocab_size = derived->vocab_size();
  r.coord = derived->coord_vocab();
  return r;
}

}  // namespace coordexp::tokenizer
