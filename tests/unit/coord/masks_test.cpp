// Mask/weight builder (seed 5.5.4) on hand-tokenized responses with the exact expected weight of every
// token: gt context (with coord up-weight), self_context, the seed's black-cat / yellow-dog rollout,
// a rollout with matched + FP + FN + invalid objects, and an FP span that contains the closing brace
// (FP-neutral wins over EOS-enforced). Also the layout invariant checks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "coordexp/coord/masks.h"
#include "coordexp/util/error.h"

namespace coordexp::coord {
namespace {

// One token of a hand-written response: its text (for failure messages), type, and the expected weight
// code: '.' all zero, 's' struct, 'd' desc, 'c' coord, 'e' eos (value = the weight under test).
struct Tok {
  std::string text;
  TokenType type;
  char expect;
};

class ResponseBuilder {
 public:
  int64_t add(const std::string& text, TokenType type, char expect) {
    toks_.push_back({text, type, expect});
    return static_cast<int64_t>(toks_.size()) - 1;
  }
  // Appends one record `{"desc": "<words>", "bbox_2d": [c, c, c, c]<close>` and returns its span.
  // `close` is the record's last token text (e.g. "]}" or a BPE merge like "]}]}"); `rec` is the
  // expected code for struct tokens, `desc`/`coord` for the others.
  ObjectSpan add_object(const std::vector<std::string>& words, ObjectSubset subset, char rec, char desc, char coord,
                        const std::string& close = "]}") {
    ObjectSpan o;
    o.subset = subset;
    o.tokens.begin = add("{\"", TokenType::kStruct, rec);
    add("desc", TokenType::kStruct, rec);
    add("\": \"", TokenType::kStruct, rec);
    o.desc.begin = static_cast<int64_t>(toks_.size());
    for (const auto& w : words) add(w, TokenType::kDesc, desc);
    o.desc.end = static_cast<int64_t>(toks_.size());
    add("\", \"", TokenType::kStruct, rec);
    add("bbox_2d", TokenType::kStruct, rec);
    add("\": [", TokenType::kStruct, rec);
    for (int j = 0; j < 4; ++j) {
      if (j > 0) add(", ", TokenType::kStruct, rec);
      o.coord_positions.push_back(add("<|coord_" + std::to_string(100 * j + 10) + "|>", TokenType::kCoord, coord));
    }
    add(close, TokenType::kStruct, rec);
    o.tokens.end = static_cast<int64_t>(toks_.size());
    return o;
  }
  ResponseLayout layout() const {
    ResponseLayout l;
    for (const auto& t : toks_) l.types.push_back(t.type);
    return l;
  }
  // Expected per-type weights from the codes, with `w` the value of each code.
  void expect_weights(const TokenWeights& got, float ws, float wd, float wc, float we) const {
    ASSERT_EQ(got.struct_w.size(0), static_cast<int64_t>(toks_.size()));
    for (size_t t = 0; t < toks_.size(); ++t) {
      const char e = toks_[t].expect;
      const float exp_s = e == 's' ? ws : 0.f, exp_d = e == 'd' ? wd : 0.f, exp_c = e == 'c' ? wc : 0.f,
                  exp_e = e == 'e' ? we : 0.f;
      EXPECT_EQ(got.struct_w[t].item<float>(), exp_s) << "token " << t << " '" << toks_[t].text << "'";
      EXPECT_EQ(got.desc_w[t].item<float>(), exp_d) << "token " << t << " '" << toks_[t].text << "'";
      EXPECT_EQ(got.coord_w[t].item<float>(), exp_c) << "token " << t << " '" << toks_[t].text << "'";
      EXPECT_EQ(got.eos_w[t].item<float>(), exp_e) << "token " << t << " '" << toks_[t].text << "'";
    }
  }
  // Rewrites the expected codes (same tokens, another context).
  void set_expect(const std::string& codes) {
    ASSERT_EQ(codes.size(), toks_.size());
    for (size_t t = 0; t < toks_.size(); ++t) toks_[t].expect = codes[t];
  }

