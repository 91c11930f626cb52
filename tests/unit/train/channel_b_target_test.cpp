// Channel-B targets on real Qwen3 token ids (no model): the seed's section-12 example end to end
// (parse -> match -> y_in -> every token's weight), and rollouts that are truncated mid-object, carry
// an extra key, duplicate an object, use compact JSON whose BPE tokens span two records, hold `}` and
// `"` inside a desc, are empty or garbage, or are too long for data.max_length. Expected weights are
// derived here from the y_in TEXT (a brace scan written for this test, character ranges of every
// record, the seed 5.5.4C rule), never from the spans the code produced. Also the step router's
// formula and the B sampler.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "coordexp/coord/masks.h"
#include "coordexp/matching/matcher.h"
#include "coordexp/train/b_sampler.h"
#include "coordexp/train/channel_b_step.h"
#include "coordexp/train/step_router.h"

namespace coordexp::train {
namespace {

using tokenizer::TokenId;

const tokenizer::Tokenizer& tok() {
  static const std::shared_ptr<tokenizer::Tokenizer> t = [] {
    const char* env = std::getenv("COORDEXP_TOKENIZER_DIR");
    const std::string dir =
        env && *env ? std::string(env) : std::string(COORDEXP_SOURCE_DIR) + "/.cache/tokenizer-qwen3";
    if (!std::filesystem::exists(dir + "/tokenizer.json")) throw std::runtime_error("Qwen3 tokenizer not found in " + dir);
    auto x = tokenizer::Tokenizer::from_dir(dir);
    x->ensure_coord_tokens();
    return x;
  }();
  return *t;
}

ChannelBSettings settings() {
  config::RunConfig c;
  return ChannelBSettings::from_config(c, tok());
}

BGtObject gt_box(const std::string& desc, int x1, int y1, int x2, int y2) {
  BGtObject g;
  g.object = {desc, protocol::GeometryKind::kBbox, {x1, y1, x2, y2}};
  const std::vector<double> flat = {x1 / 999.0, y1 / 999.0, x2 / 999.0, y2 / 999.0};
  g.match = matching::match_object_from_norm(desc, protocol::GeometryKind::kBbox, flat);
  g.gt_box = {flat[0], flat[1], flat[2], flat[3]};
  return g;
}

std::string box_text(int a, int b, int c, int d) {
  return "[<|coord_" + std::to_string(a) + "|>, <|coord_" + std::to_string(b) + "|>, <|coord_" + std::to_string(c) +
         "|>, <|coord_" + std::to_string(d) + "|>]";
}

// The rollout as the model would have produced it: the text's ids + <|im_end|>.
std::vector<TokenId> rollout_ids(const std::string& text, bool eos = true) {
  std::vector<TokenId> ids = tok().encode(text);
  if (eos) ids.push_back(tok().im_end_id());
  return ids;
}

// --- The test's own reading of a y_in text ---------------------------------------------------------
struct TextRecord {
  size_t begin = 0, end = 0;            // `{` .. `}` inclusive: [begin, end)
  size_t desc_begin = 0, desc_end = 0;  // desc content between its quotes
};
struct TextLayout {
  std::vector<TextRecord> records;  // the array's entries, in order
  size_t array_close = 0, outer_close = 0;
};

// Brace scan honouring strings: entries are the depth-2 `{...}` of `{"objects": [...]}`.
TextLayout scan(const std::string& s) {
  TextLayout l;
  int depth = 0;
  bool in_str = false, esc = false;
  size_t str_begin = 0;
  std::string last_key;
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    if (in_str) {
      if (esc) { esc = false; continue; }
      if (ch == '\\') { esc = true; continue; }
      if (ch == '"') {
        in_str = false;
        const std::string str = s.substr(str_begin, i - str_begin);
        if (depth == 3 && last_key == "desc" && !l.records.empty() && l.records.back().desc_end == 0) {
          l.records.back().desc_begin = str_begin;
          l.records.back().desc_end = i;
          last_key.clear();
        } else {
          last_key = str;
        }
      }
      continue;
    }
    if (ch == '"') { in_str = true; str_begin = i + 1; continue; }
    if (ch == '{' || ch == '[') {
      if (ch == '{' && depth == 2) l.records.push_back({i, 0, 0, 0});
      ++depth;
    } else if (ch == '}' || ch == ']') {
      --depth;
      if (ch == '}' && depth == 2) l.records.back().end = i + 1;
      if (ch == ']' && depth == 1) l.array_close = i;
      if (ch == '}' && depth == 0) l.outer_close = i;
    }
  }
  return l;
}

bool overlaps(size_t b0, size_t e0, size_t b1, size_t e1) { return b0 < e1 && b1 < e0; }

// Expected (struct, desc, coord, eos) weight of every y_in token from the text layout and the
// subset of every record (seed 5.5.4C; FP-neutral wins, shared tokens included).
std::vector<std::array<float, 4>> expected_weights(const protocol::YIn& y, const std::vector<protocol::ObjectSubset>& subsets,
                                                   bool fn_coord_ce = false) {
  const TextLayout l = scan(y.text);
  EXPECT_EQ(l.records.size(), subsets.size()) << y.text;
  std::vector<std::array<float, 4>> w(y.ids.size(), {0, 0, 0, 0});
  size_t pos = 0;
  for (size_t t = 0; t + 1 < y.ids.size(); ++t) {
    const size_t b = pos, e = pos + tok().token_bytes(y.ids[t]).size();
    pos = e;
    const bool is_coord = tok().coord_vocab().is_coord(y.ids[t]);
    bool is_desc = false;
    for (const auto& r : l.records) is_desc |= r.desc_end > r.desc_begin && overlaps(b, e, r.desc_begin, r.desc_end);
    const int type = is_coord ? 2 : is_desc ? 1 : 0;
    bool fp = false, matched = false, fn = false;
    for (size_t k = 0; k < l.records.size() && k < subsets.size(); ++k) {
      if (!overlaps(b, e, l.records[k].begin, l.records[k].end)) continue;
      fp |= subsets[k] == protocol::ObjectSubset::kFp || subsets[k] == protocol::ObjectSubset::kInvalid;
      matched |= subsets[k] == protocol::ObjectSubset::kMatched;
      fn |= subsets[k] == protocol::ObjectSubset::kFn;
    }
    const bool closure = overlaps(b, e, l.array_close, l.array_close + 1) || overlaps(b, e, l.outer_close, l.outer_close + 1);
    if (fp) continue;
    if (type == 0 && (matched || fn || closure)) w[t][0] = 1;
    if (type == 1 && fn) w[t][1] = 1;
    if (type == 2 && fn && fn_coord_ce) w[t][2] = 1;
  }
  EXPECT_EQ(pos, y.text.size());
  w.back()[3] = 1;  // <|im_end|>
  return w;
}

void expect_weights(const BTarget& t, const std::vector<protocol::ObjectSubset>& subsets) {
  const ChannelBSettings s = settings();
  const coord::TokenWeights got = coord::build_token_weights(t.y_in.layout, coord::Context::kRollout, s.loss, false);
  const auto want = expected_weights(t.y_in, subsets);
  ASSERT_EQ(got.struct_w.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    const std::string piece = tok().token_bytes(t.y_in.ids[i]);
    EXPECT_EQ(got.struct_w[i].item<float>(), want[i][0]) << "token " << i << " '" << piece << "' in " << t.y_in.text;
    EXPECT_EQ(got.desc_w[i].item<float>(), want[i][1]) << "token " << i << " '" << piece << "'";
    EXPECT_EQ(got.coord_w[i].item<float>(), want[i][2]) << "token " << i << " '" << piece << "'";
    EXPECT_EQ(got.eos_w[i].item<float>(), want[i][3]) << "token " << i << " '" << piece << "'";
  }
  std::vector<protocol::ObjectSubset> got_subsets;
  for (const auto& o : t.y_in.layout.objects) got_subsets.push_back(o.subset);
  EXPECT_EQ(got_subsets, subsets);
}

using protocol::ObjectSubset;
const std::vector<BGtObject> kCatDog = {gt_box("black cat", 110, 310, 410, 705), gt_box("yellow dog", 520, 285, 890, 660)};

BTarget target(const std::string& text, const std::vector<BGtObject>& gt = kCatDog, bool eos = true,
               int64_t max_answer = 4096) {
  const ChannelBSettings s = settings();
  return build_b_target(rollout_ids(text, eos), gt, tok(), s, s.matching, max_answer);
}

TEST(ChannelBTarget, SeedSection12ExampleBothMatchedNoFn) {
  const std::string rollout = "{\"objects\": [{\"desc\": \"black cat\", \"bbox_2d\": " + box_text(120, 300, 420, 700) +
                              "}, {\"desc\": \"yellow dog\", \"bbox_2d\": " + box_text(500, 280, 880, 650) + "}]}";
  const BTarget t = target(rollout);
  EXPECT_EQ(t.parsed.status, protocol::RolloutStatus::kComplete);
  ASSERT_EQ(t.match.matched.size(), 2u);
  EXPECT_EQ(t.match.matched[0].pred, 0);
  EXPECT_EQ(t.match.matched[0].gt, 0);
  EXPECT_EQ(t.match.matched[1].gt, 1);
  EXPECT_TRUE(t.match.fn.empty());
  EXPECT_EQ(t.y_in.text, rollout);  // nothing to inject: the rollout itself, closure re-spliced
  EXPECT_EQ(t.y_in.ids, rollout_ids(rollout));
  expect_weights(t, {ObjectSubset::kMatched, ObjectSubset::kMatched});
  // Geometry targets: each matched prediction is pulled toward its GT box.
  EXPECT_NEAR(t.y_in.layout.objects[0].gt_box[0], 110 / 999.0, 1e-12);
  EXPECT_NEAR(t.y_in.layout.objects[1].gt_box[3], 660 / 999.0, 1e-12);
  // Desc and coord tokens of matched objects carry no CE; the `]}` closure and <|im_end|> do.
  const auto w = coord::build_token_weights(t.y_in.layout, coord::Context::kRollout, settings().loss, false);
  EXPECT_EQ(w.desc_w.sum().item<float>(), 0.f);
  EXPECT_EQ(w.coord_w.sum().item<float>(), 0.f);
  EXPECT_EQ(w.eos_w.sum().item<float>(), 1.f);
}

TEST(ChannelBTarget, MissedDogIsInjectedInsideTheSameArray) {
  const std::string rollout = "{\"objects\": [{\"desc\": \"black cat\", \"bbox_2d\": " + box_text(120, 300, 420, 700) + "}]}";
  const BTarget t = target(rollout);
  ASSERT_EQ(t.match.fn, (std::vector<int>{1}));
  EXPECT_EQ(t.y_in.text, "{\"objects\": [{\"desc\": \"black cat\", \"bbox_2d\": " + box_text(120, 300, 420, 700) +
                             "}, {\"desc\": \"yellow dog\", \"bbox_2d\": " + box_text(520, 285, 890, 660) + "}]}");
  expect_weights(t, {ObjectSubset::kMatched, ObjectSubset::kFn});
  EXPECT_NEAR(t.y_in.layout.objects[1].gt_box[0], 520 / 999.0, 1e-12);
}

TEST(ChannelBTarget, WrongObjectIsFpNeutralAndBothGtAreFn) {
  // A far-away "sofa": assigned to a GT by the Hungarian solve, refused by the IoU gate.
  const std::string rollout = "{\"objects\": [{\"desc\": \"sofa\", \"bbox_2d\": " + box_text(0, 0, 50, 50) + "}]}";
  const BTarget t = target(rollout);
  EXPECT_EQ(t.match.fp, (std::vector<int>{0}));
  EXPECT_EQ(t.match.fn, (std::vector<int>{0, 1}));
  expect_weights(t, {ObjectSubset::kFp, ObjectSubset::kFn, ObjectSubset::kFn});
}

TEST(ChannelBTarget, TruncatedMidObjectKeepsTheCompleteEntries) {
  const std::string rollout = "{\"objects\": [{\"desc\": \"black cat\", \"bbox_2d\": " + box_text(120, 300, 420, 700) +
                              "}, {\"desc\": \"yellow dog\", \"bbox_2d\": [<|coord_500|>, <|coord_2";
  const BTarget t = target(rollout, kCatDog, /*eos=*/false);
  EXPECT_EQ(t.parsed.status, protocol::RolloutStatus::kTruncated);
  EXPECT_EQ(t.match.fn, (std::vector<int>{1}));
  EXPECT_EQ(scan(t.y_in.text).records.size(), 2u);
  expect_weights(t, {ObjectSubset::kMatched, ObjectSubset::kFn});
}

TEST(ChannelBTarget, ExtraKeyEntryIsInvalidAndMaskedLikeFp) {
  const std::string rollout = "{\"objects\": [{\"desc\": \"black cat\", \"color\": \"black\", \"bbox_2d\": " +
                              box_text(120, 300, 420, 700) + "}]}";
  const BTarget t = target(rollout);
  ASSERT_EQ(t.parsed.entries.size(), 1u);
  EXPECT_EQ(t.parsed.entries[0].reason, protocol::DropReason::kExtraKey);
  EXPECT_EQ(t.match.fn, (std::vector<int>{0, 1}));  // an invalid entry matches nothing
  expect_weights(t, {ObjectSubset::kInvalid, ObjectSubset::kFn, ObjectSubset::kFn});
}

TEST(ChannelBTarget, DuplicateObjectIsFp) {
  const std::string cat = "{\"desc\": \"black cat\", \"bbox_2d\": " + box_text(120, 300, 420, 700) + "}";
  const BTarget t = target("{\"objects\": [" + cat + ", " + cat + "]}");
  EXPECT_EQ(t.match.matched.size(), 1u);
  EXPECT_EQ(t.match.fp.size(), 1u);
  std::vector<ObjectSubset> want;
  for (const auto& o : t.y_in.layout.objects) want.push_back(o.subset);
  ASSERT_EQ(want.size(), 3u);
  EXPECT_EQ(want[2], ObjectSubset::kFn);
  EXPECT_NE(want[0], want[1]);  // one matched, one FP (the solver picks which)
  expect_weights(t, want);
}

TEST(ChannelBTarget, CompactJsonSharesTokensAcrossRecordsWithoutCrashing) {
  // Compact JSON: `},{"` and `]},{"` are single Qwen tokens that belong to two records.
  const std::string rollout = "{\"objects\":[{\"desc\":\"sofa\",\"bbox_2d\":" + box_text(0, 0, 50, 50) +
                              "},{\"desc\":\"black cat\",\"bbox_2d\":" + box_text(120, 300, 420, 700) + "}]}";
  const BTarget t = target(rollout);
  bool shared = false;
  const auto& objs = t.y_in.layout.objects;
  for (size_t i = 1; i < objs.size(); ++i) shared |= objs[i].tokens.begin < objs[i - 1].tokens.end;
  EXPECT_TRUE(shared) << "the rollout should have a token covering two records: " << t.y_in.text;
  expect_weights(t, {ObjectSubset::kFp, ObjectSubset::kMatched, ObjectSubset::kFn});
}

TEST(ChannelBTarget, DescWithBraceAndQuoteIsOneString) {
  const std::string rollout = "{\"objects\": [{\"desc\": \"cat } \\\"big\\\"\", \"bbox_2d\": " +
                              box_text(120, 300, 420, 700) + "}]}";
  const BTarget t = target(rollout);
  ASSERT_EQ(t.parsed.num_valid(), 1u);
  EXPECT_EQ(t.parsed.entries[0].object.desc, "cat } \"big\"");
  expect_weights(t, {ObjectSubset::kMatched, ObjectSubset::kFn});
}

TEST(ChannelBTarget, EmptyRolloutInjectsEveryGt) {
  const BTarget t = target("{\"objects\": []}");
  EXPECT_FALSE(t.y_in.invalid_rollout);
  EXPECT_EQ(t.y_in.text, "{\"objects\": [{\"desc\": \"black cat\", \"bbox_2d\": " + box_text(110, 310, 410, 705) +
                             "}, {\"desc\": \"yellow dog\", \"bbox_2d\": " + box_text(520, 285, 890, 660) + "}]}");
  expect_weights(t, {ObjectSubset::kFn, ObjectSubset::kFn});
}

TEST(ChannelBTarget, GarbageIsAnInvalidRolloutWithTheCanonicalEmptyPrefix) {
  for (const std::string garbage : {std::string("I see a cat."), std::string("{\"obj"), std::string("")}) {
    const BTarget t = target(garbage);
    EXPECT_TRUE(t.y_in.invalid_rollout) << garbage;
    EXPECT_EQ(t.y_in.text.rfind("{\"objects\": [{\"desc\": \"black cat\"", 0), 0u) << t.y_in.text;
    expect_weights(t, {ObjectSubset::kFn, ObjectSubset::kFn});
  }
}

TEST(ChannelBTarget, OverlengthDropsTrailingFnThenPrefixButKeepsTheClosure) {
  const std::string rollout = "{\"objects\": [{\"desc\": \"black cat\", \"bbox_2d\": " + box_text(120, 300, 420, 700) + "}]}";
  const BTarget full = target(rollout);
  const auto full_len = static_cast<int64_t>(full.y_in.ids.size());
  // One token short of the full y_in: the FN dog is dropped, the matched cat stays.
  const BTarget t = target(rollout, kCatDog, true, full_len - 1);
  EXPECT_EQ(t.num_fn_dropped, 1);
  EXPECT_EQ(t.num_prefix_dropped, 0);
  EXPECT_EQ(t.y_in.ids, rollout_ids(rollout));
  expect_weights(t, {ObjectSubset::kMatched});
  // Far too short: the prefix goes too, never the closure.
  const BTarget tiny = target(rollout, kCatDog, true, 3);
  EXPECT_EQ(tiny.num_prefix_dropped, 1);
  EXPECT_EQ(tiny.y_in.text, "{\"objects\": []}");
  EXPECT_EQ(tiny.y_in.ids.back(), tok().im_end_id());
  expect_weights(tiny, {});
}

TEST(ChannelBTarget, GateCurriculumRampsLinearlyInSteps) {
  config::MatchingOptions m;
  m.min_iou = config::Ramp(0.7, 0.3, 100);
  EXPECT_DOUBLE_EQ(m.at_step(0).min_iou.value(), 0.7);
  EXPECT_DOUBLE_EQ(m.at_step(50).min_iou.value(), 0.5);
  EXPECT_DOUBLE_EQ(m.at_step(100).min_iou.value(), 0.3);
  EXPECT_DOUBLE_EQ(m.at_step(1000).min_iou.value(), 0.3);
  EXPECT_TRUE(m.at_step(50).min_iou.is_constant());
  EXPECT_DOUBLE_EQ(m.at_step(50).max_l1.value(), 1.0);  // a number: constant
  // The matcher refuses a schedule it would have to guess a step for.
  EXPECT_THROW(matching::match_objects({}, {}, m), InternalError);
  // The gate in force decides: IoU of the predicted cat vs GT is 113100 / 125400 = 0.902; a 0.95 gate
  // makes it FP.
  const std::string rollout = "{\"objects\": [{\"desc\": \"black cat\", \"bbox_2d\": " + box_text(120, 300, 420, 700) + "}]}";
  ChannelBSettings s = settings();
  config::MatchingOptions strict = s.matching;
  strict.min_iou = 0.95;
  const BTarget t = build_b_target(rollout_ids(rollout), kCatDog, tok(), s, strict, 4096);
  EXPECT_EQ(t.match.fp, (std::vector<int>{0}));
}

TEST(StepRouter, DeterministicFormula) {
  auto count_b = [](double ratio, int64_t n) {
    int64_t k = 0;
    for (int64_t s = 0; s < n; ++s) k += deterministic_is_b(s, ratio) ? 1 : 0;
    return k;
  };
  EXPECT_EQ(count_b(0.0, 1000), 0);
  EXPECT_EQ(count_b(1.0, 1000), 1000);
  EXPECT_EQ(count_b(0.05, 1000), 50);
  EXPECT_EQ(count_b(0.05, 20), 1);
  EXPECT_EQ(count_b(1.0 / 3.0, 9), 3);
  // b_ratio 0.5: steps 1, 3, 5, ... (floor((s+1)/2) > floor(s/2) exactly for odd s).
  for (int64_t s = 0; s < 10; ++s) EXPECT_EQ(deterministic_is_b(s, 0.5), s % 2 == 1) << s;
  // 0.05: step 19 is the first B (floor(20 * 0.05) = 1 > floor(19 * 0.05) = 0).
  for (int64_t s = 0; s < 19; ++s) EXPECT_FALSE(deterministic_is_b(s, 0.05)) << s;
  EXPECT_TRUE(deterministic_is_b(19, 0.05));
}

TEST(StepRouter, Stage1RunsAreAllStage1AndRatioIsTracked) {
  LocalReducer r;
  config::Stage2Options o;
  o.b_ratio = 0.25;
  StepRouter s1(false, o, r);
  EXPECT_EQ(s1.kind_for(3), StepKind::kStage1);
  StepRouter s2(true, o, r);
  std::string kinds;
  for (int64_t s = 0; s < 8; ++s) kinds += step_kind_name(s2.kind_for(s));
  EXPECT_EQ(kinds, "AAABAAAB");
  EXPECT_DOUBLE_EQ(s2.realized_b_ratio(), 0.25);
}

TEST(BSampler, EpochsArePermutationsRanksAreDisjointAndPositionResumes) {
  const int64_t n = 10;
  BSampler r0(n, 5, 0, 2, 0), r1(n, 5, 1, 2, 0);
  std::multiset<int64_t> seen;
  for (int k = 0; k < 5; ++k) {  // 5 calls x 1 per rank x 2 ranks = one epoch
    for (const auto& p : r0.next(1)) { seen.insert(p.index); EXPECT_EQ(p.epoch, 0); }
    for (const auto& p : r1.next(1)) seen.insert(p.index);
  }
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 10u);  // each sample once per epoch
  const auto next_epoch = r0.next(3);
  EXPECT_EQ(next_epoch[0].epoch, 1);
  // A sampler restored at a saved position continues identically.
  BSampler a(n, 5, 0, 1, 0);
  a.next(7);
  BSampler b(n, 5, 0, 1, a.position());
  const auto x = a.next(6), y = b.next(6);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i].index, y[i].index);
    EXPECT_EQ(x[i].epoch, y[i].epoch);
  }
  // Another seed, another order.
  BSampler c(n, 6, 0, 1, 0), d(n, 5, 0, 1, 0);
  std::vector<int64_t> oc, od;
  for (const auto& p : c.next(10)) oc.push_back(p.index);
  for (const auto& p : d.next(10)) od.push_back(p.index);
  EXPECT_NE(oc, od);
}

}  // namespace
}  // namespace coordexp::train
