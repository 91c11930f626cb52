// The JSONL data contract: every validation rule (message names file:line, object index and rule),
// both invalid-record policies, both pixel conventions and box roundings, c_gt next to each bin,
// coordinate kinds, fixes counters, image resolution, object order and the check-data command.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "common/cli_capture.h"
#include "coordexp/data/jsonl.h"
#include "coordexp/util/error.h"

namespace {

using namespace coordexp;
using data::JsonlOptions;
using data::RecordRule;
namespace fs = std::filesystem;

JsonlOptions no_io_options() {
  JsonlOptions o;
  o.check_images = false;
  return o;
}

data::ValidationResult validate(const std::string& line, const JsonlOptions& o = no_io_options()) {
  data::RecordContext ctx;
  ctx.file = "set.jsonl";
  ctx.line = 7;
  return data::validate_record(line, ctx, o);
}

std::string rec(const std::string& objects, const std::string& extra = "") {
  return R"({"images": ["a.jpg"], "width": 1000, "height": 500, "objects": [)" + objects + "]" +
         extra + "}";
}

struct RuleCase {
  std::string line;
  RecordRule rule;
  std::string message_part;
};

TEST(JsonlContract, EveryRuleHasAnErrorNamingLineObjectAndRule) {
  const std::string ok = R"({"desc": "cat", "bbox_2d": [1, 2, 3, 4]})";
  const std::vector<RuleCase> cases = {
      {"{\"images\": [\"a.jpg\"], ", RecordRule::kBadJson, "not valid JSON at byte"},
      {rec(R"({"desc": "cat", "bbox_2d": [NaN, 2, 3, 4]})"), RecordRule::kNonFinite, "NaN/Infinity"},
      {rec(R"({"desc": "cat", "bbox_2d": [1e999, 2, 3, 4]})"), RecordRule::kNonFinite, ""},
      {rec(R"({"desc": "cat", "desc": "dog", "bbox_2d": [1, 2, 3, 4]})"), RecordRule::kDuplicateKey, "key 'desc' appears twice"},
      {"[1, 2]", RecordRule::kNotAnObject, "not a JSON object"},
      {rec("[1, 2]"), RecordRule::kNotAnObject, "objects[0] is not a JSON object"},
      {R"({"images": ["a.jpg"], "width": 10, "objects": []})", RecordRule::kMissingField, "missing 'height'"},
      {rec(R"({"bbox_2d": [1, 2, 3, 4]})"), RecordRule::kMissingField, "objects[0]: missing 'desc'"},
      {rec(ok, R"(, "label": 3)"), RecordRule::kUnknownField, "unknown key 'label'"},
      {rec(ok + R"(, {"desc": "x", "bbox_2d": [1, 2, 3, 4], "score": 1})"), RecordRule::kUnknownField, "objects[1]: unknown key 'score'"},
      {R"({"images": "a.jpg", "width": 10, "height": 10, "objects": []})", RecordRule::kWrongType, "images must be a list"},
      {R"({"images": [3], "width": 10, "height": 10, "objects": []})", RecordRule::kWrongType, "non-empty path strings"},
      {R"({"images": ["a.jpg"], "width": 10, "height": 10, "objects": {}})", RecordRule::kWrongType, "objects must be a list"},
      {rec(R"({"desc": 5, "bbox_2d": [1, 2, 3, 4]})"), RecordRule::kWrongType, "objects[0].desc must be a string"},
      {rec(R"({"desc": "a", "bbox_2d": 5})"), RecordRule::kWrongType, "objects[0].bbox_2d must be a list"},
      {rec(R"({"desc": "a", "bbox_2d": [1, 2, 3, 4], "crowd": 1})"), RecordRule::kWrongType, "crowd must be true or false"},
      {rec(ok, R"(, "summary": 3)"), RecordRule::kWrongType, "summary must be a string"},
      {R"({"images": ["a.jpg"], "width": 640.5, "height": 10, "objects": []})", RecordRule::kBadImageSize, "width must be an integer >= 1"},
      {R"({"images": ["a.jpg"], "width": 10, "height": 0, "objects": []})", RecordRule::kBadImageSize, "height must be an integer >= 1"},
      {R"({"images": [], "width": 10, "height": 10, "objects": []})", RecordRule::kNoImages, "images is empty"},
      {rec(R"({"desc": " \t", "bbox_2d": [1, 2, 3, 4]})"), RecordRule::kEmptyDesc, "objects[0].desc is empty"},
      {rec(R"({"desc": "cat <|im_end|>", "bbox_2d": [1, 2, 3, 4]})"), RecordRule::kSpecialTokenInDesc, "special-token text"},
      {rec(R"({"desc": "cat"})"), RecordRule::kNoGeometry, "neither bbox_2d nor poly"},
      {rec(R"({"desc": "cat", "bbox_2d": [1, 2, 3, 4], "poly": [1, 2, 3, 4, 5, 6]})"), RecordRule::kTwoGeometries, "both bbox_2d and poly"},
      {rec(ok + R"(, {"desc": "x", "bbox_2d": [1, 2, 3]})"), RecordRule::kBadArity, "objects[1].bbox_2d: 3 values; bbox_2d needs exactly 4"},
      {rec(R"({"desc": "x", "poly": [1, 2, 3, 4, 5]})"), RecordRule::kBadArity, "poly needs an even number >= 6"},
      {rec(R"({"desc": "x", "poly": [1, 2, 3, 4]})"), RecordRule::kBadArity, "4 values"},
      {rec(R"({"desc": "x", "poly": [1, 2, 3, 4, 5, 6], "poly_points": 4})"), RecordRule::kBadPolyPoints, "poly_points is 4 but poly has 3 points"},
      {rec(R"({"desc": "x", "bbox_2d": [1, 2, 3, 4], "poly_points": 2})"), RecordRule::kBadPolyPoints, "poly_points without poly"},
      {rec(R"({"desc": "x", "bbox_2d": [1, 2, "3", 4]})"), RecordRule::kBadCoordValue, "objects[0].bbox_2d[2]: '3' is neither a number nor <|coord_k|>"},
      {rec(R"({"desc": "x", "bbox_2d": [1, 2, null, 4]})"), RecordRule::kBadCoordValue, "null is not a coordinate"},
      {rec(R"({"desc": "x", "bbox_2d": ["<|coord_1|>", 2, "<|coord_3|>", 4]})"), RecordRule::kBadCoordValue, "mixes coord tokens and numbers"},
      {rec(R"({"desc": "x", "bbox_2d": ["<|coord_01|>", "<|coord_2|>", "<|coord_3|>", "<|coord_4|>"]})"), RecordRule::kBadCoordValue, "<|coord_01|>"},
      {rec(R"({"desc": "x", "bbox_2d": ["<|coord_1|>", "<|coord_2|>", "<|coord_1000|>", "<|coord_4|>"]})"), RecordRule::kCoordTokenOutOfRange, "outside <|coord_0|>..<|coord_999|>"},
      {rec(R"({"desc": "x", "bbox_2d": [[[[[[1]]]]], 2, 3, 4]})"), RecordRule::kWrongType, "nested deeper"},
  };
  std::set<RecordRule> covered;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.line);
    const auto r = validate(c.line);
    ASSERT_TRUE(r.error.has_value());
    EXPECT_FALSE(r.record.has_value());
    EXPECT_EQ(r.error->rule, c.rule) << data::record_rule_name(r.error->rule) << ": " << r.error->message();
    EXPECT_EQ(r.error->where, "set.jsonl:7");
    EXPECT_NE(r.error->message().find(c.message_part), std::string::npos) << r.error->message();
    EXPECT_FALSE(r.error->hint.empty());
    covered.insert(c.rule);
  }
  // Rules that need options or files are covered below (swapped_box, missing_image, pixel-mode
  // tokens); every other rule must have a case here.
  for (int i = 0; i <= static_cast<int>(RecordRule::kMissingImage); ++i) {
    const auto rule = static_cast<RecordRule>(i);
    if (rule == RecordRule::kSwappedBox || rule == RecordRule::kMissingImage) continue;
    EXPECT_TRUE(covered.count(rule)) << "no case for " << data::record_rule_name(rule);
  }

  JsonlOptions pixel = no_io_options();
  pixel.coords = data::CoordsMode::kPixel;
  auto r = validate(rec(R"({"desc": "x", "bbox_2d": ["<|coord_1|>", "<|coord_2|>", "<|coord_3|>", "<|coord_4|>"]})"), pixel);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->rule, RecordRule::kBadCoordValue);
  EXPECT_NE(r.error->what.find("data.coords=pixel"), std::string::npos);

  JsonlOptions minus_one = no_io_options();
  minus_one.convention.pixel_extent = protocol::PixelExtent::kSizeMinusOne;
  r = validate(R"({"images": ["a.jpg"], "width": 1, "height": 10, "objects": []})", minus_one);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->rule, RecordRule::kBadImageSize);
  EXPECT_NE(r.error->what.find(">= 2"), std::string::npos);
}

