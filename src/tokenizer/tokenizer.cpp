// Tokenizer: reads a Hugging Face tokenizer.json (Qwen2/Qwen3 byte-level BPE) and checks that
// every component is one this implementation reproduces exactly; encodes (added tokens -> NFC ->
// regex split -> BPE) with byte offsets into the input, decodes, and owns the coord vocabulary.
// The pieces live in added_tokens / nfc / regex_split / bpe; this file wires them together.
#include "coordexp/tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "coordexp/tokenizer/expand_vocab.h"
#include "coordexp/util/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/json_splice.h"
#include "tokenizer/nfc.h"
#include "tokenizer/regex_split.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab_index.h"

namespace coordexp::tokenizer {

namespace fs = std::filesystem;
using nlohmann::json;
using detail::AddedMatch;
using detail::AddedToken;
using detail::AddedTokenMatcher;
using detail::ByteSpan;
using detail::NormalizedText;

namespace {

constexpr char kCoordWildcard[] = "<|coord_*|>";
std::string coord_token(int k) { return "<|coord_" + std::to_string(k) + "|>"; }

// BPE word cache entries (all shards together). Qwen text has far fewer distinct words in any
// working set; a full shard is cleared and refills.
constexpr size_t kBpeCacheCapacity = 1 << 17;

// HF's ByteLevel pre-tokenizer with use_regex=true splits with the GPT-2 pattern.
constexpr char kGpt2Pattern[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

constexpr size_t kMaxTokenId = 1u << 24;

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot open file", path, "check the path and permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw DataError("cannot read file", path, "check the file");
  return ss.str();
}

void write_text_file_atomic(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw DataError("cannot create file", tmp, "check that the directory is writable");
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    if (!out) throw DataError("cannot write file", tmp, "check free disk space");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw DataError("cannot rename " + tmp + " to " + path + ": " + ec.message(), path);
}

// tokenizer.json with model.vocab and model.merges taken out while parsing (into flat lists):
// building them as JSON objects would cost more than everything else the loader does.
struct TokenizerJson {
  json rest;                                           // the document without vocab entries and merges
  std::vector<std::pair<std::string, json>> vocab;     // token -> id value, in file order
  std::vector<json> merges;                            // "a b" strings or ["a", "b"] pairs
  bool vocab_is_object = false, merges_is_array = false;
};

TokenizerJson parse_tokenizer_json(const std::string& text, const std::string& path) {
  TokenizerJson out;
  enum class Capture { kNone, kVocab, kMerges } capture = Capture::kNone;
  std::vector<std::string> keys(3);  // last key seen at depths 0..2
  std::string pending_key;
  const auto in_model = [&] { return keys[1] == "model"; };
  const auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    using E = json::parse_event_t;
    if (event == E::key && depth < 3) keys[static_cast<size_t>(depth)] = parsed.get<std::string>();
    if (depth == 2 && in_model() && (event == E::object_start || event == E::array_start)) {
      if (keys[2] == "vocab" && event == E::object_start) {
        capture = Capture::kVocab;
        out.vocab_is_object = true;
      } else if (keys[2] == "merges" && event == E::array_start) {
        capture = Capture::kMerges;
        out.merges_is_array = true;
      }
      return true;
    }
    if (depth == 2 && (event == E::object_end || event == E::array_end)) {
      capture = Capture::kNone;
      return true;
    }
    if (capture == Capture::kVocab && depth == 3) {
      // Discarding the key keeps the entry out of the object entirely (a kept key is inserted
      // first and erased later). A nested container is recorded as a bad (null) id.
      if (event == E::key) pending_key = std::move(parsed.get_ref<std::string&>());
      else if (event == E::value) out.vocab.emplace_back(std::move(pending_key), std::move(parsed));
      else if (event == E::object_start || event == E::array_start) out.vocab.emplace_back(std::move(pending_key), json());
      return false;
    }
    if (capture == Capture::kMerges && depth == 3 && (event == E::value || event == E::array_end || event == E::object_end)) {
      out.merges.push_back(std::move(parsed));
      return false;
    }
    return true;
  };
  try {
    out.rest = json::parse(text, callback);
  } catch (const json::parse_error& e) {
    throw FormatError(std::string("not valid JSON: ") + e.what(), path, "re-download the tokenizer files");
  }
  return out;
}

json parse_json_file(const std::string& text, const std::string& path) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw FormatError(std::string("not valid JSON: ") + e.what(), path, "re-download the tokenizer files");
  }
}

