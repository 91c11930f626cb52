// libFuzzer target for the Channel-B chain on token ids: parse_ids -> predictions_from_parse ->
// match_objects -> build_y_in -> set_prefix_subsets -> coord::build_token_weights. The first byte picks the options (GT count,
// field order, prefix mode, gates), the next ones up to 3 GT objects; then each byte is one token
// from an alphabet of Qwen3 ids that matter here (JSON pieces, BPE-fused `]},` / `"},{"` / `}]}`,
// keys, quotes, escapes, letters, coord tokens, specials, byte tokens that spell invalid UTF-8), or
// any vocabulary id. Checked: y_in ends with <|im_end|>, spells its text, parses back complete, its
// spans are in range and typed, and the FN objects are there in GT order. Needs the Qwen3
// tokenizer: $COORDEXP_TOKENIZER_DIR or <source>/.cache/tokenizer-qwen3.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "coordexp/coord/masks.h"
#include "coordexp/matching/matcher.h"
#include "coordexp/protocol/channel_b.h"
#include "coordexp/protocol/parse.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace {

using namespace coordexp;
using protocol::Object;
using tokenizer::TokenId;

std::shared_ptr<tokenizer::Tokenizer> g_tok;
std::vector<TokenId> g_alphabet;

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

const char* const kDescs[] = {"cat", "black cat", "a", "dog", "\xc3\xa9 \xe4\xb8\xad", "x\"}]{"};

// The ids whose bytes are exactly each piece (BPE tokens and added tokens), plus the ids the
// tokenizer gives for the piece as text.
void build_alphabet() {
  const std::vector<std::string> pieces = {
      "{\"", "{\"objects\": [", "objects", "\":", "\": ", " [", "[", " [{\"", "[{\"", "{", "}", "]",
      "]}", "]},", "}]}", "]}]}", "]}\n", "\"},{\"", "\"},", "\"}", "},{", "}, {", "},", ", ", ",", " ",
      "\"", " \"", "\": \"", "\", \"", "\",", "desc", "bbox", "_", "2", "d", "bbox_2d", "poly", "score",
      "\\", "\\\"", "\\u", "\\n", "00", "d8", "cat", "a", "b", " dog", "\xc3\xa9", "\xe4\xb8\xad", "\n", "0.5",
      "1", "12", "<", "|", ">", "<|", "|>", "coord", "_", "null", "true", ":", "[[", "]]", "],"};
  const std::vector<unsigned char> bytes = {0x80, 0xBF, 0xC0, 0xC3, 0xE4, 0xB8, 0xAD, 0xED, 0xA0, 0xF0, 0xF4, 0xFF};
  std::set<std::string> wanted(pieces.begin(), pieces.end());
  for (unsigned char b : bytes) wanted.insert(std::string(1, static_cast<char>(b)));
  std::set<TokenId> ids;
  for (TokenId id = 0; id < static_cast<TokenId>(g_tok->vocab_size()); ++id)
    if (wanted.count(g_tok->token_bytes(id))) ids.insert(id);
  for (const std::string& p : pieces)
    for (TokenId id : g_tok->encode(p)) ids.insert(id);
  const tokenizer::CoordVocab& v = g_tok->coord_vocab();
  for (int k : {0, 1, 5, 120, 300, 500, 700, 998, 999}) ids.insert(v.coord_id(k));
  ids.insert(v.wildcard_id);
  ids.insert(g_tok->im_end_id());
  ids.insert(g_tok->endoftext_id());
  for (const char* special : {"<|vision_start|>", "<think>"})
    if (auto id = g_tok->token_to_id(special)) ids.insert(*id);
  g_alphabet.assign(ids.begin(), ids.end());
}

struct Input {
  const uint8_t* p;
  size_t n;
  uint8_t next() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
};

Object gt_object(Input& in) {
  const uint8_t head = in.next();
  Object o;
  o.desc = kDescs[head % (sizeof(kDescs) / sizeof(kDescs[0]))];
  o.kind = (head & 0x80) ? protocol::GeometryKind::kPoly : protocol::GeometryKind::kBbox;
  const int n = o.kind == protocol::GeometryKind::kBbox ? 4 : 6;
  for (int i = 0; i < n; ++i) o.bins.push_back(std::min(999, in.next() * 4));
  if (o.kind == protocol::GeometryKind::kBbox) {  // x1 <= x2, y1 <= y2 like converted GT
    if (o.bins[0] > o.bins[2]) std::swap(o.bins[0], o.bins[2]);
    if (o.bins[1] > o.bins[3]) std::swap(o.bins[1], o.bins[3]);
  }
  return o;
}

