// derive-tokenizer (derive_tokenizer_files) on the real Qwen3 tokenizer: all merges reproduce the
// source's (HF golden) ids; a cut keeps 256 bytes + M merge results + added + coord tokens and its
// encodings equal a brute-force BPE over the source's first M merges; any text round-trips;
// specials, coord tokens, the chat format and tokenizer_config.json survive; bad arguments fail.
#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "coordexp/tokenizer/chat_format.h"
#include "coordexp/tokenizer/derive_vocab.h"
#include "coordexp/util/error.h"
#include "tokenizer/nfc.h"
#include "tokenizer/regex_split.h"
#include "tokenizer_test_util.h"

namespace coordexp::tokenizer::testing {
namespace {

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// The source tokenizer.json, parsed once (vocab, merges, pre-tokenizer pattern).
const nlohmann::json& source_json() {
  static const nlohmann::json j = read_json(std::filesystem::path(qwen_dir()) / "tokenizer.json");
  return j;
}

// One derived tokenizer per merge count, written once per process.
struct Derived {
  std::filesystem::path dir;
  DeriveTokenizerResult result;
  std::shared_ptr<Tokenizer> tok;
};
const Derived& derive(size_t merges) {
  static std::map<size_t, Derived> cache;
  auto it = cache.find(merges);
  if (it == cache.end()) {
    Derived d;
    d.dir = temp_dir("derive_" + std::to_string(merges));
    d.result = derive_tokenizer_files(qwen_dir(), merges, d.dir.string());
    d.tok = Tokenizer::from_dir(d.dir.string());
    it = cache.emplace(merges, std::move(d)).first;
  }
  return it->second;
}
std::shared_ptr<Tokenizer> derived(size_t merges, DeriveTokenizerResult* result = nullptr) {
  if (result) *result = derive(merges).result;
  return derive(merges).tok;
}
std::filesystem::path derived_dir(size_t merges) { return derive(merges).dir; }

// Textbook BPE, written for clarity: merge ranks from the source's first `m` merges; a word's bytes
// start as single-byte strings and the adjacent pair of lowest rank (leftmost on ties) is merged
// until no pair has a rank. Returns byte-level spellings.
class ReferenceBpe {
 public:
  explicit ReferenceBpe(size_t m) {
    const auto& merges = source_json()["model"]["merges"];
    for (size_t r = 0; r < m; ++r) {
      const auto& mg = merges[r];
      const std::string l = mg.is_string() ? mg.get<std::string>().substr(0, mg.get<std::string>().find(' ')) : mg[0].get<std::string>();
      const std::string rt = mg.is_string() ? mg.get<std::string>().substr(mg.get<std::string>().find(' ') + 1) : mg[1].get<std::string>();
      ranks_.emplace(l + '\x01' + rt, r);  // later duplicates keep the first rank: a prefix cannot differ here
    }
  }
  std::vector<std::string> word(std::string_view bytes) const {
    const auto& table = detail::ByteLevelTable::get();
    std::vector<std::string> parts;
    for (char c : bytes) parts.push_back(table.encode(std::string(1, c)));
    while (parts.size() > 1) {
      size_t best = parts.size(), best_rank = SIZE_MAX;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        const auto it = ranks_.find(parts[i] + '\x01' + parts[i + 1]);
        if (it != ranks_.end() && it->second < best_rank) best_rank = it->second, best = i;
      }
      if (best == parts.size()) break;
      parts[best] += parts[best + 1];
      parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
    return parts;
  }