std::string type_of(const json& j) {
  if (!j.is_object()) return "";
  const auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

bool flag(const json& j, const char* key, bool fallback, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw FormatError(std::string("field '") + key + "' must be true or false", where, "fix the file");
  return it->get<bool>();
}

[[noreturn]] void unsupported(const std::string& what, const std::string& where, const std::string& supported) {
  throw FormatError("unsupported " + what, where, "supported: " + supported);
}

bool empty_or_null_string(const json& j, const char* key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty());
}

// Normalizer: none, NFC, or a Sequence of NFCs.
bool read_normalizer(const json& j, const std::string& path) {
  if (j.is_null()) return false;
  const std::string type = type_of(j);
  if (type == "NFC") return true;
  if (type == "Sequence") {
    bool nfc = false;
    for (const json& n : j.value("normalizers", json::array())) nfc = read_normalizer(n, path) || nfc;
    return nfc;
  }
  unsupported("normalizer \"" + type + "\"", path + ": normalizer", "NFC, a Sequence of NFC, or null");
}

void check_byte_level(const json& j, const std::string& where) {
  if (flag(j, "add_prefix_space", false, where))
    unsupported("ByteLevel add_prefix_space=true", where, "add_prefix_space=false (Qwen2/Qwen3)");
}

// Pre-tokenizer: Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)] (Qwen2/Qwen3) or
// ByteLevel(use_regex=true) (GPT-2 pattern). Returns the split pattern.
std::string read_pre_tokenizer(const json& j, const std::string& path) {
  const std::string where = path + ": pre_tokenizer";
  const std::string type = type_of(j);
  const std::string supported = "Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)] or ByteLevel(use_regex=true)";
  if (type == "ByteLevel") {
    check_byte_level(j, where);
    if (!flag(j, "use_regex", true, where)) unsupported("ByteLevel(use_regex=false) without a Split", where, supported);
    return kGpt2Pattern;
  }
  if (type != "Sequence") unsupported("pre_tokenizer \"" + (type.empty() ? std::string("null") : type) + "\"", where, supported);
  const json& items = j.value("pretokenizers", json::array());
  if (items.size() != 2 || type_of(items[0]) != "Split" || type_of(items[1]) != "ByteLevel") {
    std::string got;
    for (const json& p : items) got += (got.empty() ? "" : ", ") + type_of(p);
    unsupported("pre_tokenizer Sequence[" + got + "]", where, supported);
  }
  const json& split = items[0];
  const json& pattern = split.value("pattern", json::object());
  if (!pattern.contains("Regex") || !pattern["Regex"].is_string())
    unsupported("Split pattern " + pattern.dump(), where, "a {\"Regex\": ...} pattern");
  const std::string behavior = split.value("behavior", "");
  if (behavior != "Isolated") unsupported("Split behavior \"" + behavior + "\"", where, "Isolated");
  if (flag(split, "invert", false, where)) unsupported("Split invert=true", where, "invert=false");
  check_byte_level(items[1], where);
  if (flag(items[1], "use_regex", true, where))
    unsupported("ByteLevel(use_regex=true) after a Split", where, "use_regex=false");
  return pattern["Regex"].get<std::string>();
}

std::vector<AddedToken> read_added_tokens(const json& j, const std::string& path) {
  std::vector<AddedToken> out;
  if (j.is_null()) return out;
  if (!j.is_array()) throw FormatError("added_tokens must be an array", path, "re-download the tokenizer files");
  for (const json& t : j) {
    const std::string where = path + ": added_tokens[" + std::to_string(out.size()) + "]";
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
        !t["content"].is_string())
      throw FormatError("an added token needs an integer id and a string content", where, "fix the entry");
    AddedToken a;
    a.id = t["id"].get<int32_t>();
    a.content = t["content"].get<std::string>();
    a.special = flag(t, "special", false, where);
    a.lstrip = flag(t, "lstrip", false, where);
    a.rstrip = flag(t, "rstrip", false, where);
    a.normalized = flag(t, "normalized", !a.special, where);
    a.single_word = flag(t, "single_word", false, where);
    if (a.single_word) unsupported("added token option single_word=true (" + a.content + ")", where, "single_word=false");
    if (a.content.empty()) throw FormatError("added token with empty content", where, "remove the entry");
    if (a.id < 0 || static_cast<size_t>(a.id) >= kMaxTokenId)
      throw FormatError("added token id " + std::to_string(a.id) + " is out of range", where, "fix the id");
    out.push_back(std::move(a));
  }
  return out;
}

