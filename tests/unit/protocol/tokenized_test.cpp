// Rendering, id parsing and Channel-B y_in with the real Qwen3 tokenizer. Expected ids come from an
// independent encoder (tests/data/protocol/reference_ids.json, made by make_reference_ids.sh with
// the JS tokenizer). Covers the seed's black cat / yellow dog example, the BPE-fused tokens at the
// splice (`]},`, `"},`, ` [{"`, ` []`), desc-boundary straddling, truncation at every token, id-only
// drop reasons, raw vs canonical prefixes and random round trips.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "coordexp/protocol/channel_b.h"
#include "coordexp/protocol/parse.h"
#include "coordexp/protocol/render.h"
#include "qwen_tokenizer.h"
#include "test_objects.h"

namespace {

using namespace coordexp::protocol;
using namespace coordexp::protocol::testing;
using coordexp::tokenizer::TokenId;
using Ids = std::vector<TokenId>;

constexpr TokenId kImEnd = 151645;

const std::map<std::string, Ids>& reference_ids() {
  static const std::map<std::string, Ids> refs = [] {
    std::ifstream in(std::string(COORDEXP_TEST_DATA_DIR) + "/protocol/reference_ids.json");
    if (!in) throw std::runtime_error("tests/data/protocol/reference_ids.json missing");
    std::map<std::string, Ids> m;
    for (const auto& c : nlohmann::json::parse(in)) m[c["name"]] = c["ids"].get<Ids>();
    return m;
  }();
  return refs;
}

Ids ref(const std::string& name, bool with_eos) {
  Ids ids = reference_ids().at(name);
  if (with_eos && (ids.empty() || ids.back() != kImEnd)) ids.push_back(kImEnd);
  if (!with_eos && !ids.empty() && ids.back() == kImEnd) ids.pop_back();
  return ids;
}

Ids prefix(const Ids& ids, size_t n) { return Ids(ids.begin(), ids.begin() + n); }

void expect_range(TokenRange r, int32_t b, int32_t e) {
  EXPECT_EQ(r.begin, b);
  EXPECT_EQ(r.end, e);
}

// Token types every answer must satisfy: coord exactly on coord ids, eos exactly last.
void expect_types_consistent(const Ids& ids, const std::vector<TokenType>& types) {
  const auto& vocab = qwen_tokenizer().coord_vocab();
  ASSERT_EQ(ids.size(), types.size());
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), kImEnd);
  EXPECT_EQ(types.back(), TokenType::kEos);
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    ASSERT_EQ(vocab.is_coord(ids[i]), types[i] == TokenType::kCoord) << i;
    ASSERT_NE(types[i], TokenType::kEos);
  }
}

TEST(QwenCoordVocab, CoordIdsFollowTheVocabulary) {
  const auto& vocab = qwen_tokenizer().coord_vocab();
  EXPECT_EQ(vocab.wildcard_id, 151669);
  EXPECT_EQ(vocab.first_id, 151670);
  EXPECT_EQ(qwen_tokenizer().im_end_id(), kImEnd);
}