 private:
  std::unordered_map<std::string, size_t> ranks_;
};

// True when the source tokenizer splits an added token (<|im_end|>, <think>, ...) out of `text`:
// those never reach BPE and are tested separately.
bool has_added_token(const Tokenizer& source, const std::string& text) {
  for (const TokenId id : source.encode(text))
    if (id >= 151643) return true;
  return false;
}

// Random UTF-8: ASCII, Latin, combining marks, CJK, emoji, control characters and lookalikes of
// special tokens, so every byte-fallback path is exercised.
std::vector<std::string> random_texts(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7e}, {0x00, 0x1f}, {0xa0, 0x17f}, {0x300, 0x36f}, {0x4e00, 0x4fff}, {0x1f300, 0x1f6ff}, {0xac00, 0xacff}, {0xfffd, 0xfffd}};
  const std::vector<std::string> snippets = {"<|coord_1000|>", "<|coord_-1|>", "<|im_", "|>", "<|notatoken|>", "\\u0000",
                                             "\r\n", "   ", "\t\t", "0123456789", "{\"bbox_2d\": [1, 2]}"};
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    std::string s;
    const int len = static_cast<int>(rng() % 40);
    for (int k = 0; k < len; ++k) {
      if (rng() % 8 == 0) {
        s += snippets[rng() % snippets.size()];
        continue;
      }
      const auto& [lo, hi] = ranges[rng() % ranges.size()];
      const char32_t cp = lo + static_cast<char32_t>(rng() % (hi - lo + 1));
      if (cp < 0x80) s += static_cast<char>(cp);
      else if (cp < 0x800) s += {static_cast<char>(0xc0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3f))};
      else if (cp < 0x10000)
        s += {static_cast<char>(0xe0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3f)), static_cast<char>(0x80 | (cp & 0x3f))};
      else
        s += {static_cast<char>(0xf0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3f)),
              static_cast<char>(0x80 | ((cp >> 6) & 0x3f)), static_cast<char>(0x80 | (cp & 0x3f))};
    }
    out.push_back(s);
  }
  return out;
}

TEST(TokenizerDerive, AllMergesGiveTheSourceIds) {
  REQUIRE_QWEN(source);
  const size_t all = source_json()["model"]["merges"].size();
  DeriveTokenizerResult r;
  const auto tok = derived(all, &r);
  EXPECT_EQ(r.kept_merges, all);
  EXPECT_EQ(r.skipped_merges, 0u);
  EXPECT_EQ(r.kept_vocab, 151643u);
  EXPECT_EQ(tok->vocab_size(), source->vocab_size());
  EXPECT_EQ(tok->coord_vocab().wildcard_id, 151669);
  for (const auto& c : golden_cases()) EXPECT_EQ(tok->encode(c.text), c.ids) << c.category << ": " << c.text;
  for (const auto& s : random_texts(200, 7)) EXPECT_EQ(tok->encode(s), source->encode(s)) << s;
}

TEST(TokenizerDerive, CutKeepsBytesMergesAddedAndCoordTokens) {
  REQUIRE_QWEN(source);
  DeriveTokenizerResult r;
  const auto tok = derived(4000, &r);
  EXPECT_EQ(r.source_merges, source_json()["model"]["merges"].size());
  EXPECT_EQ(r.kept_merges + r.skipped_merges, 4000u);
  EXPECT_EQ(r.kept_vocab, 256 + r.kept_merges);  // Qwen's merges make distinct tokens
  EXPECT_EQ(r.added_tokens, 26u);
  EXPECT_EQ(tok->vocab_size(), r.kept_vocab + 26 + 1001);
  EXPECT_EQ(r.vocab_size, tok->vocab_size());
  // Written file: dense ids 0..n-1, every merge's parts and result in the vocab.
  const auto j = read_json(derived_dir(4000) / "tokenizer.json");
  const auto& vocab = j["model"]["vocab"];
  ASSERT_EQ(vocab.size(), r.kept_vocab);
  std::vector<bool> seen(vocab.size(), false);
  for (const auto& [token, id] : vocab.items()) {
    ASSERT_LT(id.get<size_t>(), seen.size());
    seen[id.get<size_t>()] = true;
  }
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
  ASSERT_EQ(j["model"]["merges"].size(), r.kept_merges);
  for (const auto& m : j["model"]["merges"]) {
    ASSERT_TRUE(vocab.contains(m[0].get<std::string>()) && vocab.contains(m[1].get<std::string>())) << m.dump();
    ASSERT_TRUE(vocab.contains(m[0].get<std::string>() + m[1].get<std::string>())) << m.dump();
  }
  for (int b = 0; b < 256; ++b)
    EXPECT_TRUE(tok->token_to_id(detail::ByteLevelTable::get().encode(std::string(1, static_cast<char>(b)))));
}