TEST(JsonlContract, ValidRecordKeepsBinsAndContinuousValues) {
  const auto r = validate(rec(
      R"({"desc": "cat \"tom\" é", "bbox_2d": [100, 50, 500.5, 250], "crowd": true},)"
      R"({"desc": "tok", "bbox_2d": ["<|coord_0|>", "<|coord_10|>", "<|coord_999|>", "<|coord_20|>"]},)"
      R"({"desc": "poly", "poly": [[0, 0], [1000, 0], [500, 500]], "poly_points": 3})",
      R"(, "summary": "s", "metadata": {"src": "coco", "id": 5})"));
  ASSERT_TRUE(r.record) << r.error->message();
  const data::Record& rec0 = *r.record;
  EXPECT_EQ(rec0.width, 1000);
  EXPECT_EQ(rec0.height, 500);
  EXPECT_EQ(rec0.summary, "s");
  EXPECT_EQ(rec0.metadata_json, R"({"id":5,"src":"coco"})");
  EXPECT_EQ(rec0.source, "set.jsonl:7");
  ASSERT_EQ(rec0.objects.size(), 3u);
  const auto& cat = rec0.objects[0];
  EXPECT_EQ(cat.desc, "cat \"tom\" é");
  EXPECT_TRUE(cat.crowd);
  // Pixel source (W=1000, H=500, extent = size): c = x / W, bin = round(999 c).
  const double expect_c[4] = {0.1, 0.1, 0.5005, 0.5};
  const int expect_bin[4] = {100, 100, 500, 500};  // 99.9, 99.9, 499.9995, 499.5 -> even
  for (int i = 0; i < 4; ++i) {
    EXPECT_DOUBLE_EQ(cat.coords[i].c_gt, expect_c[i]) << i;
    EXPECT_EQ(cat.coords[i].bin, expect_bin[i]) << i;
  }
  // Bin source: bins as written, c_gt = k / 999.
  const auto& tok = rec0.objects[1];
  const int tok_bins[4] = {0, 10, 999, 20};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(tok.coords[i].bin, tok_bins[i]);
    EXPECT_DOUBLE_EQ(tok.coords[i].c_gt, tok_bins[i] / 999.0);
  }
  // Nested point lists are flattened.
  const auto& poly = rec0.objects[2];
  EXPECT_EQ(poly.kind, protocol::GeometryKind::kPoly);
  EXPECT_EQ(poly.to_protocol().bins, (std::vector<int>{0, 0, 999, 0, 500, 999}));
  EXPECT_EQ(r.fixes.swapped_boxes, 0);
  EXPECT_EQ(r.fixes.clamped_coords, 0);
}