TEST(SeedExample, RenderedTextIdsTypesSpansAndCoordPositions) {
  const auto& tok = qwen_tokenizer();
  const TokenizedAnswer a = render_answer({black_cat_gt(), yellow_dog_gt()}, tok, FieldOrder::kDescFirst);
  EXPECT_EQ(a.text,
            R"({"objects": [{"desc": "black cat", "bbox_2d": [<|coord_110|>, <|coord_310|>, <|coord_410|>, <|coord_705|>]}, )"
            R"({"desc": "yellow dog", "bbox_2d": [<|coord_520|>, <|coord_285|>, <|coord_890|>, <|coord_660|>]}]})");
  // {"  objects  ":  ` [{"`  desc  ":  ` "`  black  ` cat`  ",  ` "`  bbox _ 2 d  ":  ` [`  c110 , ` ` ...
  const Ids expected = {4913,  19210, 788, 61753, 8614, 788, 330, 11453, 8251, 497, 330, 58456, 62, 17,
                        67,    788,   508, 151780, 11,  220, 151980, 11, 220, 152080, 11, 220, 152375,
                        66125, 5212,  8614, 788,  330,  27869, 5562, 497, 330, 58456, 62, 17, 67, 788,
                        508,   152190, 11, 220, 151955, 11, 220, 152560, 11, 220, 152330, 13989, 13989,
                        kImEnd};
  EXPECT_EQ(a.ids, expected);
  EXPECT_EQ(a.ids, ref("gt_answer", true));  // the independent JS encoder agrees
  std::vector<TokenType> types(expected.size(), TokenType::kStruct);
  for (int i : {7, 8, 32, 33}) types[i] = TokenType::kDesc;
  for (int i : {17, 20, 23, 26, 42, 45, 48, 51}) types[i] = TokenType::kCoord;
  types[54] = TokenType::kEos;
  EXPECT_EQ(a.layout.types, types);
  ASSERT_EQ(a.layout.objects.size(), 2u);
  expect_range(a.layout.objects[0].tokens, 3, 28);  // ` [{"` .. `]},`: fused tokens belong to the object
  expect_range(a.layout.objects[0].desc, 7, 9);
  EXPECT_EQ(a.layout.objects[0].coord_positions, (std::vector<int32_t>{17, 20, 23, 26}));
  expect_range(a.layout.objects[1].tokens, 28, 53);
  expect_range(a.layout.objects[1].desc, 32, 34);
  EXPECT_EQ(a.layout.objects[1].coord_positions, (std::vector<int32_t>{42, 45, 48, 51}));
  EXPECT_EQ(a.layout.array_close, 53);
  EXPECT_EQ(a.layout.object_close, 53);
  EXPECT_EQ(a.layout.eos, 54);
  EXPECT_EQ(coord_logit_position(100 + a.layout.objects[0].coord_positions[0]), 116);

  // Parsing the ids gives back the objects with the same spans.
  const ParseResult p = parse_ids(a.ids, tok);
  EXPECT_EQ(p.status, RolloutStatus::kComplete);
  EXPECT_TRUE(p.ended_with_eos);
  ASSERT_EQ(p.entries.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(p.entries[i].valid());
    expect_range(p.entries[i].span.tokens, a.layout.objects[i].tokens.begin, a.layout.objects[i].tokens.end);
    expect_range(p.entries[i].span.desc, a.layout.objects[i].desc.begin, a.layout.objects[i].desc.end);
    EXPECT_EQ(p.entries[i].span.coord_positions, a.layout.objects[i].coord_positions);
  }
  EXPECT_EQ(p.valid_objects(), (std::vector<Object>{black_cat_gt(), yellow_dog_gt()}));
}

TEST(SeedExample, ChannelBYInForMatchedCatAndMissedDog) {
  const auto& tok = qwen_tokenizer();
  const Ids rollout = ref("rollout_cat_only", true);  // ... <|coord_700|> `]}` `]}` <|im_end|>
  const ParseResult p = parse_ids(rollout, tok);
  ASSERT_EQ(p.status, RolloutStatus::kComplete);
  ASSERT_EQ(p.valid_objects(), (std::vector<Object>{black_cat_rollout()}));
  for (PrefixMode mode : {PrefixMode::kRaw, PrefixMode::kCanonical}) {
    const YIn y = build_y_in(p, {yellow_dog_gt()}, tok, mode, FieldOrder::kDescFirst);
    EXPECT_EQ(y.text,
              R"({"objects": [{"desc": "black cat", "bbox_2d": [<|coord_120|>, <|coord_300|>, <|coord_420|>, <|coord_700|>]}, )"
              R"({"desc": "yellow dog", "bbox_2d": [<|coord_520|>, <|coord_285|>, <|coord_890|>, <|coord_660|>]}]})");
    EXPECT_EQ(y.ids, ref("y_in_cat_matched_dog_fn", true));
    EXPECT_EQ(y.num_rollout_ids_kept, mode == PrefixMode::kRaw ? 27 : 0);
    EXPECT_FALSE(y.invalid_rollout);
    std::vector<TokenType> types(y.ids.size(), TokenType::kStruct);
    for (int i : {7, 8, 32, 33}) types[i] = TokenType::kDesc;
    for (int i : {17, 20, 23, 26, 42, 45, 48, 51}) types[i] = TokenType::kCoord;
    types[54] = TokenType::kEos;
    EXPECT_EQ(y.layout.types, types);
    ASSERT_EQ(y.layout.objects.size(), 2u);
    EXPECT_EQ(y.origins[0].source, ObjectSource::kRolloutPrefix);
    EXPECT_EQ(y.origins[0].index, 0);
    EXPECT_EQ(y.layout.objects[0].subset, ObjectSubset::kUnassigned);  // caller marks it kMatched
    expect_range(y.layout.objects[0].tokens, 3, 28);
    expect_range(y.layout.objects[0].desc, 7, 9);
    EXPECT_EQ(y.layout.objects[0].coord_positions, (std::vector<int32_t>{17, 20, 23, 26}));
    EXPECT_EQ(y.origins[1].source, ObjectSource::kInjectedFn);
    EXPECT_EQ(y.layout.objects[1].subset, ObjectSubset::kFn);
    expect_range(y.layout.objects[1].tokens, 28, 53);
    expect_range(y.layout.objects[1].desc, 32, 34);
    EXPECT_EQ(y.layout.objects[1].coord_positions, (std::vector<int32_t>{42, 45, 48, 51}));
    EXPECT_EQ(y.layout.array_close, 53);
    EXPECT_EQ(y.layout.object_close, 53);
    EXPECT_EQ(y.layout.eos, 54);
  }
  // The seed's rollout matched both: nothing to inject, y_in is the rollout itself.
  const Ids seed = ref("seed_rollout", true);
  const YIn same = build_y_in(parse_ids(seed, tok), {}, tok, PrefixMode::kRaw, FieldOrder::kDescFirst);
  EXPECT_EQ(same.ids, seed);
  EXPECT_EQ(same.num_rollout_ids_kept, 52);
}