TEST(TokenizerDerive, SmallCutsEncodeAsTheReferenceBpe) {
  REQUIRE_QWEN(source);
  const std::string pattern = source_json()["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"].get<std::string>();
  const detail::RegexSplitter splitter(pattern, "test");
  std::vector<std::string> corpus;
  for (const auto& c : golden_cases()) corpus.push_back(c.text);
  for (auto& s : random_texts(150, 11)) corpus.push_back(detail::nfc_string(s));
  for (const size_t m : {0u, 1u, 37u, 500u, 4000u}) {
    const auto tok = derived(m);
    const ReferenceBpe ref(m);
    size_t checked = 0;
    for (const std::string& text : corpus) {
      if (has_added_token(*source, text)) continue;
      const std::string nfc = detail::nfc_string(text);
      std::vector<detail::ByteSpan> pieces;
      splitter.split(nfc, 0, pieces);
      std::vector<TokenId> want;
      for (const auto& [b, e] : pieces)
        for (const std::string& t : ref.word(std::string_view(nfc).substr(b, e - b))) {
          const auto id = tok->token_to_id(t);
          ASSERT_TRUE(id) << "M=" << m << ": reference token " << t << " is not in the derived vocab";
          want.push_back(*id);
        }
      ASSERT_EQ(tok->encode(text), want) << "M=" << m << ": " << text;
      ++checked;
    }
    EXPECT_GT(checked, 300u);
  }
}

TEST(TokenizerDerive, ReferenceBpeAgreesWithTheSourceOnAllMerges) {
  // Guards the reference itself: with every merge it must give HF's golden ids.
  REQUIRE_QWEN(source);
  const std::string pattern = source_json()["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"].get<std::string>();
  const detail::RegexSplitter splitter(pattern, "test");
  const ReferenceBpe ref(source_json()["model"]["merges"].size());
  for (const auto& c : golden_cases()) {
    if (has_added_token(*source, c.text)) continue;
    const std::string nfc = detail::nfc_string(c.text);
    std::vector<detail::ByteSpan> pieces;
    splitter.split(nfc, 0, pieces);
    std::vector<TokenId> got;
    for (const auto& [b, e] : pieces)
      for (const std::string& t : ref.word(std::string_view(nfc).substr(b, e - b))) got.push_back(*source->token_to_id(t));
    EXPECT_EQ(got, c.ids) << c.text;
  }
}

TEST(TokenizerDerive, AnyTextRoundTrips) {
  REQUIRE_QWEN(source);
  std::vector<std::string> texts = random_texts(400, 3);
  for (const auto& c : golden_cases()) texts.push_back(c.text);
  texts.push_back(std::string("nul \0 inside", 12));
  texts.push_back("\xef\xbf\xbd replacement char and \xc3\xa9\xcc\x81 stacked accents");
  for (const size_t m : {0u, 37u, 4000u}) {
    const auto tok = derived(m);
    for (const std::string& s : texts) {
      const auto ids = tok->encode(s);
      for (TokenId id : ids) ASSERT_LT(static_cast<size_t>(id), tok->vocab_size());
      // NFC is part of the pipeline: the round trip gives NFC(s), like the source tokenizer.
      EXPECT_EQ(tok->decode(ids), detail::nfc_string(s)) << "M=" << m;
      EXPECT_EQ(tok->decode(ids), source->decode(source->encode(s))) << "M=" << m;
    }
    EXPECT_THROW(tok->encode("bad \xff utf-8"), DataError);
    EXPECT_THROW(tok->encode("cut \xe4\xb8"), DataError);
  }
}

