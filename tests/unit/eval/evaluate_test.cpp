// End-to-end evaluation of JSONL inputs (eval/evaluate.h): GT through the contract reader, prediction
// lines through the tolerant reader; category normalization and unmapped descs, image matching by
// images[0] (as written or resolved), parse statistics, polygons and crowd flags from the contract,
// every problem kind with its line number, the exit code and the metrics.json layout.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "coordexp/eval/category.h"
#include "coordexp/eval/evaluate.h"

namespace ce = coordexp::eval;
namespace fs = std::filesystem;

namespace {

// A per-process scratch folder, removed at exit.
fs::path temp_dir() {
  static const fs::path d = [] {
    const fs::path p = fs::temp_directory_path() / ("coordexp_eval_unit_" + std::to_string(::getpid()));
    fs::create_directories(p);
    std::atexit([] { fs::remove_all(fs::temp_directory_path() / ("coordexp_eval_unit_" + std::to_string(::getpid()))); });
    return p;
  }();
  return d;
}

std::string write(const std::string& name, const std::string& text) {
  const fs::path p = temp_dir() / name;
  std::ofstream(p) << text;
  return p.string();
}

ce::GroundTruth gt_of(const std::string& text) {
  return ce::read_ground_truth(write("gt.jsonl", text), coordexp::data::JsonlOptions{});
}

ce::PredictionSet preds_of(const std::string& text) {
  std::istringstream in(text);
  return ce::read_predictions(in, "pred.jsonl");
}

// Line numbers recorded for a problem kind.
std::vector<int64_t> lines_of(const ce::EvalResult& r, const std::string& kind) {
  const auto it = r.problems.kinds().find(kind);
  return it == r.problems.kinds().end() ? std::vector<int64_t>{} : it->second.lines;
}

const char* kGt =
    R"({"images": ["a.jpg"], "width": 200, "height": 200, "objects": [{"desc": "Black  Cat", "bbox_2d": [0, 0, 100, 100]}, {"desc": "dog", "bbox_2d": [120, 120, 180, 180]}]})"
    "\n"
    R"({"images": ["b.jpg"], "width": 100, "height": 100, "objects": []})"
    "\n";

}  // namespace

TEST(NormalizeDesc, LowercaseTrimCollapse) {
  EXPECT_EQ(ce::normalize_desc("  Black \t  Cat\n"), "black cat");
  EXPECT_EQ(ce::normalize_desc("CAF\xC3\x89"), "caf\xC3\xA9");                  // É -> é
  EXPECT_EQ(ce::normalize_desc("red\xC2\xA0" "car"), "red car");                // NBSP is whitespace
  EXPECT_EQ(ce::normalize_desc("a\xFF" "B"), "a\xFF" "b");                       // invalid byte kept
  EXPECT_EQ(ce::normalize_desc("   "), "");
  const ce::CategoryIndex idx({"Dog", "dog ", "cat"});
  EXPECT_EQ(idx.size(), 2);
  EXPECT_EQ(idx.find("DOG"), idx.find_normalized("dog"));
  EXPECT_EQ(idx.find("dogs"), -1);
}

