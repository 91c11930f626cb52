// Shared helpers for the tokenizer tests: the real Qwen3 tokenizer (loaded once per process, with
// and without the coord tokens), the golden JSONL cases, a tiny synthetic tokenizer.json for
// error cases, and temporary directories.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "coordexp/tokenizer/tokenizer.h"
#include "tokenizer/byte_level.h"

namespace coordexp::tokenizer::testing {

inline std::string qwen_dir() {
  const char* env = std::getenv("COORDEXP_TOKENIZER_DIR");
  return env && *env ? env : COORDEXP_SOURCE_DIR "/.cache/tokenizer-qwen3";
}

inline std::string missing_qwen_message() {
  return "the Qwen3 tokenizer is not at " + qwen_dir() +
         "; run scripts/fetch-tokenizer.sh " + qwen_dir() + " (or set COORDEXP_TOKENIZER_DIR)";
}

inline bool have_qwen() { return std::filesystem::exists(qwen_dir() + "/tokenizer.json"); }

// The real tokenizer with the coord tokens added (shared, read-only).
inline std::shared_ptr<const Tokenizer> qwen() {
  static std::shared_ptr<Tokenizer> tok = [] {
    if (!have_qwen()) return std::shared_ptr<Tokenizer>();
    auto t = Tokenizer::from_dir(qwen_dir());
    t->ensure_coord_tokens();
    return t;
  }();
  return tok;
}

#define REQUIRE_QWEN(var)                                                            \
  const auto var = ::coordexp::tokenizer::testing::qwen();                           \
  ASSERT_NE(var, nullptr) << ::coordexp::tokenizer::testing::missing_qwen_message()

struct GoldenCase {
  std::string category, text;
  std::vector<TokenId> ids;
};

inline std::vector<GoldenCase> read_cases(const std::string& file, const char* ids_key) {
  std::ifstream in(std::string(COORDEXP_TEST_DATA_DIR) + "/" + file);
  std::vector<GoldenCase> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back({j.at("category").get<std::string>(), j.at("text").get<std::string>(),
                   j.at(ids_key).get<std::vector<TokenId>>()});
  }
  return out;
}

inline const std::vector<GoldenCase>& golden_cases() {
  static const auto cases = read_cases("tokenizer_golden.jsonl", "ids");
  return cases;
}

// A fresh empty directory under the system temp dir.
inline std::filesystem::path temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("coordexp_tok_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_file(const std::filesystem::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

// A tiny byte-level BPE tokenizer.json in the Qwen2 layout: ids 0..255 are the bytes, then the
// merges a+b -> "ab" (256), ab+c -> "abc" (257), Ġ+a -> "Ġa" (258).
inline nlohmann::json tiny_tokenizer_json() {
  const auto& table = detail::ByteLevelTable::get();
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[table.encode(std::string(1, static_cast<char>(b)))] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab["\xC4\xA0" "a"] = 258;
  nlohmann::json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = nlohmann::json::array();
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}};
  j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  j["model"] = {{"type", "BPE"},         {"dropout", nullptr},        {"unk_token", nullptr},
                {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""}, {"fuse_unk", false},
                {"byte_fallback", false}, {"ignore_merges", false}, {"vocab", vocab},
                {"merges", nlohmann::json::array({nlohmann::json::array({"a", "b"}), nlohmann::json::array({"ab", "c"}),
                                                  nlohmann::json::array({"\xC4\xA0", "a"})})}};
  return j;
}

inline nlohmann::json added_token(int id, const std::string& content, bool special = true) {
  return {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

// Writes `j` as tokenizer.json into a fresh directory and loads it.
inline std::shared_ptr<Tokenizer> load_json(const nlohmann::json& j, const std::string& name) {
  const auto dir = temp_dir(name);
  write_file(dir / "tokenizer.json", j.dump());
  return Tokenizer::from_dir(dir.string());
}

}  // namespace coordexp::tokenizer::testing