// An added token as JSON: with nlohmann::ordered_json the fields come in tokenizer.json's order,
// with nlohmann::json alphabetically (tokenizer_config.json's order).
template <class Json>
Json added_token_json(const AddedToken& t, bool with_id) {
  Json j = Json::object();
  if (with_id) j["id"] = t.id;
  j["content"] = t.content;
  j["single_word"] = t.single_word;
  j["lstrip"] = t.lstrip;
  j["rstrip"] = t.rstrip;
  j["normalized"] = t.normalized;
  j["special"] = t.special;
  return j;
}

}  // namespace

struct Tokenizer::Impl {
  std::string json_path, config_path;
  // The files as read at load: save() rewrites from these, so a save works after the source
  // directory is gone (a resumed run's checkpoint rotated away).
  std::string json_text, config_text;
  bool nfc = false;
  bool ignore_merges = false;
  std::unique_ptr<detail::RegexSplitter> splitter;
  std::unique_ptr<detail::BpeModel> bpe;

  std::vector<std::string> vocab_bytes;  // raw bytes of each BPE token ("" for other ids)
  detail::VocabIndex vocab{&vocab_bytes};
  enum Kind : uint8_t { kHole, kVocab, kAdded, kSpecial };
  std::vector<std::string> id_bytes;  // what decode emits for each id
  std::vector<uint8_t> id_kind;
  std::vector<AddedToken> added;  // sorted by id
  std::unordered_map<std::string, TokenId> added_ids;
  AddedTokenMatcher raw_matcher, normalized_matcher;
  CoordVocab coord;

  void set_id(TokenId id, std::string bytes, Kind kind) {
    if (static_cast<size_t>(id) >= id_bytes.size()) {
      id_bytes.resize(static_cast<size_t>(id) + 1);
      id_kind.resize(static_cast<size_t>(id) + 1, kHole);
    }
    id_bytes[static_cast<size_t>(id)] = std::move(bytes);
    id_kind[static_cast<size_t>(id)] = kind;
  }

  void add_token(const AddedToken& t, const std::string& where) {
    const auto it = added_ids.find(t.content);
    if (it != added_ids.end()) {
      if (it->second != t.id)
        throw FormatError("added token " + t.content + " has id " + std::to_string(t.id) + " and also id " +
                              std::to_string(it->second), where, "each added token needs one id");
      return;
    }
    if (static_cast<size_t>(t.id) < id_kind.size() && id_kind[static_cast<size_t>(t.id)] >= kAdded)
      throw FormatError("id " + std::to_string(t.id) + " is used by two added tokens (" +
                            id_bytes[static_cast<size_t>(t.id)] + " and " + t.content + ")", where,
                        "each id may name one added token");
    added_ids.emplace(t.content, t.id);
    // Decoding an added token yields its content (HF's ByteLevel decoder leaves such tokens alone
    // unless every character is in the byte table; the Qwen tokens are plain ASCII either way).
    set_id(t.id, t.content, t.special ? kSpecial : kAdded);
    added.insert(std::upper_bound(added.begin(), added.end(), t,
                                  [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; }),
                 t);
  }

  void build_matchers() {
    std::vector<const AddedToken*> raw, normalized;
    for (const AddedToken& t : added) (t.normalized && nfc ? normalized : raw).push_back(&t);
    raw_matcher = AddedTokenMatcher(raw);
    normalized_matcher = AddedTokenMatcher(normalized);
  }

  std::optional<TokenId> added_id(const std::string& content) const {
    const auto it = added_ids.find(content);
    return it == added_ids.end() ? std::nullopt : std::optional<TokenId>(it->second);
  }