TEST(JsonlContract, PixelConventionsAndBoxRounding) {
  const std::string line = rec(R"({"desc": "a", "bbox_2d": [0.4, 1.2, 999, 499]})");
  auto bins_of = [&](protocol::PixelExtent e, protocol::BoxRounding b) {
    JsonlOptions o = no_io_options();
    o.convention = {e, b};
    const auto r = validate(line, o);
    EXPECT_TRUE(r.record);
    std::vector<double> c;
    for (const auto& v : r.record->objects[0].coords) c.push_back(v.c_gt);
    return std::make_pair(r.record->objects[0].to_protocol().bins, c);
  };
  using protocol::BoxRounding;
  using protocol::PixelExtent;
  // size: c = (0.0004, 0.0024, 0.999, 0.998) -> 999c = (0.3996, 2.3976, 998.001, 997.002)
  auto [b1, c1] = bins_of(PixelExtent::kSize, BoxRounding::kRound);
  EXPECT_EQ(b1, (std::vector<int>{0, 2, 998, 997}));
  EXPECT_DOUBLE_EQ(c1[2], 0.999);
  auto [b2, c2] = bins_of(PixelExtent::kSize, BoxRounding::kOutward);
  EXPECT_EQ(b2, (std::vector<int>{0, 2, 999, 998}));
  // size_minus_one: c = (0.4/999, 1.2/499, 1, 1) -> 999c = (0.4, 2.4024, 999, 999)
  auto [b3, c3] = bins_of(PixelExtent::kSizeMinusOne, BoxRounding::kRound);
  EXPECT_EQ(b3, (std::vector<int>{0, 2, 999, 999}));
  EXPECT_DOUBLE_EQ(c3[0], 0.4 / 999.0);
  EXPECT_DOUBLE_EQ(c3[3], 1.0);
  auto [b4, c4] = bins_of(PixelExtent::kSizeMinusOne, BoxRounding::kOutward);
  EXPECT_EQ(b4, (std::vector<int>{0, 2, 999, 999}));
  (void)c2;
  (void)c4;
}