 private:
  std::vector<Tok> toks_;
};

// The seed's section 12 rollout: both predictions matched; y_in = rollout prefix + "]}" + <|im_end|>.
TEST(CoordMasks, BlackCatYellowDogRolloutAndGtContexts) {
  ResponseBuilder b;
  b.add("{\"", TokenType::kStruct, '.');  // header {"objects": [ stays 0 in rollout
  b.add("objects", TokenType::kStruct, '.');
  b.add("\": [", TokenType::kStruct, '.');
  ObjectSpan cat = b.add_object({"black", " cat"}, ObjectSubset::kMatched, 's', '.', '.');
  b.add(", ", TokenType::kStruct, '.');  // separator outside spans stays 0
  ObjectSpan dog = b.add_object({"yellow", " dog"}, ObjectSubset::kMatched, 's', '.', '.');
  const int64_t close = b.add("]}", TokenType::kStruct, 's');  // BPE-merged top-level `]}`
  const int64_t eos = b.add("<|im_end|>", TokenType::kEos, 'e');
  ResponseLayout layout = b.layout();
  cat.gt_box = {0.110, 0.310, 0.410, 0.705};
  dog.gt_box = {0.520, 0.285, 0.890, 0.660};
  layout.objects = {cat, dog};
  layout.array_close = layout.object_close = close;
  layout.eos = eos;

  config::LossOptions loss;
  b.expect_weights(build_token_weights(layout, Context::kRollout, loss), 1, 1, 1, 1);
  // fn_coord_ce only concerns FN objects: nothing changes here.
  b.expect_weights(build_token_weights(layout, Context::kRollout, loss, /*fn_coord_ce=*/true), 1, 1, 1, 1);
  // Per-token weights scale the value, not the pattern.
  loss.struct_weight = 0.5;
  loss.eos_weight = 2.0;
  b.expect_weights(build_token_weights(layout, Context::kRollout, loss), 0.5, 1, 1, 2.0);

  // gt context: every token by its type; coord tokens carry the up-weight while coord CE is on.
  std::string gt_codes;
  for (TokenType t : layout.types)
    gt_codes += t == TokenType::kStruct ? 's' : t == TokenType::kDesc ? 'd' : t == TokenType::kCoord ? 'c' : 'e';
  b.set_expect(gt_codes);
  loss = config::LossOptions{};
  loss.coord_ce.upweight = 3.0;
  b.expect_weights(build_token_weights(layout, Context::kGt, loss), 1, 1, 3.0, 1);
  loss.coord_ce.weight = 0.0;  // coord CE off: coord weights 0
  b.set_expect([&] {
    std::string s = gt_codes;
    for (char& ch : s) ch = ch == 'c' ? '.' : ch;
    return s;
  }());
  b.expect_weights(build_token_weights(layout, Context::kGt, loss), 1, 1, 1, 1);
  // self_context: no token CE at all.
  b.set_expect(std::string(layout.types.size(), '.'));
  b.expect_weights(build_token_weights(layout, Context::kSelfContext, loss), 1, 1, 1, 1);
}

// Compact JSON: BPE fuses `]},{"` into one token that ends one record and starts the next, so two
// spans share it. Rule (masks.h): a shared token gets what either record gives it, except that
// touching an FP / invalid record makes it 0 (FP-neutral wins). FP sofa | matched cat | FN dog.
TEST(CoordMasks, TokensSharedByTwoRecordsFollowFpNeutral) {
  ResponseBuilder b;
  b.add("{\"objects\":[", TokenType::kStruct, '.');
  ObjectSpan sofa = b.add_object({"so", "fa"}, ObjectSubset::kFp, '.', '.', '.', "]},{\"");  // shared with cat: 0
  // The rest of a record that began inside the previous record's last token.
  auto tail = [&b](const std::vector<std::string>& words, ObjectSubset subset, char rec, char desc,
                   const std::string& close, char close_code) {
    ObjectSpan o;
    o.subset = subset;
    o.tokens.begin = static_cast<int32_t>(b.layout().types.size()) - 1;
    b.add("desc", TokenType::kStruct, rec);
    b.add("\":\"", TokenType::kStruct, rec);
    o.desc.begin = static_cast<int32_t>(b.layout().types.size());
    for (const auto& w : words) b.add(w, TokenType::kDesc, desc);
    o.desc.end = static_cast<int32_t>(b.layout().types.size());
    b.add("\",\"", TokenType::kStruct, rec);
    b.add("bbox_2d", TokenType::kStruct, rec);
    b.add("\":[", TokenType::kStruct, rec);
    for (int j = 0; j < 4; ++j) {
      if (j > 0) b.add(",", TokenType::kStruct, rec);
      o.coord_positions.push_back(static_cast<int32_t>(b.add("<|coord_5|>", TokenType::kCoord, '.')));
    }
    b.add(close, TokenType::kStruct, close_code);
    o.tokens.end = static_cast<int32_t>(b.layout().types.size());
    return o;
  };
  ObjectSpan cat = tail({"black", " cat"}, ObjectSubset::kMatched, 's', '.', "]},{\"", 's');  // shared with FN: struct
  ObjectSpan dog = tail({"yellow", " dog"}, ObjectSubset::kFn, 's', 'd', "]}]}", 's');       // also the closure
  const int64_t eos = b.add("<|im_end|>", TokenType::kEos, 'e');
  ResponseLayout layout = b.layout();
  layout.objects = {sofa, cat, dog};
  ASSERT_EQ(cat.tokens.begin, sofa.tokens.end - 1);
  ASSERT_EQ(dog.tokens.begin, cat.tokens.end - 1);
  layout.array_close = layout.object_close = static_cast<int32_t>(eos - 1);
  layout.eos = static_cast<int32_t>(eos);
  EXPECT_NO_THROW(check_layout(layout));
  b.expect_weights(build_token_weights(layout, Context::kRollout, config::LossOptions{}), 1, 1, 1, 1);
  // The shared token also may not carry the closure when an FP record touches it.
  layout.objects[2].subset = ObjectSubset::kFp;
  const TokenWeights w = build_token_weights(layout, Context::kRollout, config::LossOptions{});
  EXPECT_EQ(w.struct_w[eos - 1].item<float>(), 0.f);
  EXPECT_EQ(w.struct_w[cat.tokens.end - 1].item<float>(), 0.f);
  EXPECT_EQ(w.eos_w[eos].item<float>(), 1.f);
}

// Matched cat, FP "sofa", dropped-invalid junk, FN dog injected; separate `]` and `}` tokens.
TEST(CoordMasks, RolloutMatchedFpInvalidAndFnSpans) {
  for (bool fn_coord_ce : {false, true}) {
    ResponseBuilder b;
    b.add("{\"objects\": [", TokenType::kStruct, '.');
    ObjectSpan cat = b.add_object({"black", " cat"}, ObjectSubset::kMatched, 's', '.', '.');
    b.add(", ", TokenType::kStruct, '.');
    ObjectSpan sofa = b.add_object({"so", "fa"}, ObjectSubset::kFp, '.', '.', '.');
    b.add(", ", TokenType::kStruct, '.');
    ObjectSpan junk;  // an invalid record: desc only, no geometry
    junk.subset = ObjectSubset::kInvalid;
    junk.tokens.begin = b.add("{\"desc\": \"", TokenType::kStruct, '.');
    junk.desc = {b.add("lamp", TokenType::kDesc, '.'), 0};
    junk.desc.end = junk.desc.begin + 1;
    junk.tokens.end = b.add("\"}", TokenType::kStruct, '.') + 1;
    b.add(", ", TokenType::kStruct, '.');  // comma before the first FN record (outside spans)
    ObjectSpan dog = b.add_object({"yellow", " dog"}, ObjectSubset::kFn, 's', 'd', fn_coord_ce ? 'c' : '.');
    const int64_t arr = b.add("]", TokenType::kStruct, 's');
    const int64_t obj = b.add("}", TokenType::kStruct, 's');
    const int64_t eos = b.add("<|im_end|>", TokenType::kEos, 'e');
    ResponseLayout layout = b.layout();
    layout.objects = {cat, sofa, junk, dog};
    layout.array_close = arr;
    layout.object_close = obj;
    layout.eos = eos;
    config::LossOptions loss;
    loss.coord_ce.upweight = 2.0;
    b.expect_weights(build_token_weights(layout, Context::kRollout, loss, fn_coord_ce), 1, 1, 2.0, 1);
  }
}

// The last rollout object is FP and BPE merged its closing `]}` with the top-level `]}`: the closure
// token lies inside the FP span, so it stays 0 (FP-neutral wins); <|im_end|> is still enforced.
TEST(CoordMasks, FpSpanContainingTheClosingBraceStaysZero) {
  ResponseBuilder b;
  b.add("{\"objects\": [", TokenType::kStruct, '.');
  ObjectSpan cat = b.add_object({"black", " cat"}, ObjectSubset::kMatched, 's', '.', '.');
  b.add(", ", TokenType::kStruct, '.');
  ObjectSpan fp = b.add_object({"yellow", " dog"}, ObjectSubset::kFp, '.', '.', '.', "]}]}");
  const int64_t eos = b.add("<|im_end|>", TokenType::kEos, 'e');
  ResponseLayout layout = b.layout();
  layout.objects = {cat, fp};
  layout.array_close = layout.object_close = fp.tokens.end - 1;
  layout.eos = eos;
  b.expect_weights(build_token_weights(layout, Context::kRollout, config::LossOptions{}), 1, 1, 1, 1);
}

TEST(CoordMasks, LayoutInvariantsAreChecked) {
  ResponseBuilder b;
  b.add("{\"objects\": [", TokenType::kStruct, '.');
  const ObjectSpan cat = b.add_object({"cat"}, ObjectSubset::kMatched, 's', '.', '.');
  const int64_t eos = b.add("<|im_end|>", TokenType::kEos, 'e');
  const ResponseLayout good = [&] {
    ResponseLayout l = b.layout();
    l.objects = {cat};
    l.eos = eos;
    return l;
  }();
  EXPECT_NO_THROW(check_layout(good));
  auto expect_bad = [&](auto mutate) {
    ResponseLayout l = good;
    mutate(l);
    EXPECT_THROW(build_token_weights(l, Context::kRollout, config::LossOptions{}), InternalError);
  };
  expect_bad([](ResponseLayout& l) { l.objects[0].coord_positions[1] -= 1; });   // not a coord token
  expect_bad([](ResponseLayout& l) { l.objects[0].coord_positions.pop_back(); });  // bbox needs 4
  expect_bad([&](ResponseLayout& l) { l.objects[0].tokens.end = static_cast<int64_t>(l.types.size()) + 1; });
  expect_bad([](ResponseLayout& l) { l.objects.push_back(l.objects[0]); });        // a record repeated (nested, shared coords)
  expect_bad([](ResponseLayout& l) { l.eos = 0; });                                // not typed eos
  expect_bad([](ResponseLayout& l) { l.eos = -1; });                               // rollout needs eos
  expect_bad([](ResponseLayout& l) { l.objects[0].desc = {0, 2}; });               // desc outside record
}

}  // namespace
}  // namespace coordexp::coord