void check(const protocol::ParseResult& r, const std::vector<Object>& gt, protocol::PrefixMode mode,
           protocol::FieldOrder order, const config::MatchingOptions& options, uint8_t head_byte) {
  const tokenizer::TokenId im_end = g_tok->im_end_id();
  const matching::Predictions preds = matching::predictions_from_parse(r);
  require(preds.objects.size() == r.num_valid(), "one prediction per valid entry");
  std::vector<matching::MatchObject> gts;
  for (const Object& o : gt) gts.push_back(matching::match_object_from_bins(o));
  const matching::MatchResult m = matching::match_objects(preds.objects, gts, options);
  require(m.matched.size() + m.fp.size() == preds.objects.size(), "predictions partitioned");
  require(m.matched.size() + m.fn.size() == gt.size(), "GT partitioned");
  std::vector<Object> fn;
  for (int g : m.fn) fn.push_back(gt[g]);

  protocol::YIn y = protocol::build_y_in(r, fn, *g_tok, mode, order);
  matching::set_prefix_subsets(y, preds, m, gts);

  const auto n = static_cast<int32_t>(y.ids.size());
  require(n >= 1 && y.ids.back() == im_end && y.layout.eos == n - 1, "y_in ends with <|im_end|>");
  require(y.layout.types.size() == y.ids.size(), "one type per id");
  require(y.origins.size() == y.layout.objects.size(), "one origin per object");
  require(y.invalid_rollout == !r.has_prefix, "invalid_rollout iff no head");
  // Bytes, not decode(): a raw prefix may keep an invalid-UTF-8 entry (decode would write U+FFFD).
  std::string spelled;
  for (size_t i = 0; i + 1 < y.ids.size(); ++i) spelled += g_tok->token_bytes(y.ids[i]);
  require(spelled == y.text, "y_in ids spell y_in text");
  require(y.layout.array_close >= 0 && y.layout.array_close < n - 1 && y.layout.object_close >= y.layout.array_close &&
              y.layout.object_close < n - 1,
          "closing tokens in range");
  require(y.num_rollout_ids_kept >= 0 && y.num_rollout_ids_kept <= static_cast<int32_t>(r.ids.size()),
          "kept rollout ids in range");
  if (mode == protocol::PrefixMode::kRaw && r.has_prefix)
    for (int32_t i = 0; i < y.num_rollout_ids_kept; ++i) require(y.ids[i] == r.ids[i], "kept ids verbatim");

  const protocol::ParseResult back = protocol::parse_ids(y.ids, *g_tok);
  require(back.status == protocol::RolloutStatus::kComplete, "y_in parses back complete");
  require(back.entries.size() == y.layout.objects.size(), "y_in objects = its entries");
  size_t num_fn = 0, num_matched = 0;
  int32_t prev_end = 0;
  for (size_t i = 0; i < y.layout.objects.size(); ++i) {
    const protocol::ObjectOrigin& o = y.origins[i];
    const protocol::ObjectSpan& s = y.layout.objects[i];
    require(s.tokens.begin >= 0 && s.tokens.begin < s.tokens.end && s.tokens.end <= n - 1, "record span in range");
    require(s.tokens.begin >= prev_end - 1, "records in order (adjacent ones share at most one token)");
    prev_end = s.tokens.end;
    require(s.desc.empty() || (s.desc.begin >= s.tokens.begin && s.desc.end <= s.tokens.end), "desc inside record");
    // Types are decided by id for coord tokens, so a coord token inside the desc of a dropped entry
    // (special_token_in_desc) stays kCoord; every other desc token is kDesc.
    for (int32_t t = s.desc.begin; t < s.desc.end; ++t)
      require(y.layout.types[t] == protocol::TokenType::kDesc ||
                  (y.layout.types[t] == protocol::TokenType::kCoord && s.subset == protocol::ObjectSubset::kInvalid),
              "desc tokens typed desc");
    for (int32_t c : s.coord_positions)
      require(c >= s.tokens.begin && c < s.tokens.end && y.layout.types[c] == protocol::TokenType::kCoord,
              "coord positions inside record, typed coord");
    require(back.entries[i].span.tokens.begin == s.tokens.begin && back.entries[i].span.tokens.end == s.tokens.end &&
                back.entries[i].span.coord_positions == s.coord_positions,
            "y_in spans match a re-parse");
    require(s.subset != protocol::ObjectSubset::kUnassigned, "every subset decided after matching");
    if (o.source == protocol::ObjectSource::kInjectedFn) {
      require(s.subset == protocol::ObjectSubset::kFn && o.index == static_cast<int32_t>(num_fn),
              "FN objects in the order given");
      require(back.entries[i].valid() && back.entries[i].object == fn[num_fn], "FN object rendered as given");
      ++num_fn;
    } else {
      require(num_fn == 0, "FN objects after the prefix");
      require(o.index >= 0 && o.index < static_cast<int32_t>(r.num_complete), "prefix object is a complete entry");
      const protocol::ParsedEntry& e = r.entries[o.index];
      require((s.subset == protocol::ObjectSubset::kInvalid) == !e.valid(), "invalid iff the entry was dropped");
      require(back.entries[i].valid() == e.valid(), "prefix entries keep their verdict");
      if (e.valid()) require(back.entries[i].object == e.object, "prefix object unchanged");
      num_matched += s.subset == protocol::ObjectSubset::kMatched;
    }
  }
  require(num_fn == fn.size(), "every FN object injected");
  require(num_matched == m.matched.size(), "every matched prediction is in the prefix");

  // Mask builder (coord/masks.h) on the same layout, no converter: never throws on a y_in; every
  // token of an fp / invalid record (BPE tokens two records share included) has weight 0 in every
  // term; <|im_end|> carries the eos weight; nothing outside [0, 1] with the default weights.
  const coord::TokenWeights w =
      coord::build_token_weights(y.layout, coord::Context::kRollout, config::LossOptions{}, (head_byte & 1) != 0);
  const float* ws = w.struct_w.data_ptr<float>();
  const float* wd = w.desc_w.data_ptr<float>();
  const float* wc = w.coord_w.data_ptr<float>();
  const float* we = w.eos_w.data_ptr<float>();
  require(we[n - 1] == 1.f, "eos weighted");
  for (const protocol::ObjectSpan& s : y.layout.objects) {
    if (s.subset != protocol::ObjectSubset::kFp && s.subset != protocol::ObjectSubset::kInvalid) continue;
    for (int32_t t = s.tokens.begin; t < s.tokens.end; ++t)
      require(ws[t] == 0.f && wd[t] == 0.f && wc[t] == 0.f && we[t] == 0.f, "FP-neutral: fp/invalid tokens weigh 0");
  }
  for (int32_t t = 0; t < n; ++t) {
    require(ws[t] >= 0.f && ws[t] <= 1.f && wd[t] >= 0.f && wd[t] <= 1.f && wc[t] >= 0.f && wc[t] <= 1.f,
            "weights in [0, 1]");
    require((ws[t] > 0) + (wd[t] > 0) + (wc[t] > 0) + (we[t] > 0) <= 1, "one term per token");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("COORDEXP_TOKENIZER_DIR");
  const std::string dir = env && *env ? env : std::string(COORDEXP_SOURCE_DIR) + "/.cache/tokenizer-qwen3";
  g_tok = tokenizer::Tokenizer::from_dir(dir);
  g_tok->ensure_coord_tokens();
  build_alphabet();
  std::fprintf(stderr, "fuzz_channel_b: alphabet of %zu ids\n", g_alphabet.size());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Input in{data, size};
  const uint8_t flags = in.next();
  const int num_gt = flags & 3;
  const auto order = (flags & 4) ? protocol::FieldOrder::kGeometryFirst : protocol::FieldOrder::kDescFirst;
  config::MatchingOptions options;
  if (flags & 8) options.min_iou = 0.0;  // gate off: more matches
  if (flags & 16) options.text_gate = true;
  if (flags & 32) options.cross_kind = true;
  std::vector<Object> gt;
  for (int i = 0; i < num_gt; ++i) gt.push_back(gt_object(in));

  // The rollout: one byte per token; bytes >= 0xF8 take the next two as any vocabulary id.
  std::vector<TokenId> ids;
  const auto vocab = static_cast<uint32_t>(g_tok->vocab_size());
  while (in.n > 0) {
    const uint8_t b = in.next();
    if (b < 0xF8) {
      ids.push_back(g_alphabet[b % g_alphabet.size()]);
    } else {
      const uint32_t v = in.next() | (in.next() << 8) | ((b & 7u) << 16);
      ids.push_back(static_cast<TokenId>(v % vocab));
    }
  }
  const protocol::ParseResult r = protocol::parse_ids(ids, *g_tok);
  require(r.num_complete <= r.entries.size() && r.entries.size() <= r.num_complete + 1,
          "entries: complete ones first, at most one incomplete");
  require(r.append_cut <= r.text.size(), "append cut inside the text");
  for (size_t i = 0; i < r.num_complete; ++i) require(r.entries[i].complete, "complete entries marked complete");
  check(r, gt, (flags & 64) ? protocol::PrefixMode::kCanonical : protocol::PrefixMode::kRaw, order, options, flags);
  return 0;
}
