// The run report: one self-contained report.html (inline CSS and SVG, images as base64 data URIs,
// no network) from a run directory: loss-term curves, Channel-A/B diagnostics, optimizer curves and
// training-time detection metrics from metrics.jsonl; the metrics of every eval result file and a
// before/after table; the contact sheets. File names it reads: docs/evaluation.md ("report").
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace coordexp::eval {

struct RunData {
  std::string run_dir;
  std::vector<nlohmann::json> records;  // metrics.jsonl objects, file order
  int64_t bad_metric_lines = 0;         // lines of metrics.jsonl that are not JSON objects
  // Eval result files (metrics.json of `coordexp-train eval`): label and content, sorted by path.
  std::vector<std::pair<std::string, nlohmann::json>> evals;
  std::vector<std::string> skipped_eval_files;  // *.json without a "coco" object, or unreadable
  std::vector<std::string> contact_sheets;      // PNG paths, sorted
  std::string config_yaml;                      // RUN_DIR/config.yaml (the resolved config), "" if absent
};

// Reads RUN_DIR/metrics.jsonl (absent: no curves), RUN_DIR/eval/*.json and
// RUN_DIR/eval/*/metrics.json (labels: the file stem, or the folder name for metrics.json) and
// every contact_sheet.png under RUN_DIR (at most 3 folders deep), and RUN_DIR/config.yaml (shown
// collapsed, first 200 KB). Throws DataError when run_dir is not a directory.
RunData collect_run(const std::string& run_dir);

// The report HTML.
std::string render_report(const RunData& run, size_t max_points_per_series = 1500, size_t max_sheets = 4);

// A line chart as an inline <svg>: one polyline per series (points sorted by x; non-finite skipped).
struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;
  std::string color;  // CSS color
};
std::string svg_line_chart(const std::string& title, const std::vector<ChartSeries>& series, int width = 520,
                           int height = 220);

std::string base64_encode(const std::string& bytes);
std::string html_escape(const std::string& text);

}  // namespace coordexp::eval