TEST(TokenizerDerive, SpecialAndCoordTokensStaySingleIds) {
  REQUIRE_QWEN(source);
  const auto tok = derived(500);
  const auto j = read_json(std::filesystem::path(qwen_dir()) / "tokenizer.json");
  for (const auto& t : j["added_tokens"]) {
    const std::string content = t["content"].get<std::string>();
    const auto ids = tok->encode(content);
    ASSERT_EQ(ids.size(), 1u) << content;
    EXPECT_EQ(tok->decode(ids), content);
    EXPECT_EQ(tok->is_special(ids[0]), t["special"].get<bool>()) << content;
    EXPECT_EQ(tok->token_to_id(content), ids[0]);
  }
  const CoordVocab& cv = tok->coord_vocab();
  ASSERT_TRUE(cv.valid());
  EXPECT_EQ(cv.first_id, cv.wildcard_id + 1);
  EXPECT_EQ(static_cast<size_t>(cv.first_id + CoordVocab::kNumBins), tok->vocab_size());
  for (int k : {0, 7, 500, 999}) {
    const std::string text = "<|coord_" + std::to_string(k) + "|>";
    EXPECT_EQ(tok->encode(text), std::vector<TokenId>{cv.coord_id(k)});
    EXPECT_EQ(tok->decode({cv.coord_id(k)}, /*skip_special_tokens=*/true), text);
  }
  EXPECT_EQ(tok->encode("<|coord_*|>"), std::vector<TokenId>{cv.wildcard_id});
  EXPECT_FALSE(tok->is_special(cv.first_id));
  EXPECT_EQ(tok->decode(tok->encode("[<|coord_3|>, <|coord_999|>]")), "[<|coord_3|>, <|coord_999|>]");
}

TEST(TokenizerDerive, ChatFormatAndConfigSurvive) {
  REQUIRE_QWEN(source);
  const auto tok = derived(500);
  const ChatPrompt prompt = make_image_prompt({4}, "Detect every object in the image.", std::string("Be exact."));
  const ChatSequence got = build_chat_prompt(*tok, prompt);
  const ChatSequence want = build_chat_prompt(*source, prompt);
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(tok->decode(got.ids), got.text);
  EXPECT_EQ(std::count(got.ids.begin(), got.ids.end(), *tok->token_to_id("<|image_pad|>")), 4);
  EXPECT_EQ(got.ids.front(), tok->im_start_id());
  const ChatSequence train = build_chat_training_sequence(*tok, prompt, "[{\"desc\": \"red circle\"}]");
  EXPECT_EQ(train.ids.back(), tok->im_end_id());
  EXPECT_EQ(tok->decode(std::vector<TokenId>(train.ids.begin() + static_cast<std::ptrdiff_t>(train.answer_begin), train.ids.end())),
            "[{\"desc\": \"red circle\"}]<|im_end|>");

  const auto src_config = read_json(std::filesystem::path(qwen_dir()) / "tokenizer_config.json");
  const auto config = read_json(derived_dir(500) / "tokenizer_config.json");
  EXPECT_EQ(config["chat_template"], src_config["chat_template"]);
  EXPECT_EQ(config["eos_token"], src_config["eos_token"]);
  size_t entries = 0;
  for (const auto& [key, value] : config["added_tokens_decoder"].items()) {
    EXPECT_EQ(tok->token_to_id(value["content"].get<std::string>()), std::stoi(key)) << key;
    ++entries;
  }
  EXPECT_EQ(entries, 26u + 1001u);
}

TEST(TokenizerDerive, RejectsBadArguments) {
  REQUIRE_QWEN(source);
  const size_t all = source_json()["model"]["merges"].size();
  try {
    derive_tokenizer_files(qwen_dir(), all + 1, temp_dir("derive_bad").string());
    FAIL() << "more merges than the source has must be rejected";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("but the source has " + std::to_string(all)), std::string::npos) << e.what();
  }
  EXPECT_THROW(derive_tokenizer_files(qwen_dir(), 10, qwen_dir()), ConfigError);
  EXPECT_THROW(derive_tokenizer_files(temp_dir("derive_empty").string(), 10, temp_dir("derive_out").string()), FormatError);
}

}  // namespace
}  // namespace coordexp::tokenizer::testing