  // Finds the coord tokens; all or none must exist, contiguous in the CoordExp layout.
  void detect_coord_tokens(const std::string& where) {
    const auto wildcard = added_id(kCoordWildcard);
    int present = wildcard ? 1 : 0;
    for (int k = 0; k < CoordVocab::kNumBins; ++k) present += added_id(coord_token(k)) ? 1 : 0;
    if (present == 0) {
      coord = CoordVocab{};
      return;
    }
    const std::string hint = "rebuild it with `coordexp-train expand-vocab` from the base tokenizer";
    if (present != CoordVocab::kNumBins + 1)
      throw FormatError("has " + std::to_string(present) + " of the " + std::to_string(CoordVocab::kNumBins + 1) +
                            " coord tokens (<|coord_*|>, <|coord_0|>..<|coord_999|>) as added tokens",
                        where, hint);
    CoordVocab c;
    c.wildcard_id = *wildcard;
    c.first_id = *wildcard + 1;
    for (int k = 0; k < CoordVocab::kNumBins; ++k) {
      const TokenId id = *added_id(coord_token(k));
      if (id != c.first_id + k)
        throw FormatError("coord tokens are not contiguous: " + coord_token(k) + " has id " + std::to_string(id) +
                              ", expected " + std::to_string(c.first_id + k) + " (<|coord_*|> = " +
                              std::to_string(c.wildcard_id) + ", <|coord_k|> = <|coord_*|> + 1 + k)",
                          where, hint);
    }
    coord = c;
  }

  void check_utf8(std::string_view text) const {
    if (const auto bad = detail::find_invalid_utf8(text))
      throw DataError("invalid UTF-8 at byte offset " + std::to_string(*bad), "",
                      "the tokenizer accepts UTF-8 text only; re-encode the input");
    if (text.size() >= UINT32_MAX) throw DataError("text of " + std::to_string(text.size()) + " bytes is too long", "", "split it");
  }

  void encode(std::string_view text, std::vector<TokenId>& ids, std::vector<Token>* tokens) const {
    check_utf8(text);
    std::vector<AddedMatch> matches;
    raw_matcher.find(text, matches);
    uint32_t pos = 0;
    for (const AddedMatch& m : matches) {
      encode_segment(text, pos, m.begin, ids, tokens);
      ids.push_back(m.id);
      if (tokens) tokens->push_back({m.id, m.begin, m.end});
      pos = m.end;
    }
    encode_segment(text, pos, static_cast<uint32_t>(text.size()), ids, tokens);
  }

  // Text between raw added tokens: normalize, split out normalized added tokens, BPE the rest.
  void encode_segment(std::string_view text, uint32_t begin, uint32_t end, std::vector<TokenId>& ids,
                      std::vector<Token>* tokens) const {
    if (begin >= end) return;
    const std::string_view piece = text.substr(begin, end - begin);
    const NormalizedText norm = nfc ? NormalizedText::nfc(piece) : NormalizedText::identity(piece);
    const auto size = static_cast<uint32_t>(norm.text().size());
    if (normalized_matcher.empty()) {
      encode_words(norm, 0, size, begin, ids, tokens);
      return;
    }
    std::vector<AddedMatch> matches;
    normalized_matcher.find(norm.text(), matches);
    uint32_t pos = 0;
    for (const AddedMatch& m : matches) {
      encode_words(norm, pos, m.begin, begin, ids, tokens);
      ids.push_back(m.id);
      if (tokens) {
        const auto [ob, oe] = norm.to_original(m.begin, m.end);
        tokens->push_back({m.id, begin + ob, begin + oe});
      }
      pos = m.end;
    }
    encode_words(norm, pos, size, begin, ids, tokens);
  }

