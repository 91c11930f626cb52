// Channel-B matching (B2): box geometry against hand-computed values, table-driven hand-made cases
// with their expected ValidMatched / FP / FN (seed 12's example, gates at their exact boundaries,
// text cost and gate, polygons), the partition invariants on random inputs, the parse bridge and the
// config keys named by validate().
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "coordexp/config/sections/channel_b.h"
#include "coordexp/matching/matcher.h"
#include "coordexp/protocol/parse.h"
#include "coordexp/util/error.h"

namespace {

using namespace coordexp::matching;
using coordexp::config::MatchingOptions;
using coordexp::protocol::GeometryKind;

MatchObject box(const std::string& desc, double x1, double y1, double x2, double y2) {
  return match_object_from_norm(desc, GeometryKind::kBbox, {x1, y1, x2, y2});
}

std::vector<std::pair<int, int>> pairs(const MatchResult& r) {
  std::vector<std::pair<int, int>> out;
  for (const auto& m : r.matched) out.emplace_back(m.pred, m.gt);
  return out;
}

// Every prediction in exactly one of matched / fp, every GT in exactly one of matched / fn, lists
// ascending, accepted pairs pass the gates and rejected ones fail them.
void expect_partition(const MatchResult& r, size_t num_preds, size_t num_gts, const MatchingOptions& o) {
  std::vector<int> pred_seen(num_preds, 0), gt_seen(num_gts, 0);
  for (const auto& m : r.matched) {
    ++pred_seen.at(m.pred);
    ++gt_seen.at(m.gt);
    EXPECT_GE(m.iou, o.min_iou.value());
    EXPECT_LE(m.l1, o.max_l1.value());
  }
  for (int p : r.fp) ++pred_seen.at(p);
  for (int g : r.fn) ++gt_seen.at(g);
  for (size_t p = 0; p < num_preds; ++p) EXPECT_EQ(pred_seen[p], 1) << "prediction " << p;
  for (size_t g = 0; g < num_gts; ++g) EXPECT_EQ(gt_seen[g], 1) << "gt " << g;
  for (const auto& m : r.rejected) {
    EXPECT_TRUE(std::count(r.fp.begin(), r.fp.end(), m.pred) == 1);
    EXPECT_TRUE(std::count(r.fn.begin(), r.fn.end(), m.gt) == 1);
    EXPECT_TRUE(m.iou < o.min_iou.value() || m.l1 > o.max_l1.value() || o.text_gate);
  }
  auto by_pred = [](const MatchedPair& a, const MatchedPair& b) { return a.pred < b.pred; };
  EXPECT_TRUE(std::is_sorted(r.matched.begin(), r.matched.end(), by_pred));
  EXPECT_TRUE(std::is_sorted(r.rejected.begin(), r.rejected.end(), by_pred));
  EXPECT_TRUE(std::is_sorted(r.fp.begin(), r.fp.end()));
  EXPECT_TRUE(std::is_sorted(r.fn.begin(), r.fn.end()));
}

TEST(MatchingBox, IouGiouL1AndBoundingBoxes) {
  const Box unit{0, 0, 1, 1}, left{0, 0, 0.5, 1}, far{2, 0, 3, 1};
  EXPECT_EQ(iou(unit, left), 0.5);
  EXPECT_EQ(giou(unit, left), 0.5);  // the enclosing box is the union
  EXPECT_EQ(mean_l1(unit, left), 0.125);
  EXPECT_EQ(iou(unit, far), 0.0);
  EXPECT_DOUBLE_EQ(giou(unit, far), -1.0 / 3.0);  // C = 3, U = 2
  EXPECT_DOUBLE_EQ(iou(Box{0, 0, 2, 2}, Box{1, 1, 3, 3}), 1.0 / 7.0);
  // Degenerate boxes (one bin drawn twice) keep IoU 1 with themselves and 0 with a disjoint one.
  const Box line{0.3, 0.1, 0.3, 0.6};
  EXPECT_NEAR(iou(line, line), 1.0, 1e-12);
  EXPECT_EQ(iou(line, Box{0.5, 0.1, 0.6, 0.6}), 0.0);
  // Bounding boxes: swapped corners and polygon vertices.
  EXPECT_EQ(bounding_box({0.8, 0.9, 0.2, 0.1}), (Box{0.2, 0.1, 0.8, 0.9}));
  EXPECT_EQ(bounding_box({0.5, 0.1, 0.9, 0.5, 0.5, 0.9, 0.1, 0.5}), (Box{0.1, 0.1, 0.9, 0.9}));
  EXPECT_THROW(bounding_box({0.1, 0.2, 0.3}), coordexp::InternalError);
  EXPECT_EQ(normalize_desc("  Black \t CAT\n"), "black cat");
  EXPECT_EQ(normalize_desc("Äpfel  x"), "Äpfel x");  // non-ASCII bytes untouched
}

struct Case {
  const char* name;
  std::vector<MatchObject> preds, gts;
  MatchingOptions options;
  std::vector<std::pair<int, int>> matched;
  std::vector<int> fp, fn;
  size_t rejected = 0;
};

MatchingOptions with(void (*edit)(MatchingOptions&)) {
  MatchingOptions o;
  edit(o);
  return o;
}

TEST(Matcher, HandMadeCases) {
  using coordexp::protocol::Object;
  const auto bins = [](const std::string& d, std::vector<int> b) {
    return match_object_from_bins(Object{d, GeometryKind::kBbox, std::move(b)});
  };
  const auto poly = [](const std::string& d, std::vector<double> xy) {
    return match_object_from_norm(d, GeometryKind::kPoly, xy);
  };
  // Seed section 12: GT cat/dog and the rollout's slightly shifted boxes.
  const MatchObject cat_gt = bins("black cat", {110, 310, 410, 705}), dog_gt = bins("yellow dog", {520, 285, 890, 660});
  const MatchObject cat = bins("black cat", {120, 300, 420, 700}), dog = bins("yellow dog", {500, 280, 880, 650});
  const MatchObject unit = box("a", 0, 0, 1, 1), half = box("a", 0, 0, 0.5, 1);
  const MatchObject sq = poly("kite", {0.5, 0.1, 0.9, 0.5, 0.5, 0.9, 0.1, 0.5});  // bbox (0.1, 0.1, 0.9, 0.9)

  const std::vector<Case> cases = {
      {"seed_example", {cat, dog}, {cat_gt, dog_gt}, {}, {{0, 0}, {1, 1}}, {}, {}},
      {"rollout_order_differs", {dog, cat}, {cat_gt, dog_gt}, {}, {{0, 1}, {1, 0}}, {}, {}},
      {"extra_prediction_is_fp", {cat, box("x", 0.9, 0.0, 1.0, 0.1), dog}, {cat_gt, dog_gt}, {},
       {{0, 0}, {2, 1}}, {1}, {}},
      {"missing_prediction_is_fn", {dog}, {cat_gt, dog_gt}, {}, {{0, 1}}, {}, {0}},
      {"no_predictions", {}, {cat_gt, dog_gt}, {}, {}, {}, {0, 1}},
      {"no_gt", {cat, dog}, {}, {}, {}, {0, 1}, {}},
      {"nothing", {}, {}, {}, {}, {}, {}},
      {"duplicate_predictions_earliest_wins", {cat, dog, cat}, {cat_gt, dog_gt}, {}, {{0, 0}, {1, 1}}, {2}, {}},
      {"duplicate_gt_earliest_wins", {cat}, {cat_gt, cat_gt}, {}, {{0, 0}}, {}, {1}},
      // Gates at their exact boundaries: IoU(unit, half) = 0.5 and mean L1 = 0.125 exactly.
      {"iou_gate_boundary_accepts", {half}, {unit}, with([](MatchingOptions& o) { o.min_iou = 0.5; }),
       {{0, 0}}, {}, {}},
      {"iou_gate_just_above_rejects", {half}, {unit}, with([](MatchingOptions& o) { o.min_iou = 0.5000001; }),
       {}, {0}, {0}, 1},
      {"l1_gate_boundary_accepts", {half}, {unit}, with([](MatchingOptions& o) { o.max_l1 = 0.125; }),
       {{0, 0}}, {}, {}},
      {"l1_gate_just_below_rejects", {half}, {unit}, with([](MatchingOptions& o) { o.max_l1 = 0.1249999; }),
       {}, {0}, {0}, 1},
      {"gates_off_accept_disjoint", {box("a", 0, 0, 0.1, 0.1)}, {box("a", 0.8, 0.8, 0.9, 0.9)},
       with([](MatchingOptions& o) { o.min_iou = 0.0; }), {{0, 0}}, {}, {}},
      // A gated-out pair does not free its GT for another prediction: the assignment is global.
      {"gated_pair_leaves_both_unmatched", {box("a", 0, 0, 0.1, 0.1), cat}, {box("a", 0.8, 0.8, 0.9, 0.9), cat_gt},
       {}, {{1, 1}}, {0}, {0}, 1},
      // Text: equal geometry, only descs decide.
      {"text_gate_normalized_equal", {box(" Cat ", 0, 0, 1, 1)}, {box("cat", 0, 0, 1, 1)},
       with([](MatchingOptions& o) { o.text_gate = true; }), {{0, 0}}, {}, {}},
      {"text_gate_rejects_other_desc", {box("dog", 0, 0, 1, 1)}, {box("cat", 0, 0, 1, 1)},
       with([](MatchingOptions& o) { o.text_gate = true; }), {}, {0}, {0}, 1},
      {"geometry_only_ignores_desc", {box("dog", 0, 0, 0.5, 0.5), box("cat", 0.5, 0.5, 1, 1)},
       {box("cat", 0, 0, 0.5, 0.5), box("dog", 0.5, 0.5, 1, 1)}, with([](MatchingOptions& o) { o.min_iou = 0; }),
       {{0, 0}, {1, 1}}, {}, {}},
      {"text_cost_flips_assignment", {box("dog", 0, 0, 0.5, 0.5), box("cat", 0.5, 0.5, 1, 1)},
       {box("cat", 0, 0, 0.5, 0.5), box("dog", 0.5, 0.5, 1, 1)},
       with([](MatchingOptions& o) { o.min_iou = 0; o.cost_text = 5.0; }), {{0, 1}, {1, 0}}, {}, {}},
      // Polygons take part through their bounding box; bbox <-> poly pairs only with cross_kind.
      {"poly_matches_poly", {poly("kite", {0.1, 0.1, 0.9, 0.1, 0.5, 0.9})}, {sq}, {}, {{0, 0}}, {}, {}},
      {"bbox_vs_poly_forbidden", {box("kite", 0.1, 0.1, 0.9, 0.9)}, {sq}, {}, {}, {0}, {0}, 0},
      {"bbox_vs_poly_cross_kind", {box("kite", 0.1, 0.1, 0.9, 0.9)}, {sq},
       with([](MatchingOptions& o) { o.cross_kind = true; }), {{0, 0}}, {}, {}},
      {"kinds_pair_up_separately", {sq, box("a", 0.1, 0.1, 0.9, 0.9)}, {box("a", 0.1, 0.1, 0.9, 0.9), sq}, {},
       {{0, 1}, {1, 0}}, {}, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const MatchResult r = match_objects(c.preds, c.gts, c.options);
    EXPECT_EQ(pairs(r), c.matched);
    EXPECT_EQ(r.fp, c.fp);
    EXPECT_EQ(r.fn, c.fn);
    EXPECT_EQ(r.rejected.size(), c.rejected);
    expect_partition(r, c.preds.size(), c.gts.size(), c.options);
  }
  // The matched pair carries its IoU, L1 and cost (default cost: l1 + (1 - giou)).
  const MatchResult r = match_objects({half}, {unit}, MatchingOptions{});
  ASSERT_EQ(r.matched.size(), 1u);
  EXPECT_EQ(r.matched[0].iou, 0.5);
  EXPECT_EQ(r.matched[0].l1, 0.125);
  EXPECT_EQ(r.matched[0].cost, 0.125 + 0.5);
}

TEST(Matcher, CostMatrixTerms) {
  MatchingOptions o;
  o.cost_l1 = 2.0;
  o.cost_iou = 3.0;
  o.cost_text = 0.25;
  const std::vector<MatchObject> preds = {box("Cat", 0, 0, 0.5, 1), box("dog", 2, 0, 3, 1)};
  const std::vector<MatchObject> gts = {box("cat", 0, 0, 1, 1)};
  CostMatrix m = build_cost_matrix(preds, gts, o);
  ASSERT_EQ(m.rows, 2);
  ASSERT_EQ(m.cols, 1);
  EXPECT_DOUBLE_EQ(m.at(0, 0), 2.0 * 0.125 + 3.0 * 0.5);                      // descs equal after normalizing
  EXPECT_DOUBLE_EQ(m.at(1, 0), 2.0 * 1.0 + 3.0 * (1.0 + 1.0 / 3.0) + 0.25);  // L1 (2+0+2+0)/4, GIoU -1/3
  o.cost_iou_kind = "iou";
  m = build_cost_matrix(preds, gts, o);
  EXPECT_DOUBLE_EQ(m.at(1, 0), 2.0 * 1.0 + 3.0 * 1.0 + 0.25);
}

TEST(Matcher, PartitionHoldsOnRandomScenes) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::uniform_int_distribution<int> count(0, 8), kind(0, 3), word(0, 2);
  const char* words[] = {"cat", "dog", "Cat "};
  int matched = 0, fp = 0, fn = 0, rejected = 0;
  for (int t = 0; t < 300; ++t) {
    auto scene = [&](int n) {
      std::vector<MatchObject> out;
      for (int i = 0; i < n; ++i) {
        const double x = u(rng), y = u(rng), w = u(rng), h = u(rng);
        const GeometryKind k = kind(rng) == 0 ? GeometryKind::kPoly : GeometryKind::kBbox;
        const std::vector<double> pts = k == GeometryKind::kBbox
                                            ? std::vector<double>{x, y, w, h}
                                            : std::vector<double>{x, y, w, h, u(rng), u(rng)};
        out.push_back(match_object_from_norm(words[word(rng)], k, pts));
      }
      return out;
    };
    const auto gts = scene(count(rng));
    auto preds = scene(count(rng));
    for (const auto& g : gts)  // near-copies of some GT so that matches happen
      if (u(rng) < 0.5) preds.push_back(box(g.desc, g.box[0], g.box[1], std::min(1.0, g.box[2] + 0.02), g.box[3]));
    MatchingOptions o;
    o.min_iou = 0.3 * (t % 3);
    o.max_l1 = t % 2 ? 1.0 : 0.2;
    o.text_gate = t % 5 == 0;
    o.cross_kind = t % 7 == 0;
    o.cost_text = t % 4 == 0 ? 1.0 : 0.0;
    SCOPED_TRACE("scene " + std::to_string(t));
    const MatchResult r = match_objects(preds, gts, o);
    expect_partition(r, preds.size(), gts.size(), o);
    const MatchResult again = match_objects(preds, gts, o);
    EXPECT_EQ(pairs(again), pairs(r));
    EXPECT_EQ(again.fp, r.fp);
    matched += r.matched.size();
    fp += r.fp.size();
    fn += r.fn.size();
    rejected += r.rejected.size();
  }
  EXPECT_GT(matched, 100);  // every outcome actually occurs
  EXPECT_GT(fp, 100);
  EXPECT_GT(fn, 100);
  EXPECT_GT(rejected, 20);
}

TEST(Matcher, PredictionsFromParseKeepValidEntriesWithTheirIndex) {
  const auto parsed = coordexp::protocol::parse_text(
      "{\"objects\": [{\"desc\": \"cat\", \"bbox_2d\": [<|coord_999|>, <|coord_0|>, <|coord_0|>, <|coord_999|>]}, "
      "{\"desc\": \"bad\", \"bbox_2d\": [1, 2, 3, 4]}, "
      "{\"desc\": \"kite\", \"poly\": [<|coord_0|>, <|coord_0|>, <|coord_999|>, <|coord_0|>, <|coord_0|>, "
      "<|coord_999|>]}, {\"desc\": \"cut");
  ASSERT_EQ(parsed.entries.size(), 4u);
  const Predictions p = predictions_from_parse(parsed);
  EXPECT_EQ(p.entry_index, (std::vector<int32_t>{0, 2}));
  ASSERT_EQ(p.objects.size(), 2u);
  EXPECT_EQ(p.objects[0].desc, "cat");
  EXPECT_EQ(p.objects[0].box, (Box{0.0, 0.0, 1.0, 1.0}));  // swapped corners canonicalized
  EXPECT_EQ(p.objects[1].kind, GeometryKind::kPoly);
  EXPECT_EQ(p.objects[1].box, (Box{0.0, 0.0, 1.0, 1.0}));
  EXPECT_DOUBLE_EQ(match_object_from_bins({"x", GeometryKind::kBbox, {0, 999, 500, 999}}).box[2], 500.0 / 999.0);
}

TEST(Matcher, SetPrefixSubsetsFromTheMatch) {
  // Entries: 0 valid (matched), 1 invalid, 2 valid (gated out), 3 valid (unassigned); then one FN.
  Predictions preds;
  preds.objects = {box("a", 0, 0, 0.5, 0.5), box("b", 0, 0, 0.1, 0.1), box("c", 0.6, 0.6, 0.7, 0.7)};
  preds.entry_index = {0, 2, 3};
  const std::vector<MatchObject> gts = {box("a", 0, 0, 0.5, 0.5), box("b", 0.8, 0.8, 0.9, 0.9)};
  MatchingOptions o;
  o.cost_text = 10.0;  // forces b -> b (then gated out by IoU 0)
  const MatchResult r = match_objects(preds.objects, gts, o);
  ASSERT_EQ(pairs(r), (std::vector<std::pair<int, int>>{{0, 0}}));
  ASSERT_EQ(r.fp, (std::vector<int>{1, 2}));
  ASSERT_EQ(r.fn, (std::vector<int>{1}));
  ASSERT_EQ(r.rejected.size(), 1u);

  using coordexp::protocol::ObjectSource;
  using coordexp::protocol::ObjectSubset;
  coordexp::protocol::YIn y_in;
  for (int e = 0; e < 4; ++e) {
    coordexp::protocol::ObjectSpan obj;
    obj.subset = e == 1 ? ObjectSubset::kInvalid : ObjectSubset::kUnassigned;
    y_in.layout.objects.push_back(obj);
    y_in.origins.push_back({ObjectSource::kRolloutPrefix, e});
  }
  coordexp::protocol::ObjectSpan fn;
  fn.subset = ObjectSubset::kFn;
  y_in.layout.objects.push_back(fn);
  y_in.origins.push_back({ObjectSource::kInjectedFn, 0});
  set_prefix_subsets(y_in, preds, r, gts);
  std::vector<ObjectSubset> got;
  for (const auto& obj : y_in.layout.objects) got.push_back(obj.subset);
  EXPECT_EQ(got, (std::vector<ObjectSubset>{ObjectSubset::kMatched, ObjectSubset::kInvalid, ObjectSubset::kFp,
                                            ObjectSubset::kFp, ObjectSubset::kFn}));
  // The matched prediction (a) carries its GT's box as the geometry target; the others none.
  EXPECT_EQ(y_in.layout.objects[0].gt_box, gts[0].box);
  EXPECT_EQ(y_in.layout.objects[2].gt_box, (Box{0, 0, 0, 0}));
  y_in.layout.objects[1].subset = ObjectSubset::kUnassigned;  // an entry that is not a prediction
  EXPECT_THROW(set_prefix_subsets(y_in, preds, r, gts), coordexp::InternalError);
}

TEST(MatchingOptions, ValidateNamesTheKey) {
  EXPECT_NO_THROW(MatchingOptions{}.validate());
  const std::vector<std::pair<void (*)(MatchingOptions&), std::string>> bad = {
      {[](MatchingOptions& o) { o.cost_l1 = -1; }, "channel_b.matching.cost_l1"},
      {[](MatchingOptions& o) { o.cost_iou = std::nan(""); }, "channel_b.matching.cost_iou"},
      {[](MatchingOptions& o) { o.cost_text = -0.5; }, "channel_b.matching.cost_text"},
      {[](MatchingOptions& o) { o.cost_l1 = o.cost_iou = o.cost_text = 0; }, "channel_b.matching.cost_l1"},
      {[](MatchingOptions& o) { o.cost_iou_kind = "ciou"; }, "channel_b.matching.cost_iou_kind"},
      {[](MatchingOptions& o) { o.min_iou = 1.5; }, "channel_b.matching.min_iou"},
      {[](MatchingOptions& o) { o.max_l1 = -0.1; }, "channel_b.matching.max_l1"},
  };
  for (const auto& [edit, key] : bad) {
    MatchingOptions o;
    edit(o);
    try {
      o.validate();
      ADD_FAILURE() << "expected a ConfigError naming " << key;
    } catch (const coordexp::ConfigError& e) {
      EXPECT_EQ(e.where(), "key " + key);
    }
    EXPECT_THROW(match_objects({}, {}, o), coordexp::ConfigError);
  }
}

}  // namespace