TEST(JsonlContract, FixesAreCountedOrRejectedPerPolicy) {
  const std::string swapped = rec(R"({"desc": "a", "bbox_2d": [500, 400, 100, 100]})");
  auto r = validate(swapped);
  ASSERT_TRUE(r.record);
  EXPECT_EQ(r.fixes.swapped_boxes, 1);
  EXPECT_EQ(r.record->objects[0].to_protocol().bins, (std::vector<int>{100, 200, 500, 799}));

  JsonlOptions reject = no_io_options();
  reject.swapped_box = data::SwappedBoxPolicy::kReject;
  r = validate(swapped, reject);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->rule, RecordRule::kSwappedBox);
  EXPECT_NE(r.error->what.find("objects[0].bbox_2d: x2 < x1"), std::string::npos);

  // Outside the image: clamped to [0, W] / [0, H] and counted per coordinate.
  r = validate(rec(R"({"desc": "a", "bbox_2d": [-5, 10, 1200, 600]})"));
  ASSERT_TRUE(r.record);
  EXPECT_EQ(r.fixes.clamped_coords, 3);
  EXPECT_EQ(r.record->objects[0].to_protocol().bins, (std::vector<int>{0, 20, 999, 999}));
  EXPECT_DOUBLE_EQ(r.record->objects[0].coords[2].c_gt, 1.0);

  // norm1000 numbers are bins: round, clamp into [0, 999], c_gt = v / 999.
  JsonlOptions norm = no_io_options();
  norm.coords = data::CoordsMode::kNorm1000;
  r = validate(rec(R"({"desc": "a", "bbox_2d": [10, 20.4, 1005, 998.5]})"), norm);
  ASSERT_TRUE(r.record);
  EXPECT_EQ(r.fixes.clamped_coords, 1);
  EXPECT_EQ(r.record->objects[0].to_protocol().bins, (std::vector<int>{10, 20, 999, 998}));
  EXPECT_DOUBLE_EQ(r.record->objects[0].coords[1].c_gt, 20.4 / 999.0);
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("coordexp_jsonl_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
             "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    const fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(JsonlFileRead, PoliciesImagesAndSummary) {
  TempDir dir;
  dir.write("img/a.jpg", "x");
  dir.write("root/img/b.jpg", "x");
  const std::string good = R"({"images": ["img/a.jpg"], "width": 10, "height": 10, "objects": [{"desc": "a", "bbox_2d": [1, 2, 3, 4]}, {"desc": "p", "poly": [1, 1, 5, 1, 5, 5], "crowd": true}]})";
  const std::string missing = R"({"images": ["img/nope.jpg"], "width": 10, "height": 10, "objects": []})";
  const std::string arity = R"({"images": ["img/a.jpg"], "width": 10, "height": 10, "objects": [{"desc": "a", "bbox_2d": [1, 2, 3]}]})";
  const std::string swapped = R"({"images": ["img/a.jpg"], "width": 10, "height": 10, "objects": [{"desc": "a", "bbox_2d": [3, 2, 1, 4]}]})";
  const std::string path =
      dir.write("set.jsonl", good + "\n\n" + missing + "\r\n" + arity + "\n" + swapped + "\n");

  JsonlOptions opt;
  try {
    data::read_jsonl(path, opt);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(e.where(), path + ":3");
    EXPECT_NE(e.message().find("image file not found"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("[rule missing_image]"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("data.image_root"), std::string::npos);
  }

  opt.on_invalid = data::InvalidPolicy::kSkip;
  const data::JsonlFile f = data::read_jsonl(path, opt);
  ASSERT_EQ(f.records.size(), 2u);
  EXPECT_EQ(f.records[0].images[0], (dir.path() / "img/a.jpg").string());
  EXPECT_EQ(f.records[1].source, path + ":5");
  const auto& s = f.summary;
  EXPECT_EQ(s.num_lines, 5);
  EXPECT_EQ(s.num_blank_lines, 1);
  EXPECT_EQ(s.num_valid, 2);
  EXPECT_EQ(s.num_invalid, 2);
  EXPECT_EQ(s.invalid_by_rule, (std::map<std::string, int64_t>{{"bad_arity", 1}, {"missing_image", 1}}));
  EXPECT_EQ(s.num_objects, 3);
  EXPECT_EQ(s.num_bbox, 2);
  EXPECT_EQ(s.num_poly, 1);
  EXPECT_EQ(s.num_crowd, 1);
  EXPECT_EQ(s.fixes.swapped_boxes, 1);
  ASSERT_EQ(s.first_errors.size(), 2u);
  EXPECT_NE(s.first_errors[1].find(path + ":4: objects[0].bbox_2d: 3 values"), std::string::npos);
  const std::string text = s.format();
  EXPECT_NE(text.find("invalid records: 2\n  bad_arity: 1\n  missing_image: 1\n"), std::string::npos) << text;

  // data.image_root replaces the JSONL folder for relative paths.
  opt.image_root = (dir.path() / "root").string();
  const std::string rooted = dir.write(
      "sub/rooted.jsonl", R"({"images": ["img/b.jpg"], "width": 4, "height": 4, "objects": []})" "\n");
  EXPECT_EQ(data::read_jsonl(rooted, opt).records.at(0).images[0], (dir.path() / "root/img/b.jpg").string());

  EXPECT_THROW(data::read_jsonl((dir.path() / "none.jsonl").string(), opt), DataError);
}

// A file long enough to be validated in parallel chunks (read_jsonl): records, counts, the listed
// errors and the error thrown are those of a sequential read, in file order.
TEST(JsonlFileRead, ParallelChunksKeepFileOrder) {
  TempDir dir;
  dir.write("img/a.jpg", "x");
  std::string text;
  constexpr int kLines = 20000;  // > 2 chunks
  for (int i = 1; i <= kLines; ++i) {
    if (i % 997 == 0)
      text += R"({"images": ["img/a.jpg"], "width": 10, "height": 10, "objects": [{"desc": "bad", "bbox_2d": [1, 2]}]})";
    else
      text += R"({"images": ["img/a.jpg"], "width": 10, "height": 10, "objects": [{"desc": "d)" + std::to_string(i) +
              R"(", "bbox_2d": [1, 2, 3, 4]}]})";
    text += "\n";
  }
  const std::string path = dir.write("long.jsonl", text);
  JsonlOptions opt;
  opt.on_invalid = data::InvalidPolicy::kSkip;
  const data::JsonlFile f = data::read_jsonl(path, opt);
  const int invalid = kLines / 997;
  ASSERT_EQ(f.records.size(), static_cast<size_t>(kLines - invalid));
  size_t k = 0;
  for (int i = 1; i <= kLines; ++i) {
    if (i % 997 == 0) continue;
    const auto& r = f.records[k++];
    ASSERT_EQ(r.source, path + ":" + std::to_string(i));
    ASSERT_EQ(r.objects.at(0).desc, "d" + std::to_string(i));
  }
  EXPECT_EQ(f.summary.num_invalid, invalid);
  ASSERT_FALSE(f.summary.first_errors.empty());
  EXPECT_EQ(f.summary.first_errors[0].rfind(path + ":997:", 0), 0u) << f.summary.first_errors[0];
  EXPECT_EQ(f.summary.first_errors[1].rfind(path + ":1994:", 0), 0u) << f.summary.first_errors[1];
  opt.on_invalid = data::InvalidPolicy::kError;
  try {
    data::read_jsonl(path, opt);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_EQ(e.where(), path + ":997");
  }
}