  // Normalized text [b, e): regex split, then BPE per word. `base` = offset of the normalized
  // piece's source in the caller's input.
  void encode_words(const NormalizedText& norm, uint32_t b, uint32_t e, uint32_t base, std::vector<TokenId>& ids,
                    std::vector<Token>* tokens) const {
    if (b >= e) return;
    const std::string_view view = norm.text();
    std::vector<ByteSpan> words;
    splitter->split(view.substr(b, e - b), b, words);
    for (const auto& [wb, we] : words) {
      const std::string_view word = view.substr(wb, we - wb);
      const size_t first = ids.size();
      const TokenId whole = ignore_merges ? vocab.find(word) : -1;
      if (whole >= 0) ids.push_back(whole);
      else bpe->encode_word(word, ids);
      if (!tokens) continue;
      uint32_t cur = wb;
      for (size_t k = first; k < ids.size(); ++k) {
        uint32_t tb = cur, te = cur + static_cast<uint32_t>(vocab_bytes[static_cast<size_t>(ids[k])].size());
        cur = te;
        // A token cut from inside a character reports the whole character.
        while (tb > 0 && detail::is_continuation(static_cast<unsigned char>(view[tb]))) --tb;
        while (te < view.size() && detail::is_continuation(static_cast<unsigned char>(view[te]))) ++te;
        const auto [ob, oe] = norm.to_original(tb, te);
        tokens->push_back({ids[k], base + ob, base + oe});
      }
      COORDEXP_CHECK(cur == we, "BPE tokens of a word do not add up to the word");
    }
  }
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

std::shared_ptr<Tokenizer> Tokenizer::from_file(const std::string& path) {
  std::shared_ptr<Tokenizer> tok(new Tokenizer());
  Impl& im = *tok->impl_;
  im.json_path = path;
  im.json_text = read_text_file(path);
  TokenizerJson parsed = parse_tokenizer_json(im.json_text, path);
  const json& j = parsed.rest;
  if (!j.is_object()) throw FormatError("top level must be a JSON object", path, "re-download the tokenizer files");

  for (const char* key : {"truncation", "padding"})
    if (j.contains(key) && !j[key].is_null())
      unsupported(std::string(key) + " settings", path + ": " + key, "null (encode never truncates or pads)");
  im.nfc = read_normalizer(j.value("normalizer", json()), path);
  im.splitter = std::make_unique<detail::RegexSplitter>(read_pre_tokenizer(j.value("pre_tokenizer", json()), path),
                                                        path + ": pre_tokenizer");
  if (type_of(j.value("decoder", json())) != "ByteLevel")
    unsupported("decoder \"" + type_of(j.value("decoder", json())) + "\"", path + ": decoder", "ByteLevel");
  const json& post = j.value("post_processor", json());
  if (type_of(post) == "ByteLevel" && flag(post, "trim_offsets", false, path + ": post_processor"))
    unsupported("post_processor ByteLevel trim_offsets=true", path + ": post_processor", "trim_offsets=false");

  const auto mit = j.find("model");
  if (mit == j.end() || !mit->is_object()) throw FormatError("no model section", path, "re-download the tokenizer files");
  const json& model = *mit;
  const std::string mwhere = path + ": model";
  const std::string mtype = type_of(model);
  if (!mtype.empty() && mtype != "BPE") unsupported("model type \"" + mtype + "\"", mwhere, "BPE");
  if (model.contains("dropout") && !model["dropout"].is_null()) unsupported("BPE dropout", mwhere, "dropout=null");
  if (flag(model, "byte_fallback", false, mwhere)) unsupported("BPE byte_fallback=true", mwhere, "byte_fallback=false");
  if (!empty_or_null_string(model, "continuing_subword_prefix"))
    unsupported("BPE continuing_subword_prefix", mwhere, "an empty prefix");
  if (!empty_or_null_string(model, "end_of_word_suffix")) unsupported("BPE end_of_word_suffix", mwhere, "an empty suffix");
  im.ignore_merges = flag(model, "ignore_merges", false, mwhere);

  // Vocabulary: byte-level strings -> raw bytes.
  const auto& table = detail::ByteLevelTable::get();
  if (!parsed.vocab_is_object) throw FormatError("model.vocab must be an object", path, "re-download the tokenizer files");
  std::string bytes;
  for (const auto& [token, value] : parsed.vocab) {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() >= static_cast<int64_t>(kMaxTokenId))
      throw FormatError("vocab entry " + token + " has a bad id " + value.dump(), mwhere + ".vocab", "ids are integers >= 0");
    if (!table.decode_into(token, bytes))
      throw FormatError("vocab token " + token + " is not in the ByteLevel alphabet", mwhere + ".vocab",
                        "only byte-level BPE vocabularies (GPT-2 byte table) are supported");
    const auto id = value.get<TokenId>();
    if (static_cast<size_t>(id) >= im.vocab_bytes.size()) im.vocab_bytes.resize(static_cast<size_t>(id) + 1);
    if (static_cast<size_t>(id) < im.id_kind.size() && im.id_kind[static_cast<size_t>(id)] != Impl::kHole)
      throw FormatError("vocab id " + std::to_string(id) + " is used twice", mwhere + ".vocab", "fix the vocabulary");
    im.vocab_bytes[static_cast<size_t>(id)] = bytes;
    im.set_id(id, bytes, Impl::kVocab);
  }
  im.vocab.reserve(parsed.vocab.size());
  for (size_t id = 0; id < im.vocab_bytes.size(); ++id) {
    if (im.id_kind[id] != Impl::kVocab) continue;
    if (!im.vocab.insert(static_cast<TokenId>(id)))
      throw FormatError("vocab token " + table.encode(im.vocab_bytes[id]) + " appears twice", mwhere + ".vocab",
                        "fix the vocabulary");
  }
  std::array<TokenId, 256> byte_ids{};
  for (int b = 0; b < 256; ++b) {
    byte_ids[static_cast<size_t>(b)] = im.vocab.find(std::string(1, static_cast<char>(b)));
    if (byte_ids[static_cast<size_t>(b)] < 0)
      throw FormatError("the vocabulary lacks the single-byte token for byte " + std::to_string(b), mwhere + ".vocab",
                        "a byte-level BPE vocabulary must hold all 256 bytes");
  }

