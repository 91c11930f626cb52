// Prediction JSONL as written by `coordexp-train infer`: one line per image with `images`, optional
// `width`/`height`, `text`, `parse_status`, `finish_reason` and `objects: [{desc, bbox_2d
// [x1, y1, x2, y2] in pixels, score}]`. The reader never throws on line content: every malformed
// line or object is skipped and counted (eval/problems.h) with its line number; extra keys are
// ignored. Bare NaN / Infinity (Python's json.dumps writes them) only invalidate the value.
#pragma once

#include <array>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "coordexp/eval/problems.h"

namespace coordexp::eval {

struct PredObject {
  std::string desc;
  std::array<double, 4> xyxy{};  // pixels, finite, x1 <= x2, y1 <= y2
  double score = 1.0;            // 1.0 when the line gave none (counted as missing_score)
  bool has_score = true;
};

struct PredLine {
  int64_t line = 0;               // 1-based line in the file (0 when built in memory)
  std::string image;              // images[0]: the key matched against the GT's images[0]
  std::optional<int> width, height;
  std::string parse_status;       // "" when absent
  std::string finish_reason;      // "" when absent
  std::vector<PredObject> objects;
};

struct PredictionSet {
  std::string file;               // for messages ("" when built in memory)
  int64_t num_lines = 0;          // non-blank lines read
  int64_t num_blank_lines = 0;
  std::vector<PredLine> lines;    // the usable lines, in file order
  ProblemLog problems;            // what was skipped or repaired while reading
};

// Parses one line (without its newline) into `out`; false when the whole line must be skipped.
// Problems (line- and object-level) go to `problems` under `file`:`line_no`.
bool parse_prediction_line(const std::string& text, const std::string& file, int64_t line_no,
                           PredLine* out, ProblemLog* problems);

PredictionSet read_predictions(std::istream& in, const std::string& file_name);
// Throws DataError when the file cannot be opened.
PredictionSet read_predictions(const std::string& path);

}  // namespace coordexp::eval