data::GtObject box(double x1, double y1, const std::string& desc = "o") {
  data::GtObject g;
  g.desc = desc;
  g.coords = {protocol::coord_from_bin(static_cast<int>(x1)), protocol::coord_from_bin(static_cast<int>(y1)),
              protocol::coord_from_bin(999), protocol::coord_from_bin(999)};
  return g;
}

TEST(ObjectOrder, SortedAsIsRandom) {
  std::vector<data::GtObject> objs = {box(50, 30), box(10, 30), box(5, 10), box(10, 30)};
  data::GtObject poly;
  poly.kind = protocol::GeometryKind::kPoly;
  for (int k : {400, 40, 3, 20, 500, 9}) poly.coords.push_back(protocol::coord_from_bin(k));
  objs.push_back(poly);  // key (min y 9, min x 3)
  using data::ObjectOrder;
  EXPECT_EQ(data::object_order(objs, ObjectOrder::kSorted, 0, 0), (std::vector<size_t>{4, 2, 1, 3, 0}));
  EXPECT_EQ(data::object_order(objs, ObjectOrder::kAsIs, 0, 0), (std::vector<size_t>{0, 1, 2, 3, 4}));

  std::vector<data::GtObject> many(30, box(1, 1));
  const auto a = data::object_order(many, ObjectOrder::kRandom, 77, 3);
  EXPECT_EQ(a, data::object_order(many, ObjectOrder::kRandom, 77, 3));
  EXPECT_NE(a, data::object_order(many, ObjectOrder::kRandom, 77, 4));
  EXPECT_NE(a, data::object_order(many, ObjectOrder::kRandom, 78, 3));
  std::vector<size_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) EXPECT_EQ(sorted[i], i);

  EXPECT_EQ(data::fn_injection_order(ObjectOrder::kRandom), ObjectOrder::kSorted);
  EXPECT_EQ(data::fn_injection_order(ObjectOrder::kSorted), ObjectOrder::kSorted);
  EXPECT_EQ(data::fn_injection_order(ObjectOrder::kAsIs), ObjectOrder::kAsIs);
  EXPECT_THROW(data::object_order_from_name("shuffled"), ConfigError);
}