  // Merges: "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs.
  if (!parsed.merges_is_array) throw FormatError("model.merges must be an array", path, "re-download the tokenizer files");
  detail::MergeTable merges;
  merges.reserve(parsed.merges.size());
  size_t rank = 0;
  std::string left_bytes, right_bytes;
  for (const json& m : parsed.merges) {
    std::string_view left, right;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        throw FormatError("merge #" + std::to_string(rank) + " \"" + s + "\" is not two tokens separated by one space",
                          mwhere + ".merges", "fix the merges list");
      left = std::string_view(s).substr(0, space);
      right = std::string_view(s).substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get_ref<const std::string&>();
      right = m[1].get_ref<const std::string&>();
    } else {
      throw FormatError("merge #" + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]", mwhere + ".merges",
                        "fix the merges list");
    }
    TokenId li = -1, ri = -1, mi = -1;
    if (table.decode_into(left, left_bytes) && table.decode_into(right, right_bytes)) {
      li = im.vocab.find(left_bytes);
      ri = im.vocab.find(right_bytes);
      left_bytes += right_bytes;
      mi = im.vocab.find(left_bytes);
    }
    if (li < 0 || ri < 0 || mi < 0)
      throw FormatError("merge #" + std::to_string(rank) + " (" + std::string(left) + " " + std::string(right) +
                            ") uses or makes a token that is not in the vocabulary",
                        mwhere + ".merges", "the vocab and merges must come from the same tokenizer");
    merges.add(li, ri, mi);
    ++rank;
  }
  im.bpe = std::make_unique<detail::BpeModel>(byte_ids, std::move(merges), kBpeCacheCapacity);

  for (const AddedToken& t : read_added_tokens(j.value("added_tokens", json()), path))
    im.add_token(t, path + ": added_tokens");
  im.build_matchers();
  im.detect_coord_tokens(path);
  return tok;
}

