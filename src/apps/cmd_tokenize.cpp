// `coordexp-train tokenize`: encodes text to one JSON array of ids per input, or with --decode
// turns one JSON array of ids per line back into one JSON string per line. Inputs: --text S,
// --file F (one input per line) or --jsonl F (one JSON string per line, so inputs may hold
// newlines). Bad input (invalid UTF-8, bad JSON, unknown ids) names the file, line and offset.
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "apps/commands.h"
#include "coordexp/tokenizer/tokenizer.h"
#include "coordexp/util/error.h"

namespace coordexp::apps {
namespace {

struct TokenizeArgs {
  std::string tokenizer_dir;
  std::optional<std::string> text, file, jsonl;
  bool decode = false;
  bool skip_special_tokens = false;
  bool add_coord_tokens = false;
};

std::string ids_json(const std::vector<tokenizer::TokenId>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

// One line of --decode input: a JSON array of integer ids.
std::vector<tokenizer::TokenId> parse_ids(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError(std::string("not JSON: ") + e.what(), where, "each line must be a JSON array of token ids");
  }
  if (!j.is_array()) throw DataError("not a JSON array", where, "each line must be a JSON array of token ids");
  std::vector<tokenizer::TokenId> ids;
  for (const auto& v : j) {
    if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX)
      throw DataError("element " + v.dump() + " is not a token id", where, "each line must be a JSON array of token ids");
    ids.push_back(v.get<tokenizer::TokenId>());
  }
  return ids;
}

// Runs `fn` and prefixes any DataError with `where`.
template <class Fn>
void at(const std::string& where, Fn&& fn) {
  try {
    fn();
  } catch (const DataError& e) {
    throw DataError(e.message(), e.where().empty() ? where : where + ": " + e.where(), e.hint());
  }
}

int run_tokenize(const TokenizeArgs& a) {
  auto tok = tokenizer::Tokenizer::from_dir(a.tokenizer_dir);
  if (a.add_coord_tokens) tok->ensure_coord_tokens();
  const auto process = [&](const std::string& input, const std::string& where) {
    at(where, [&] {
      if (a.decode) {
        std::cout << nlohmann::json(tok->decode(parse_ids(input, where), a.skip_special_tokens)).dump() << "\n";
      } else {
        std::cout << ids_json(tok->encode(input)) << "\n";
      }
    });
  };
  if (a.text) {
    process(*a.text, "--text");
    return 0;
  }
  const std::string& path = a.file ? *a.file : *a.jsonl;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot open file", path, "check the path");
  std::string line;
  for (size_t lineno = 1; std::getline(in, line); ++lineno) {
    const std::string where = path + ":" + std::to_string(lineno);
    if (!line.empty() && line.back() == '\r' && a.jsonl) line.pop_back();  // JSONL written on Windows
    if (a.jsonl && !a.decode) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& e) {
        // e.byte is the 1-based position in the line where parsing failed (invalid UTF-8, bad
        // escapes and lone surrogates included).
        throw DataError("not a valid JSON string at byte offset " + std::to_string(e.byte ? e.byte - 1 : 0) + ": " +
                            e.what(), where, "each line must be one JSON string (UTF-8; \\n for newlines)");
      }
      if (!j.is_string()) throw DataError("not a JSON string", where, "each line must be one JSON string");
      process(j.get<std::string>(), where);
    } else {
      process(line, where);
    }
  }
  return 0;
}

}  // namespace

CommandRegistration add_tokenize_command(CLI::App& app, const GlobalFlags&) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* sub = app.add_subcommand("tokenize", "Encode text to token ids (one JSON array per input) or decode ids");
  sub->add_option("--tokenizer", args->tokenizer_dir, "Directory with tokenizer.json (+ tokenizer_config.json)")
      ->required();
  auto* text = sub->add_option("--text", args->text, "One input given on the command line");
  auto* file = sub->add_option("--file", args->file, "File with one input per line");
  auto* jsonl = sub->add_option("--jsonl", args->jsonl, "File with one JSON string per line (inputs may hold newlines)");
  text->excludes(file, jsonl);
  file->excludes(jsonl);
  sub->add_flag("--decode", args->decode, "Inverse: each input is a JSON array of ids; prints one JSON string each");
  sub->add_flag("--skip-special-tokens", args->skip_special_tokens, "With --decode: drop special tokens");
  sub->add_flag("--add-coord-tokens", args->add_coord_tokens,
                "Add <|coord_*|>, <|coord_0..999|> first if the tokenizer lacks them");
  return {sub, [args] {
            if (!args->text && !args->file && !args->jsonl)
              throw ConfigError("give one of --text, --file or --jsonl", "tokenize", "see --help");
            return run_tokenize(*args);
          }};
}

}  // namespace coordexp::apps