TEST(Evaluate, PerfectPredictionsWithNormalizedDescs) {
  const auto gt = gt_of(kGt);
  const auto preds = preds_of(
      R"({"images": ["a.jpg"], "width": 200, "height": 200, "parse_status": "complete", "finish_reason": "eos", "objects": [{"desc": "black cat", "bbox_2d": [0, 0, 100, 100], "score": 0.9}, {"desc": " DOG", "bbox_2d": [120, 120, 180, 180], "score": 0.8}]})"
      "\n"
      R"({"images": ["b.jpg"], "parse_status": "truncated", "finish_reason": "max_new_tokens", "objects": []})"
      "\n");
  const ce::EvalResult r = ce::evaluate(gt, preds);
  EXPECT_DOUBLE_EQ(r.coco.ap, 1.0);
  ASSERT_EQ(r.per_category.size(), 2u);
  EXPECT_EQ(r.per_category[0].name, "black cat");
  EXPECT_DOUBLE_EQ(r.per_category[0].ap, 1.0);
  EXPECT_EQ(r.counts.gt_images, 2);
  EXPECT_EQ(r.counts.gt_images_without_objects, 1);
  EXPECT_EQ(r.counts.predictions_unmapped, 0);
  EXPECT_DOUBLE_EQ(r.score_free.location_desc[0].f1, 1.0);
  EXPECT_DOUBLE_EQ(r.parse.success_rate, 0.5);
  EXPECT_EQ(r.parse.by_finish_reason.at("max_new_tokens"), 1);
  EXPECT_FALSE(r.anything_skipped());
  EXPECT_EQ(ce::exit_code(r), 0);

  const nlohmann::json j = ce::to_json(r);
  for (const char* k : {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"})
    EXPECT_TRUE(j["coco"].contains(k)) << k;
  EXPECT_DOUBLE_EQ(j["per_category"]["dog"].get<double>(), 1.0);
  EXPECT_EQ(j["coco"]["APs"].get<double>(), -1.0);  // no small GT
  EXPECT_TRUE(j["score_free"]["iou50"]["location_desc"].contains("f1"));
  EXPECT_EQ(j["problems"]["skipped"].get<int64_t>(), 0);
  EXPECT_NE(ce::format_summary(r).find("AP50"), std::string::npos);

  std::map<std::string, double> headline;
  for (const auto& [k, v] : ce::headline_metrics(r)) headline[k] = v;
  EXPECT_DOUBLE_EQ(headline.at("AP50"), 1.0);
  EXPECT_DOUBLE_EQ(headline.at("f1_50"), 1.0);
  EXPECT_DOUBLE_EQ(headline.at("parse_rate"), 0.5);
  EXPECT_EQ(headline.at("APs"), -1.0);
}

TEST(Evaluate, UnmappedDescsAreCountedAndListed) {
  const auto gt = gt_of(kGt);
  const auto preds = preds_of(
      R"({"images": ["a.jpg"], "objects": [{"desc": "kitten", "bbox_2d": [0, 0, 100, 100], "score": 0.9}, {"desc": "Kitten ", "bbox_2d": [0, 0, 10, 10], "score": 0.9}, {"desc": "puppy", "bbox_2d": [120, 120, 180, 180], "score": 0.8}]})"
      "\n"
      R"({"images": ["b.jpg"], "objects": []})"
      "\n");
  const ce::EvalResult r = ce::evaluate(gt, preds);
  EXPECT_EQ(r.counts.predictions_unmapped, 3);
  ASSERT_GE(r.top_unmapped.size(), 2u);
  EXPECT_EQ(r.top_unmapped[0].first, "kitten");
  EXPECT_EQ(r.top_unmapped[0].second, 2);
  EXPECT_EQ(r.coco.ap, 0.0);  // no mapped detection: GT exists, AP is 0
  // Location-only matching ignores the desc: both GT found.
  EXPECT_EQ(r.score_free.location[0].tp, 2);
  EXPECT_EQ(r.score_free.location_desc[0].tp, 0);
  EXPECT_FALSE(r.anything_skipped());  // unmapped is a result, not an input problem
}

TEST(Evaluate, ImagesMatchAsWrittenOrResolved) {
  const auto gt = gt_of(kGt);
  // The contract resolves "a.jpg" against the GT file's folder; infer may write either form.
  const std::string resolved = (temp_dir() / "a.jpg").string();
  const auto preds = preds_of("{\"images\": [\"" + resolved +
                              "\"], \"objects\": [{\"desc\": \"dog\", \"bbox_2d\": [120, 120, 180, 180], \"score\": 1}]}\n"
                              "{\"images\": [\"./b.jpg\"], \"objects\": []}\n");
  const ce::EvalResult r = ce::evaluate(gt, preds);
  EXPECT_EQ(r.counts.pred_lines_evaluated, 2);
  EXPECT_EQ(r.problems.count("unknown_image"), 0);
  EXPECT_EQ(r.problems.count("gt_image_without_prediction"), 0);
}

TEST(Evaluate, BadPredictionLinesAreCountedWithLineNumbers) {
  const auto gt = gt_of(kGt);
  const std::string text =
      "{not json\n"                                                                                   // 1
      "[1, 2]\n"                                                                                      // 2
      "{\"objects\": []}\n"                                                                           // 3 no images
      "{\"images\": [\"zzz.jpg\"], \"objects\": []}\n"                                                // 4 unknown image
      "\n"                                                                                            // 5 blank
      "{\"images\": [\"a.jpg\"], \"width\": 200, \"height\": 200, \"objects\": ["                      // 6
      "{\"desc\": \"dog\", \"bbox_2d\": [NaN, 0, 10, 10], \"score\": 0.5},"                          //   non_finite
      "{\"desc\": \"dog\", \"bbox_2d\": [0, 0, 10], \"score\": 0.5},"                                //   bad_bbox
      "{\"desc\": \"dog\", \"bbox_2d\": [50, 50, 10, 10], \"score\": 0.5},"                          //   inverted_box
      "{\"desc\": 7, \"bbox_2d\": [0, 0, 10, 10], \"score\": 0.5},"                                  //   bad_desc
      "{\"desc\": \"dog\", \"bbox_2d\": [0, 0, 10, 10], \"score\": Infinity},"                       //   non_finite
      "{\"desc\": \"dog\", \"bbox_2d\": [0, 0, 10, 10], \"score\": \"high\"},"                       //   bad_score
      "\"garbage\","                                                                                  //   bad_object
      "{\"desc\": \"dog\", \"bbox_2d\": [120, 120, 180, 250]},"                                      //   clamped, no score
      "{\"desc\": \"black cat\", \"bbox_2d\": [0, 0, 100, 100], \"score\": 0.7}]}\n"                 //   fine
      "{\"images\": [\"a.jpg\"], \"objects\": []}\n"                                                  // 7 duplicate
      "{\"images\": [\"b.jpg\"], \"width\": 640, \"height\": 100, \"objects\": []}\n"                 // 8 size mismatch
      "{\"images\": [\"b.jpg\"], \"objects\": {}}\n";                                                 // 9 bad objects
  const ce::PredictionSet preds = preds_of(text);
  EXPECT_EQ(preds.num_lines, 8);
  EXPECT_EQ(preds.num_blank_lines, 1);
  const ce::EvalResult r = ce::evaluate(gt, preds);
  EXPECT_EQ(lines_of(r, "bad_json"), std::vector<int64_t>{1});
  EXPECT_EQ(lines_of(r, "not_an_object"), std::vector<int64_t>{2});
  EXPECT_EQ(lines_of(r, "missing_images"), std::vector<int64_t>{3});
  EXPECT_EQ(lines_of(r, "unknown_image"), std::vector<int64_t>{4});
  EXPECT_EQ(lines_of(r, "non_finite"), (std::vector<int64_t>{6, 6}));
  EXPECT_EQ(lines_of(r, "bad_bbox"), std::vector<int64_t>{6});
  EXPECT_EQ(lines_of(r, "inverted_box"), std::vector<int64_t>{6});
  EXPECT_EQ(lines_of(r, "bad_desc"), std::vector<int64_t>{6});
  EXPECT_EQ(lines_of(r, "bad_score"), std::vector<int64_t>{6});
  EXPECT_EQ(lines_of(r, "bad_object"), std::vector<int64_t>{6});
  EXPECT_EQ(lines_of(r, "missing_score"), std::vector<int64_t>{6});
  EXPECT_EQ(lines_of(r, "clamped_box"), std::vector<int64_t>{6});
  EXPECT_EQ(lines_of(r, "duplicate_image"), std::vector<int64_t>{7});
  EXPECT_EQ(lines_of(r, "size_mismatch"), std::vector<int64_t>{8});
  EXPECT_EQ(lines_of(r, "bad_objects"), std::vector<int64_t>{9});
  // b.jpg ended up without a usable line: its GT line (2) is reported.
  EXPECT_EQ(lines_of(r, "gt_image_without_prediction"), std::vector<int64_t>{2});
  EXPECT_EQ(r.problems.kinds().at("clamped_box").severity, ce::Severity::kRepaired);
  EXPECT_TRUE(r.anything_skipped());
  EXPECT_EQ(ce::exit_code(r), ce::kExitSkipped);

  // The two good objects of line 6 were evaluated: both GT found (the clamped dog box
  // [120,120,180,200] has IoU 60*60/(60*80) = 0.75 with the dog GT).
  EXPECT_EQ(r.counts.predictions, 2);
  EXPECT_DOUBLE_EQ(r.score_free.location_desc[0].recall, 1.0);
  EXPECT_DOUBLE_EQ(r.coco.ap50, 1.0);
  const std::string summary = ce::format_summary(r);
  EXPECT_NE(summary.find("skipped bad_json: 1 (line 1)"), std::string::npos) << summary;
}

TEST(Evaluate, BadGtRecordsCrowdAndPolygons) {
  const std::string text =
      R"({"images": ["a.jpg"], "width": 200, "height": 200, "objects": [{"desc": "people", "bbox_2d": [0, 0, 200, 100], "crowd": true}, {"desc": "roof", "poly": [[0, 150], [100, 150], [50, 200]]}]})"
      "\n"
      R"({"images": ["b.jpg"], "width": 200, "height": 200, "objects": [{"desc": "x", "bbox_2d": [1, 2, 3]}]})"
      "\n"
      R"({"images": ["a.jpg"], "width": 200, "height": 200, "objects": []})"
      "\n";
  const auto gt = gt_of(text);
  const auto preds = preds_of(
      // Two detections inside the crowd region (ignored) and the polygon's bounding box.
      R"({"images": ["a.jpg"], "objects": [{"desc": "people", "bbox_2d": [10, 10, 40, 40], "score": 0.9}, {"desc": "people", "bbox_2d": [50, 10, 90, 60], "score": 0.9}, {"desc": "roof", "bbox_2d": [0, 150, 100, 200], "score": 0.5}]})"
      "\n");
  const ce::EvalResult r = ce::evaluate(gt, preds);
  EXPECT_EQ(lines_of(r, "gt_invalid_bad_arity"), std::vector<int64_t>{2});
  EXPECT_EQ(lines_of(r, "gt_duplicate_image"), std::vector<int64_t>{3});
  EXPECT_EQ(r.counts.gt_crowd, 1);
  EXPECT_EQ(r.counts.gt_poly_as_bbox, 1);
  EXPECT_DOUBLE_EQ(r.coco.ap, 1.0);  // roof found exactly; the people detections are ignored
  ASSERT_EQ(r.per_category.size(), 2u);
  EXPECT_EQ(r.per_category[0].name, "people");
  EXPECT_EQ(r.per_category[0].ap, -1.0);  // only crowd GT: undefined
  EXPECT_EQ(r.score_free.location_desc[0].ignored, 2);
  EXPECT_EQ(r.score_free.location_desc[0].fp, 0);
  EXPECT_EQ(r.score_free.num_gt, 1);
  EXPECT_EQ(ce::exit_code(r), ce::kExitSkipped);  // a GT record was skipped
}

TEST(Evaluate, TruncatedAndRandomBytesNeverThrow) {
  // Every prefix of a valid line, and lines of arbitrary bytes: each is parsed or counted, nothing throws.
  const std::string good =
      R"({"images": ["a.jpg"], "width": 200, "height": 200, "objects": [{"desc": "dog", "bbox_2d": [120, 120, 180, 180], "score": 0.8}]})";
  std::string text;
  for (size_t n = 0; n < good.size(); ++n) text += good.substr(0, n) + "\n";
  uint32_t state = 12345;
  for (int line = 0; line < 200; ++line) {
    std::string bytes;
    for (int k = 0; k < 40; ++k) {
      state = state * 1664525u + 1013904223u;
      const char c = static_cast<char>(state >> 24);
      bytes += c == '\n' ? ' ' : c;
    }
    text += bytes + "\n";
  }
  const auto gt = gt_of(kGt);
  ce::EvalResult r;
  ASSERT_NO_THROW(r = ce::evaluate(gt, preds_of(text)));
  EXPECT_GT(r.problems.count("bad_json"), 200);
  EXPECT_NO_THROW(ce::format_summary(r));
  EXPECT_NO_THROW(ce::to_json(r).dump());
}

TEST(Evaluate, BinGtLandsWhereInferPutsBins) {
  // GT given as coord tokens (bins): its pixels are bin_to_pixel(k) = k/999 * extent, the rule infer
  // uses for predicted bins, so predictions decoded from the same bins match exactly, for both
  // pixel_extent conventions.
  const std::string text =
      R"({"images": ["a.jpg"], "width": 640, "height": 480, "objects": [{"desc": "dog", "bbox_2d": ["<|coord_100|>", "<|coord_200|>", "<|coord_500|>", "<|coord_700|>"]}]})"
      "\n";
  for (auto extent : {coordexp::protocol::PixelExtent::kSize, coordexp::protocol::PixelExtent::kSizeMinusOne}) {
    coordexp::data::JsonlOptions options;
    options.convention.pixel_extent = extent;
    const auto gt = ce::read_ground_truth(write("bins.jsonl", text), options);
    ce::PredictionSet preds;
    ce::PredLine line;
    line.image = "a.jpg";
    ce::PredObject o;
    o.desc = "dog";
    o.xyxy = {coordexp::protocol::bin_to_pixel(100, 640, extent), coordexp::protocol::bin_to_pixel(200, 480, extent),
              coordexp::protocol::bin_to_pixel(500, 640, extent), coordexp::protocol::bin_to_pixel(700, 480, extent)};
    line.objects.push_back(o);
    preds.lines.push_back(line);
    const ce::EvalResult r = ce::evaluate(gt, preds);
    EXPECT_DOUBLE_EQ(r.score_free.matched_iou.mean, 1.0);
    EXPECT_DOUBLE_EQ(r.coco.ap, 1.0);
    // The other convention's pixels are off by up to a pixel: still a match, no longer exact.
    const auto other = extent == coordexp::protocol::PixelExtent::kSize ? coordexp::protocol::PixelExtent::kSizeMinusOne
                                                                         : coordexp::protocol::PixelExtent::kSize;
    preds.lines[0].objects[0].xyxy = {coordexp::protocol::bin_to_pixel(100, 640, other), coordexp::protocol::bin_to_pixel(200, 480, other),
                                      coordexp::protocol::bin_to_pixel(500, 640, other), coordexp::protocol::bin_to_pixel(700, 480, other)};
    EXPECT_LT(ce::evaluate(gt, preds).score_free.matched_iou.mean, 1.0);
  }
}