std::shared_ptr<Tokenizer> Tokenizer::from_dir(const std::string& dir) {
  const fs::path json_path = fs::path(dir) / "tokenizer.json";
  if (!fs::exists(json_path))
    throw FormatError("no tokenizer.json", dir,
                      "point the tokenizer path at a Hugging Face model or tokenizer directory (scripts/fetch-tokenizer.sh DIR fetches Qwen3's)");
  auto tok = from_file(json_path.string());
  const fs::path config_path = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(config_path)) return tok;
  Impl& im = *tok->impl_;
  im.config_path = config_path.string();
  im.config_text = read_text_file(im.config_path);
  const json c = parse_json_file(im.config_text, im.config_path);
  if (!c.is_object()) throw FormatError("top level must be a JSON object", im.config_path, "re-download the tokenizer files");
  if (flag(c, "split_special_tokens", false, im.config_path))
    unsupported("split_special_tokens=true", im.config_path, "false (special tokens are matched in text)");
  if (flag(c, "add_bos_token", false, im.config_path))
    spdlog::warn("{}: add_bos_token=true is ignored: encode never adds special tokens", im.config_path);
  if (flag(c, "clean_up_tokenization_spaces", false, im.config_path))
    spdlog::warn("{}: clean_up_tokenization_spaces=true is ignored: decode returns the exact text", im.config_path);
  // transformers adds tokens listed in added_tokens_decoder that tokenizer.json lacks; do the same,
  // and insist the two files agree where both name an id.
  const auto dit = c.find("added_tokens_decoder");
  if (dit != c.end() && dit->is_object()) {
    for (const auto& [key, value] : dit->items()) {
      const std::string where = im.config_path + ": added_tokens_decoder." + key;
      if (!value.is_object()) throw FormatError("an entry must be an object", where, "fix the entry");
      json entry = value;
      try {
        entry["id"] = std::stoi(key);
      } catch (const std::exception&) {
        throw FormatError("key is not a token id", where, "keys are decimal ids");
      }
      const auto tokens = read_added_tokens(json::array({entry}), im.config_path);
      const AddedToken& t = tokens.front();
      const auto existing = im.added_id(t.content);
      if (existing && *existing != t.id)
        throw FormatError(t.content + " has id " + key + " here but " + std::to_string(*existing) + " in tokenizer.json",
                          where, "the two files must come from the same tokenizer");
      if (!existing && static_cast<size_t>(t.id) < im.id_kind.size() && im.id_kind[static_cast<size_t>(t.id)] != Impl::kHole)
        throw FormatError("id " + key + " is " + t.content + " here but another token in tokenizer.json", where,
                          "the two files must come from the same tokenizer");
      if (!existing) im.add_token(t, where);
    }
    im.build_matchers();
    im.detect_coord_tokens(im.config_path);
  }
  return tok;
}

std::vector<TokenId> Tokenizer::encode(std::string_view text) const {
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->encode(text, ids, nullptr);
  return ids;
}

std::vector<Token> Tokenizer::encode_with_offsets(std::string_view text) const {
  std::vector<TokenId> ids;
  std::vector<Token> tokens;
  impl_->encode(text, ids, &tokens);
  return tokens;
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (const TokenId id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= impl_->id_kind.size() || impl_->id_kind[static_cast<size_t>(id)] == Impl::kHole)
      throw DataError("cannot decode token id " + std::to_string(id) + ": not in the vocabulary (" +
                          std::to_string(impl_->id_kind.size()) + " ids)", "",
                      "ids must come from this tokenizer");
    if (skip_special_tokens && impl_->id_kind[static_cast<size_t>(id)] == Impl::kSpecial) continue;
    bytes += impl_->id_bytes[static_cast<size_t>(id)];
  }
  std::string out;
  out.reserve(bytes.size());
  detail::append_utf8_lossy(out, bytes);
  return out;
}

std::string Tokenizer::token_bytes(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_bytes.size())
    throw DataError("token id " + std::to_string(id) + " is out of range", "", "ids must come from this tokenizer");
  return impl_->id_bytes[static_cast<size_t>(id)];
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  if (const auto a = impl_->added_id(key)) return a;
  if (detail::find_invalid_utf8(key)) return std::nullopt;
  const auto bytes = detail::ByteLevelTable::get().decode(key);
  const TokenId id = bytes ? impl_->vocab.find(*bytes) : -1;
  return id < 0 ? std::nullopt : std::optional<TokenId>(id);
}

size_t Tokenizer::vocab_size() const { return impl_->id_bytes.size(); }

bool Tokenizer::is_special(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->id_kind.size() &&
         impl_->id_kind[static_cast<size_t>(id)] == Impl::kSpecial;
}

const CoordVocab& Tokenizer::coord_vocab() const { return impl_->coord; }