TEST(DataConfig, ValidateNamesTheKey) {
  config::DataOptions d;
  d.validate();
  d.on_invalid = "ignore";
  try {
    d.validate();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where(), "key data.on_invalid");
    EXPECT_NE(e.hint().find("error|skip"), std::string::npos);
  }
  config::ProtocolOptions p;
  p.pixel_extent = "width";
  EXPECT_THROW(p.validate(), ConfigError);
}

int run_cli_capture(const std::vector<std::string>& args, std::string* out) {
  const auto r = coordexp::testing::run_cli_captured(args);
  *out = r.out;
  return r.rc;
}

TEST(CheckData, PrintsSummaryAndExitCode) {
  TempDir dir;
  dir.write("a.jpg", "x");
  const std::string good = dir.write(
      "good.jsonl", R"({"images": ["a.jpg"], "width": 8, "height": 8, "objects": [{"desc": "a", "bbox_2d": [1, 2, 9, 4]}]})" "\n");
  const std::string bad = dir.write(
      "bad.jsonl", R"({"images": ["a.jpg"], "width": 8, "height": 8, "objects": [{"desc": "", "bbox_2d": [1, 2, 3, 4]}]})" "\n");
  std::string out;
  EXPECT_EQ(run_cli_capture({"check-data", good}, &out), 0);
  EXPECT_NE(out.find("valid records: 1\ninvalid records: 0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("clamped coordinates 1"), std::string::npos) << out;
  EXPECT_NE(out.find("check-data: all records valid"), std::string::npos) << out;

  EXPECT_EQ(run_cli_capture({"check-data", good, bad}, &out), 1);
  EXPECT_NE(out.find("empty_desc: 1"), std::string::npos) << out;
  EXPECT_NE(out.find(bad + ":1: objects[0].desc is empty"), std::string::npos) << out;
  EXPECT_NE(out.find("INVALID"), std::string::npos) << out;

  // --config: the data/protocol sections apply; a bad value is a config error (exit 2).
  const std::string cfg = dir.write("run.yaml", "data:\n  coords: pixel\nprotocol:\n  pixel_extent: size_minus_one\n");
  EXPECT_EQ(run_cli_capture({"check-data", good, "--config", cfg}, &out), 0) << out;
  const std::string bad_cfg = dir.write("bad.yaml", "data:\n  on_invalid: maybe\n");
  EXPECT_EQ(run_cli_capture({"check-data", good, "--config", bad_cfg}, &out), 2);
  EXPECT_EQ(run_cli_capture({"check-data", (dir.path() / "missing.jsonl").string()}, &out), 1);
  EXPECT_NE(out.find("cannot open the JSONL file"), std::string::npos) << out;
}

}  // namespace
