// Detection evaluation of predictions against GT records of the JSONL data contract: maps prediction
// lines to GT images by images[0], descs to open-vocabulary categories (eval/category.h), runs the
// COCO evaluation (eval/coco.h) and the score-free metrics (eval/score_free.h), counts parse
// statuses and every problem with the input. `to_json` is the metrics.json layout of
// `coordexp-train eval`; docs/evaluation.md describes every rule and field.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordexp/data/jsonl.h"
#include "coordexp/eval/coco.h"
#include "coordexp/eval/predictions.h"
#include "coordexp/eval/problems.h"
#include "coordexp/eval/score_free.h"

namespace coordexp::eval {

// GT for evaluation: valid contract records plus, per record, the images[0] string as written in
// the file (predictions may name the image either way: as written, or resolved).
struct GroundTruth {
  std::string file;                    // "" when built in memory
  std::vector<data::Record> records;
  std::vector<std::string> raw_images;  // per record: images[0] as written ("" = unknown)
  data::JsonlSummary summary;           // what the contract reader counted
  ProblemLog problems;                  // invalid records (skipped) and contract repairs, by line
  protocol::CoordConvention convention; // bins/c_gt -> pixels (protocol.pixel_extent)
  static GroundTruth from_records(std::vector<data::Record> records,
                                  protocol::CoordConvention convention = {});
};

// Reads a GT JSONL with the contract reader (docs/data/JSONL_CONTRACT.md). Invalid records are
// skipped and counted whatever `options.on_invalid` says; images are not opened. Throws DataError
// when the file cannot be read.
GroundTruth read_ground_truth(const std::string& path, data::JsonlOptions options);

// Pixel box [x1, y1, x2, y2] of a GT object: a bbox as given, a polygon by its bounding box.
std::array<double, 4> gt_pixel_box(const data::GtObject& object, int width, int height,
                                   const protocol::CoordConvention& convention);

// Which prediction line belongs to which GT record, by images[0] (compared after lexical path
// normalization, against the GT's images[0] as written and as resolved). A second GT record of the
// same image is not used; prediction lines for unknown images, second lines for an image and lines
// whose width/height differ from the GT's are left out. Each case is added to `problems`.
struct ImageMatching {
  std::vector<uint8_t> gt_used;                 // per GT record: 0 for a duplicate image
  std::vector<const PredLine*> pred_of_image;  // per GT record: its prediction line or nullptr
};
ImageMatching match_images(const GroundTruth& gt, const PredictionSet& preds, ProblemLog* problems);

struct EvalOptions {
  size_t max_listed_unmapped = 20;  // top unmapped prediction descs listed
};

struct ParseStats {
  int64_t num_lines = 0;                    // evaluated prediction lines
  int64_t num_with_status = 0;              // lines that carry parse_status
  std::map<std::string, int64_t> by_status;  // parse_status -> lines
  std::map<std::string, int64_t> by_finish_reason;
  double success_rate = -1;                 // "complete" / num_with_status; -1 when none
};

struct EvalCounts {
  int64_t gt_images = 0;
  int64_t gt_images_without_objects = 0;
  int64_t gt_objects = 0;           // including crowd
  int64_t gt_crowd = 0;
  int64_t gt_poly_as_bbox = 0;      // polygon GT evaluated by their bounding box
  int64_t pred_lines = 0;           // non-blank lines in the prediction file
  int64_t pred_lines_evaluated = 0;
  int64_t predictions = 0;          // objects of the evaluated lines
  int64_t predictions_unmapped = 0; // desc not a GT category: not in COCO AP, FP for location+desc
};

struct CategoryStat {
  std::string name;
  double ap = -1, ap50 = -1;
  int64_t num_gt = 0;
  int64_t num_pred = 0;
};

struct EvalResult {
  CocoStats coco;
  std::vector<CategoryStat> per_category;  // sorted by name
  ScoreFreeResult score_free;
  ParseStats parse;
  EvalCounts counts;
  std::vector<std::pair<std::string, int64_t>> top_unmapped;  // normalized desc, count; most first
  ProblemLog problems;
  std::string gt_file, pred_file;
  bool anything_skipped() const { return problems.any_skipped(); }
};

// Evaluates `preds` against `gt`. Never throws on prediction content: problems are counted in
// EvalResult::problems (together with those already in preds.problems and the GT summary).
EvalResult evaluate(const GroundTruth& gt, const PredictionSet& preds, const EvalOptions& options = {});

// metrics.json: {"coco": {...}, "per_category": {desc: AP}, "score_free": {...}, "parse": {...},
// "categories": {...}, "counts": {...}, "problems": {...}, "inputs": {...}}.
nlohmann::json to_json(const EvalResult& result);

// Scalar headline numbers for logs (the train-time hook prefixes them, e.g. "eval_AP50"): the 12 COCO
// names, then f1_50, precision_50, recall_50, f1_30 (location+desc), f1_50_loc (location only),
// parse_rate, count_ratio, duplicate_rate, matched_iou_mean. Undefined values are -1.
std::vector<std::pair<std::string, double>> headline_metrics(const EvalResult& result);

// The human-readable summary `coordexp-train eval` prints (COCO table, score-free table, problems).
std::string format_summary(const EvalResult& result);

// Exit status of `coordexp-train eval` for a finished evaluation: 0, or 3 when anything was skipped.
inline constexpr int kExitSkipped = 3;
int exit_code(const EvalResult& result);

}  // namespace coordexp::eval