// The cut falls inside a fused token; y_in must be what the tokenizer gives for the spliced text.
TEST(ChannelBSplice, FusedTokensAtTheCut) {
  const auto& tok = qwen_tokenizer();
  struct Case {
    std::string name;
    Ids rollout;
    std::vector<Object> fn;
    FieldOrder order;
    std::string fused;      // the rollout token the cut falls in
    int32_t kept;           // rollout ids kept verbatim
    std::string expect_ref; // reference ids of the whole y_in
  };
  const Ids seed = ref("seed_rollout", false);
  const Ids geo = ref("geometry_first", false);
  const Ids gt = ref("gt_answer", false);
  const std::vector<Case> cases = {
      // Truncated inside object 2: cut after object 1's `}` inside `]},`.
      {"]},", prefix(seed, 35), {yellow_dog_gt()}, FieldOrder::kDescFirst, "]},", 27, "y_in_cat_matched_dog_fn"},
      // Geometry-first: object 1 ends with `"},`.
      {"\"},", prefix(geo, 33), {yellow_dog_gt()}, FieldOrder::kGeometryFirst, "\"},", 27, "geometry_first"},
      // Truncated inside object 1: cut right after `[` inside ` [{"`.
      {" [{\"", prefix(gt, 10), {black_cat_gt(), yellow_dog_gt()}, FieldOrder::kDescFirst, " [{\"", 3, "gt_answer"},
      // `{"objects": []}`: cut after `[` inside ` []`.
      {" []", ref("empty_answer", true), {black_cat_gt(), yellow_dog_gt()}, FieldOrder::kDescFirst, " []", 3, "gt_answer"},
      {" [] no FN", ref("empty_answer", true), {}, FieldOrder::kDescFirst, " []", 3, "empty_answer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const ParseResult p = parse_ids(c.rollout, tok);
    ASSERT_TRUE(p.has_prefix);
    const TokenId fused_id = c.rollout[c.kept];
    EXPECT_EQ(tok.token_bytes(fused_id), c.fused);
    // The cut is strictly inside the fused token.
    EXPECT_GT(p.append_cut, p.token_begin[c.kept]);
    EXPECT_LT(p.append_cut, p.token_begin[c.kept + 1]);
    const YIn y = build_y_in(p, c.fn, tok, PrefixMode::kRaw, c.order);
    EXPECT_EQ(y.num_rollout_ids_kept, c.kept);
    EXPECT_EQ(y.ids, ref(c.expect_ref, true));
    EXPECT_EQ(Ids(y.ids.begin(), y.ids.begin() + c.kept), prefix(c.rollout, c.kept));
    // From the splice on: exactly the tokenizer's ids for the retained text + appended text.
    const std::string spliced = y.text.substr(p.token_begin[c.kept]);
    EXPECT_EQ(Ids(y.ids.begin() + c.kept, y.ids.end() - 1), tok.encode(spliced));
    const ParseResult back = parse_ids(y.ids, tok);
    EXPECT_EQ(back.status, RolloutStatus::kComplete);
    EXPECT_EQ(back.num_valid(), y.layout.objects.size());
    expect_types_consistent(y.ids, y.layout.types);
  }
}

TEST(DescBoundary, TokenStraddlingTheQuoteIsDesc) {
  const auto& tok = qwen_tokenizer();
  const Object paren = make_box("(cat).", {1, 2, 3, 4});
  const Object dogs = make_box("dog's", {5, 6, 7, 8});
  const TokenizedAnswer a = render_answer({paren, dogs}, tok, FieldOrder::kDescFirst);
  ASSERT_EQ(a.ids, ref("desc_straddle", true));
  // BPE fuses the opening quote with the desc's "(": ` "(` (11993) straddles the boundary.
  EXPECT_EQ(tok.token_bytes(a.ids[6]), " \"(");
  EXPECT_EQ(a.layout.types[6], TokenType::kDesc);
  expect_range(a.layout.objects[0].desc, 6, 9);  // ` "(`, `cat`, `).`
  EXPECT_EQ(a.layout.types[9], TokenType::kStruct);  // `",`
  const ParseResult p = parse_ids(a.ids, tok);
  ASSERT_EQ(p.valid_objects(), (std::vector<Object>{paren, dogs}));
  expect_range(p.entries[0].span.desc, 6, 9);
}

TEST(IdParsing, DropsThatOnlyIdsCanSee) {
  const auto& tok = qwen_tokenizer();
  const auto& vocab = tok.coord_vocab();
  auto enc = [&](const std::string& s) { return tok.encode(s); };
  auto cat = [](std::initializer_list<Ids> parts) {
    Ids out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  const Ids head = enc(R"({"objects": [{"desc": "a", "bbox_2d": [)");
  const Ids sep = enc(", ");
  const Ids c2 = {vocab.coord_id(2)}, c3 = {vocab.coord_id(3)}, c4 = {vocab.coord_id(4)};
  const Ids close = enc("]}]}");
  // A coord literal spelled with ordinary text tokens.
  Ids spelled;
  for (const char* piece : {"<", "|", "coord", "_", "1", "|", ">"}) {
    const Ids part = enc(piece);  // encoded alone, so never the added token
    spelled.insert(spelled.end(), part.begin(), part.end());
  }
  ParseResult p = parse_ids(cat({head, spelled, sep, c2, sep, c3, sep, c4, close}), tok);
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].reason, DropReason::kNonCoordValue);
  EXPECT_NE(p.entries[0].detail.find("text tokens"), std::string::npos);
  // The same text parsed as text is fine.
  EXPECT_EQ(parse_text(p.text).num_valid(), 1u);
  // Special tokens inside a desc.
  const Ids desc_head = enc(R"({"objects": [{"desc": "a)");
  const Ids desc_tail = enc(R"(", "bbox_2d": [)");
  for (TokenId special : {vocab.coord_id(7), *tok.token_to_id("<|vision_start|>")}) {
    p = parse_ids(cat({desc_head, {special}, desc_tail, {vocab.coord_id(1)}, sep, c2, sep, c3, sep, c4, close}), tok);
    ASSERT_EQ(p.entries.size(), 1u);
    EXPECT_EQ(p.entries[0].reason, DropReason::kSpecialTokenInDesc);
  }
  // Generation stops at the first EOS; ids after it are ignored.
  const Ids ok = cat({head, {vocab.coord_id(1)}, sep, c2, sep, c3, sep, c4, close});
  p = parse_ids(cat({ok, {kImEnd}, enc("garbage")}), tok);
  EXPECT_EQ(p.status, RolloutStatus::kComplete);
  EXPECT_EQ(p.ids.size(), ok.size());
  p = parse_ids(cat({ok, {tok.endoftext_id()}}), tok);
  EXPECT_TRUE(p.ended_with_eos);
}

// Id mode: a rollout's byte tokens (single bytes of the byte-level BPE) can spell invalid UTF-8.
// valid, invalid-UTF-8, valid: 2 valid + 1 dropped complete entry; the raw y_in keeps the dropped
// entry in its prefix (subset invalid) and parses back complete.
TEST(IdParsing, InvalidUtf8EntryIsDroppedAloneAndScanningContinues) {
  const auto& tok = qwen_tokenizer();
  const auto& vocab = tok.coord_vocab();
  auto enc = [&](const std::string& s) { return tok.encode(s); };
  auto byte_token = [&](unsigned char b) {
    for (TokenId id = 0; id < static_cast<TokenId>(tok.vocab_size()); ++id)
      if (!tok.is_special(id) && tok.token_bytes(id) == std::string(1, static_cast<char>(b))) return id;
    throw std::runtime_error("no byte token for " + std::to_string(b));
  };
  auto entry = [&](const std::string& desc_before, const Ids& raw, int first_bin) {
    Ids out = enc("{\"desc\": \"" + desc_before);
    out.insert(out.end(), raw.begin(), raw.end());
    for (TokenId id : enc("\", \"bbox_2d\": [")) out.push_back(id);
    for (int k = 0; k < 4; ++k) {
      if (k)
        for (TokenId id : enc(", ")) out.push_back(id);
      out.push_back(vocab.coord_id(first_bin + k));
    }
    for (TokenId id : enc("]}")) out.push_back(id);
    return out;
  };
  struct Case {
    std::string name;
    Ids raw;     // byte tokens spliced into the middle entry's desc
    bool valid;  // the bytes form valid UTF-8 (control)
  };
  const std::vector<Case> cases = {
      {"lone 0xff", {byte_token(0xFF)}, false},
      {"lone continuation 0x80", {byte_token(0x80)}, false},
      {"first two bytes of a 3-byte character", {byte_token(0xE4), byte_token(0xB8)}, false},
      {"surrogate", {byte_token(0xED), byte_token(0xA0), byte_token(0x80)}, false},
      {"a whole character from byte tokens", {byte_token(0xE4), byte_token(0xB8), byte_token(0xAD)}, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Ids ids = enc("{\"objects\": [");
    const Ids first = entry("cup", {}, 1), middle = entry("x", c.raw, 10), last = entry("dog", {}, 20);
    const Ids sep = enc(", ");
    for (const Ids* part : {&first, &sep, &middle, &sep, &last}) ids.insert(ids.end(), part->begin(), part->end());
    for (TokenId id : enc("]}")) ids.push_back(id);
    ids.push_back(kImEnd);
    const ParseResult p = parse_ids(ids, tok);
    EXPECT_EQ(p.status, RolloutStatus::kComplete) << p.error;
    ASSERT_EQ(p.entries.size(), 3u);
    EXPECT_EQ(p.num_complete, 3u);
    EXPECT_EQ(p.entries[0].object, make_box("cup", {1, 2, 3, 4}));
    EXPECT_EQ(p.entries[2].object, make_box("dog", {20, 21, 22, 23}));
    EXPECT_TRUE(p.entries[0].valid());
    EXPECT_TRUE(p.entries[2].valid());
    EXPECT_EQ(p.entries[1].valid(), c.valid) << p.entries[1].detail;
    if (!c.valid) {
      EXPECT_EQ(p.entries[1].reason, DropReason::kInvalidUtf8);
      EXPECT_TRUE(p.entries[1].complete);
    }
    // The middle entry's token span covers its tokens exactly (sep tokens are BPE-separate here).
    const int32_t middle_begin = static_cast<int32_t>(enc("{\"objects\": [").size() + first.size() + sep.size());
    EXPECT_EQ(p.entries[1].span.tokens.begin, middle_begin);
    EXPECT_EQ(p.entries[1].span.tokens.end, middle_begin + static_cast<int32_t>(middle.size()));
    EXPECT_EQ(p.entries[1].span.coord_positions.size(), 4u);
    EXPECT_EQ(p.append_cut, p.text.size() - 2);

    // Channel-B: the invalid entry stays in the raw prefix (masked like FP); the FN comes after.
    const YIn raw = build_y_in(p, {yellow_dog_gt()}, tok, PrefixMode::kRaw, FieldOrder::kDescFirst);
    ASSERT_EQ(raw.layout.objects.size(), 4u);
    EXPECT_EQ(raw.layout.objects[1].subset, c.valid ? ObjectSubset::kUnassigned : ObjectSubset::kInvalid);
    EXPECT_EQ(raw.layout.objects[3].subset, ObjectSubset::kFn);
    expect_types_consistent(raw.ids, raw.layout.types);
    const ParseResult back = parse_ids(raw.ids, tok);
    EXPECT_EQ(back.status, RolloutStatus::kComplete) << back.error;
    ASSERT_EQ(back.entries.size(), 4u);
    EXPECT_EQ(back.num_valid(), c.valid ? 4u : 3u);
    EXPECT_EQ(back.entries[3].object, yellow_dog_gt());
    const YIn canon = build_y_in(p, {yellow_dog_gt()}, tok, PrefixMode::kCanonical, FieldOrder::kDescFirst);
    EXPECT_EQ(canon.layout.objects.size(), c.valid ? 4u : 3u);
  }
}

// From fuzz_channel_b (crash-11c32d5d: an over-strict fuzz property, kept as a test of the rule):
// a coord token inside the desc of a dropped entry keeps type coord (types of coord ids are decided
// by id), is not one of the entry's coord positions, and the entry stays in the raw prefix as
// invalid; with invalid UTF-8 in the same desc the reason is invalid_utf8.
TEST(ChannelB, CoordTokenInsideADroppedDescKeepsTypeCoord) {
  const auto& tok = qwen_tokenizer();
  const auto& vocab = tok.coord_vocab();
  auto enc = [&](const std::string& s) { return tok.encode(s); };
  TokenId ff = -1;
  for (TokenId id = 0; id < static_cast<TokenId>(tok.vocab_size()) && ff < 0; ++id)
    if (!tok.is_special(id) && tok.token_bytes(id) == "\xff") ff = id;
  ASSERT_GE(ff, 0);
  for (const bool bad_utf8 : {false, true}) {
    SCOPED_TRACE(bad_utf8 ? "with 0xff" : "valid UTF-8");
    Ids ids = enc("{\"objects\": [{\"desc\": \"a");
    const auto desc_coord = static_cast<int32_t>(ids.size());
    ids.push_back(vocab.coord_id(999));
    if (bad_utf8) ids.push_back(ff);
    for (TokenId id : enc("b\", \"bbox_2d\": [")) ids.push_back(id);
    for (int k = 1; k <= 4; ++k) {
      if (k > 1)
        for (TokenId id : enc(", ")) ids.push_back(id);
      ids.push_back(vocab.coord_id(k));
    }
    for (TokenId id : enc("]}]}")) ids.push_back(id);
    ids.push_back(kImEnd);
    const ParseResult p = parse_ids(ids, tok);
    ASSERT_EQ(p.status, RolloutStatus::kComplete) << p.error;
    ASSERT_EQ(p.entries.size(), 1u);
    EXPECT_EQ(p.entries[0].reason, bad_utf8 ? DropReason::kInvalidUtf8 : DropReason::kSpecialTokenInDesc);
    EXPECT_TRUE(p.entries[0].span.desc.contains(desc_coord));
    EXPECT_EQ(p.entries[0].span.coord_positions.size(), 4u);  // the geometry's, not the desc's
    const YIn y = build_y_in(p, {yellow_dog_gt()}, tok, PrefixMode::kRaw, FieldOrder::kDescFirst);
    ASSERT_EQ(y.layout.objects.size(), 2u);
    EXPECT_EQ(y.layout.objects[0].subset, ObjectSubset::kInvalid);
    EXPECT_TRUE(y.layout.objects[0].desc.contains(desc_coord));
    EXPECT_EQ(y.layout.types[desc_coord], TokenType::kCoord);
    for (int32_t t = y.layout.objects[0].desc.begin; t < y.layout.objects[0].desc.end; ++t)
      if (t != desc_coord) {
        EXPECT_EQ(y.layout.types[t], TokenType::kDesc) << t;
      }
    EXPECT_EQ(y.layout.objects[0].coord_positions, p.entries[0].span.coord_positions);
    expect_types_consistent(y.ids, y.layout.types);
    const ParseResult back = parse_ids(y.ids, tok);
    EXPECT_EQ(back.status, RolloutStatus::kComplete);
    ASSERT_EQ(back.entries.size(), 2u);
    EXPECT_EQ(back.entries[0].reason, p.entries[0].reason);
    EXPECT_EQ(back.entries[1].object, yellow_dog_gt());
  }
}

TEST(ChannelB, RawKeepsInvalidEntriesCanonicalDropsThem) {
  const auto& tok = qwen_tokenizer();
  const std::string text =
      R"({"objects": [{"desc": "cup", "bbox_2d": [<|coord_1|>, <|coord_2|>, <|coord_3|>, <|coord_4|>], "score": 1}, )"
      R"({"desc": "black cat", "bbox_2d": [<|coord_120|>, <|coord_300|>, <|coord_420|>, <|coord_700|>]}]} and more text)";
  Ids ids = tok.encode(text);
  ids.push_back(kImEnd);
  const ParseResult p = parse_ids(ids, tok);
  EXPECT_EQ(p.status, RolloutStatus::kMalformed);  // text after the closure
  ASSERT_EQ(p.entries.size(), 2u);
  EXPECT_EQ(p.entries[0].reason, DropReason::kExtraKey);

  const YIn raw = build_y_in(p, {yellow_dog_gt()}, tok, PrefixMode::kRaw, FieldOrder::kDescFirst);
  ASSERT_EQ(raw.layout.objects.size(), 3u);
  EXPECT_EQ(raw.layout.objects[0].subset, ObjectSubset::kInvalid);
  EXPECT_EQ(raw.layout.objects[1].subset, ObjectSubset::kUnassigned);
  EXPECT_EQ(raw.layout.objects[2].subset, ObjectSubset::kFn);
  EXPECT_EQ(raw.text.find(" and more text"), std::string::npos);  // dropped after the cut
  EXPECT_NE(raw.text.find("\"score\": 1"), std::string::npos);
  EXPECT_EQ(raw.ids.back(), kImEnd);
  expect_types_consistent(raw.ids, raw.layout.types);
  const ParseResult raw_back = parse_ids(raw.ids, tok);
  EXPECT_EQ(raw_back.status, RolloutStatus::kComplete);
  EXPECT_EQ(raw_back.valid_objects(), (std::vector<Object>{black_cat_rollout(), yellow_dog_gt()}));
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(raw_back.entries[i].span.tokens.begin, raw.layout.objects[i].tokens.begin) << i;

  const YIn canon = build_y_in(p, {yellow_dog_gt()}, tok, PrefixMode::kCanonical, FieldOrder::kDescFirst);
  ASSERT_EQ(canon.layout.objects.size(), 2u);
  EXPECT_EQ(canon.origins[0].index, 1);  // the valid rollout entry
  EXPECT_EQ(canon.ids, ref("y_in_cat_matched_dog_fn", true));
}

TEST(ChannelB, NoPrefixMeansCanonicalEmptyPrefixAndAllFn) {
  const auto& tok = qwen_tokenizer();
  for (const std::string garbage : {"Sure! Here are the objects: cat, dog", "", "{\"obj", "[{\"desc\": \"a\"}]"}) {
    SCOPED_TRACE(garbage);
    Ids ids = tok.encode(garbage);
    ids.push_back(kImEnd);
    const ParseResult p = parse_ids(ids, tok);
    EXPECT_EQ(p.status, RolloutStatus::kNoPrefix);
    for (PrefixMode mode : {PrefixMode::kRaw, PrefixMode::kCanonical}) {
      const YIn y = build_y_in(p, {black_cat_gt(), yellow_dog_gt()}, tok, mode, FieldOrder::kDescFirst);
      EXPECT_TRUE(y.invalid_rollout);
      EXPECT_EQ(y.ids, ref("gt_answer", true));
      ASSERT_EQ(y.layout.objects.size(), 2u);
      EXPECT_EQ(y.layout.objects[1].subset, ObjectSubset::kFn);
    }
  }
  EXPECT_EQ(prefix_mode_from_name("raw"), PrefixMode::kRaw);
  EXPECT_THROW(prefix_mode_from_name("repair"), coordexp::ConfigError);
}

// Every token cut of several answers: parse never fails hard, keeps exactly the complete objects,
// and prefix + FN always parses back complete with all GT present (raw and canonical).
TEST(ChannelB, TruncatedAtEveryTokenYieldsValidYIn) {
  const auto& tok = qwen_tokenizer();
  std::mt19937 rng(11);
  std::vector<std::vector<Object>> sets = {{black_cat_gt(), yellow_dog_gt()}};
  for (int i = 0; i < 6; ++i) {
    std::vector<Object> s(1 + rng() % 5);
    for (auto& o : s) o = random_object(rng);
    sets.push_back(s);
  }
  int checked = 0;
  for (size_t si = 0; si < sets.size(); ++si) {
    const auto& gt = sets[si];
    const FieldOrder order = si % 2 ? FieldOrder::kGeometryFirst : FieldOrder::kDescFirst;
    const TokenizedAnswer a = render_answer(gt, tok, order);
    for (size_t n = 0; n <= a.ids.size(); ++n) {
      const Ids rollout = prefix(a.ids, n);
      const ParseResult p = parse_ids(rollout, tok);
      // Object j is complete once the token holding its `}` (the last of its span) is present.
      size_t complete = 0;
      while (complete < gt.size() && a.layout.objects[complete].tokens.end <= static_cast<int32_t>(n)) ++complete;
      const std::vector<Object> kept = p.valid_objects();
      ASSERT_EQ(kept, std::vector<Object>(gt.begin(), gt.begin() + complete)) << n;
      const std::vector<Object> fn(gt.begin() + kept.size(), gt.end());
      for (PrefixMode mode : {PrefixMode::kRaw, PrefixMode::kCanonical}) {
        const YIn y = build_y_in(p, fn, tok, mode, order);
        ASSERT_EQ(tok.decode(Ids(y.ids.begin(), y.ids.end() - 1)), y.text) << n;
        const ParseResult back = parse_ids(y.ids, tok);
        ASSERT_EQ(back.status, RolloutStatus::kComplete) << n << " " << y.text;
        ASSERT_EQ(back.valid_objects(), gt) << n << " " << y.text;
        expect_types_consistent(y.ids, y.layout.types);
        ASSERT_EQ(y.layout.objects.size(), gt.size());
        for (size_t j = 0; j < gt.size(); ++j) {
          ASSERT_EQ(back.entries[j].span.coord_positions, y.layout.objects[j].coord_positions);
          ASSERT_EQ(back.entries[j].span.desc.begin, y.layout.objects[j].desc.begin);
          ASSERT_EQ(back.entries[j].span.desc.end, y.layout.objects[j].desc.end);
        }
        ASSERT_EQ(y.invalid_rollout, !p.has_prefix);
        if (mode == PrefixMode::kRaw && p.has_prefix) {
          ASSERT_EQ(Ids(y.ids.begin() + y.num_rollout_ids_kept, y.ids.end() - 1),
                    tok.encode(std::string_view(y.text).substr(p.token_begin[y.num_rollout_ids_kept])));
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(RenderParse, RandomRoundTripsWithIds) {
  const auto& tok = qwen_tokenizer();
  std::mt19937 rng(99);
  for (int trial = 0; trial < 300; ++trial) {
    const std::vector<Object> objs = random_objects(rng, 60);
    const FieldOrder order = trial % 2 ? FieldOrder::kGeometryFirst : FieldOrder::kDescFirst;
    const TokenizedAnswer a = render_answer(objs, tok, order);
    expect_types_consistent(a.ids, a.layout.types);
    ASSERT_EQ(tok.decode(Ids(a.ids.begin(), a.ids.end() - 1)), a.text);
    const ParseResult p = parse_ids(a.ids, tok);
    ASSERT_EQ(p.status, RolloutStatus::kComplete) << a.text;
    ASSERT_EQ(p.valid_objects(), objs) << a.text;
    for (size_t i = 0; i < objs.size(); ++i) {
      const ObjectSpan& s = p.entries[i].span;
      ASSERT_EQ(s.tokens.begin, a.layout.objects[i].tokens.begin);
      ASSERT_EQ(s.tokens.end, a.layout.objects[i].tokens.end);
      ASSERT_EQ(s.desc.begin, a.layout.objects[i].desc.begin);
      ASSERT_EQ(s.desc.end, a.layout.objects[i].desc.end);
      ASSERT_EQ(s.coord_positions, a.layout.objects[i].coord_positions);
      ASSERT_EQ(s.coord_positions.size(), objs[i].bins.size());
      for (size_t k = 0; k < s.coord_positions.size(); ++k)
        ASSERT_EQ(a.ids[s.coord_positions[k]], tok.coord_vocab().coord_id(objs[i].bins[k]));
      for (int32_t t = s.desc.begin; t < s.desc.end; ++t) ASSERT_EQ(a.layout.types[t], TokenType::kDesc);
      ASSERT_FALSE(s.desc.empty());
    }
  }
}

}  // namespace