void Tokenizer::ensure_coord_tokens() {
  Impl& im = *impl_;
  if (im.coord.valid()) return;
  const auto first = static_cast<TokenId>(vocab_size());
  const auto add = [&](TokenId id, std::string content) {
    AddedToken t;
    t.id = id;
    t.content = std::move(content);
    t.special = false;  // coord tokens are model output: decode(skip_special_tokens) keeps them
    t.normalized = false;
    im.add_token(t, "coord tokens");
  };
  add(first, kCoordWildcard);
  for (int k = 0; k < CoordVocab::kNumBins; ++k) add(first + 1 + k, coord_token(k));
  im.build_matchers();
  im.detect_coord_tokens("coord tokens");
  spdlog::info("tokenizer: added coord tokens <|coord_*|> = {}, <|coord_0|>..<|coord_999|> = {}..{}",
               im.coord.wildcard_id, im.coord.first_id, im.coord.first_id + CoordVocab::kNumBins - 1);
}

void Tokenizer::save(const std::string& dir) const {
  const Impl& im = *impl_;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw DataError("cannot create directory: " + ec.message(), dir, "check permissions");
  // Rewrite only the added_tokens array; the rest of tokenizer.json is kept byte for byte.
  const std::string& original = im.json_text;
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (const AddedToken& t : im.added) added.push_back(added_token_json<nlohmann::ordered_json>(t, true));
  // Same layout as Hugging Face's pretty-printed files (2-space indent, one field per line).
  std::string replacement = "[";
  for (size_t i = 0; i < added.size(); ++i) {
    std::string item = added[i].dump(2);
    for (size_t p = item.find('\n'); p != std::string::npos; p = item.find('\n', p + 5)) item.insert(p + 1, "    ");
    replacement += (i ? ",\n    " : "\n    ") + item;
  }
  replacement += added.empty() ? "]" : "\n  ]";
  write_text_file_atomic((fs::path(dir) / "tokenizer.json").string(),
                         detail::replace_top_level_value(original, "added_tokens", replacement, im.json_path));
  if (im.config_path.empty()) return;
  nlohmann::ordered_json config;
  try {
    config = nlohmann::ordered_json::parse(im.config_text);
  } catch (const nlohmann::ordered_json::parse_error& e) {
    throw FormatError(std::string("not valid JSON: ") + e.what(), im.config_path, "re-download the tokenizer files");
  }
  auto& decoder = config["added_tokens_decoder"];
  for (const AddedToken& t : im.added) {
    const std::string key = std::to_string(t.id);
    if (!decoder.contains(key)) decoder[key] = nlohmann::ordered_json::parse(added_token_json<json>(t, false).dump());
  }
  write_text_file_atomic((fs::path(dir) / "tokenizer_config.json").string(), config.dump(2) + "\n");
}

TokenId Tokenizer::im_start_id() const {
  if (const auto id = impl_->added_id("<|im_start|>")) return *id;
  throw FormatError("the tokenizer has no <|im_start|> token", impl_->json_path, "use a Qwen2/Qwen3 tokenizer");
}
TokenId Tokenizer::im_end_id() const {
  if (const auto id = impl_->added_id("<|im_end|>")) return *id;
  throw FormatError("the tokenizer has no <|im_end|> token", impl_->json_path, "use a Qwen2/Qwen3 tokenizer");
}
TokenId Tokenizer::endoftext_id() const {
  if (const auto id = impl_->added_id("<|endoftext|>")) return *id;
  throw FormatError("the tokenizer has no <|endoftext|> token", impl_->json_path, "use a Qwen2/Qwen3 tokenizer");
}

const std::string& Tokenizer::source_path() const { return impl_->json_path; }
bool Tokenizer::regex_uses_jit() const { return impl_->splitter->uses_jit(); }

ExpandVocabResult expand_vocab_files(const std::string& src_dir, const std::string& dst_dir) {
  auto tok = Tokenizer::from_dir(src_dir);
  ExpandVocabResult r;
  r.vocab_size_before = tok->vocab_size();
  r.added = !tok->coord_vocab().valid();
  tok->ensure_coord_tokens();
  r.vocab_size_after = tok->vocab_size();
  r.coord = tok->coord_vocab();
  tok->save(dst_dir);
  return r;
}

}  // namespace coordexp::tokenizer
