// The run report (eval/report.h): base64 and escaping, the SVG chart, and a report of a run folder
// with metrics.jsonl (A/B steps, loss terms, Channel-B keys), two eval results and a contact sheet:
// every section present, the picture embedded, nothing fetched from the network.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>

#include "coordexp/eval/report.h"
#include "coordexp/util/error.h"

namespace ce = coordexp::eval;
namespace fs = std::filesystem;

TEST(Report, Base64AndEscape) {
  EXPECT_EQ(ce::base64_encode(""), "");
  EXPECT_EQ(ce::base64_encode("f"), "Zg==");
  EXPECT_EQ(ce::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(ce::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(ce::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(ce::base64_encode(std::string("\xff\x00\x10", 3)), "/wAQ");
  EXPECT_EQ(ce::html_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
}

TEST(Report, ChartHasOnePolylinePerSeries) {
  const std::string svg = ce::svg_line_chart("loss <total>", {{"train", {{0, 1.0}, {1, 0.5}, {2, 0.25}}, ""},
                                                             {"val", {{2, 0.4}}, ""},
                                                             {"empty", {}, ""}});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("loss &lt;total&gt;"), std::string::npos);
  size_t polylines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1)) ++polylines;
  EXPECT_EQ(polylines, 1u);                          // train; val is one point (a circle)
  EXPECT_NE(svg.find("<circle"), std::string::npos);
  EXPECT_NE(ce::svg_line_chart("nothing", {}).find("no data"), std::string::npos);
}

TEST(Report, RunFolderReport) {
  const fs::path run = fs::temp_directory_path() / ("coordexp_report_unit_" + std::to_string(::getpid()));
  fs::remove_all(run);
  fs::create_directories(run / "eval" / "vis");
  {
    std::ofstream m(run / "metrics.jsonl");
    for (int step = 1; step <= 30; ++step) {
      nlohmann::json r = {{"step", step}, {"loss", 2.0 / step}, {"loss_struct_ce", 1.0 / step},
                          {"loss_coord_dist_dfl", 0.5 / step}, {"lr", 1e-4}, {"grad_norm", 1.0 + step % 3},
                          {"step_kind", step % 3 == 0 ? "B" : "A"}};
      if (step % 3 == 0) r["b_num_matched"] = step % 5;
      if (step % 10 == 0) r["val_loss"] = 2.5 / step;
      m << r.dump() << "\n";
    }
    m << "not json\n";
  }
  auto eval_json = [](double ap) {
    return nlohmann::json{{"coco", {{"AP", ap}, {"AP50", ap + 0.2}, {"APs", -1.0}}},
                          {"per_category", {{"dog", ap}, {"cat", ap / 2}}},
                          {"score_free", {{"iou50", {{"location_desc", {{"f1", ap + 0.1}}}}}}},
                          {"problems", {{"skipped", 0}}}};
  };
  std::ofstream(run / "eval" / "step_000010.json") << eval_json(0.2).dump();
  std::ofstream(run / "eval" / "step_000030.json") << eval_json(0.4).dump();
  std::ofstream(run / "eval" / "notes.json") << "{\"hello\": 1}";
  std::ofstream(run / "config.yaml") << "train:\n  lr: 1.0e-4  # <from run.yaml>\n";
  cv::imwrite((run / "eval" / "vis" / "contact_sheet.png").string(), cv::Mat(8, 8, CV_8UC3, cv::Scalar(0, 0, 255)));

  const ce::RunData data = ce::collect_run(run.string());
  EXPECT_EQ(data.records.size(), 30u);
  EXPECT_EQ(data.bad_metric_lines, 1);
  ASSERT_EQ(data.evals.size(), 2u);
  EXPECT_EQ(data.evals[0].first, "step_000010");
  EXPECT_EQ(data.skipped_eval_files.size(), 1u);
  ASSERT_EQ(data.contact_sheets.size(), 1u);

  const std::string html = ce::render_report(data);
  for (const char* s : {"<svg", "Loss terms", "loss_struct_ce", "loss_coord_dist_dfl", "loss by step kind",
                        "share of Channel-B steps", "Channel-B diagnostics", "b_num_matched", "Optimization",
                        "Before / after", "step_000030", "+0.200", "Per category AP", "data:image/png;base64,",
                        "<details>", "# &lt;from run.yaml&gt;"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  // Self-contained: no scripts, stylesheets or images fetched from elsewhere.
  for (const char* s : {"<script", "<link", "src=\"http", "url(http", "@import"})
    EXPECT_EQ(html.find(s), std::string::npos) << s;
  // Records without the router's ratio: the share counts logged records (older metrics files).
  EXPECT_NE(html.find("among the last 20 logged records"), std::string::npos);
  // With it (the trainer logs b_ratio_realized on every stage-2 record): that ratio is charted,
  // since B steps are always logged and A steps only every log_every, which biases the count.
  auto with_ratio = data;
  for (auto& r : with_ratio.records) r["b_ratio_realized"] = 0.25;
  const std::string html2 = ce::render_report(with_ratio);
  EXPECT_NE(html2.find("realized ratio of the router"), std::string::npos);
  EXPECT_EQ(html2.find("among the last 20 logged records"), std::string::npos);
  fs::remove_all(run);
  EXPECT_THROW(ce::collect_run(run.string()), coordexp::DataError);
}

// Eval results are ordered by when they were written, not by name: the demo's eval/stage1 (before
// Stage-2), the trainer's eval/step-<N> (during) and eval/stage2 (after) sort by name as stage1,
// stage2, step-N, which made "after" the mid-run eval. Equal times fall back to the name.
TEST(Report, EvalsInTheOrderTheyWereWritten) {
  const fs::path run = fs::temp_directory_path() / ("coordexp_report_order_" + std::to_string(::getpid()));
  fs::remove_all(run);
  auto write_eval = [&](const std::string& name, double ap, int hours_after) {
    fs::create_directories(run / "eval" / name);
    const fs::path f = run / "eval" / name / "metrics.json";
    std::ofstream(f) << nlohmann::json{{"coco", {{"AP", ap}, {"AP50", ap}}}}.dump();
    fs::last_write_time(f, fs::file_time_type::clock::now() - std::chrono::hours(24) + std::chrono::hours(hours_after));
  };
  write_eval("stage2", 0.3, 2);
  write_eval("step-000060", 0.2, 1);
  write_eval("stage1", 0.1, 0);
  ce::RunData data = ce::collect_run(run.string());
  ASSERT_EQ(data.evals.size(), 3u);
  EXPECT_EQ(data.evals[0].first, "stage1");
  EXPECT_EQ(data.evals[1].first, "step-000060");
  EXPECT_EQ(data.evals[2].first, "stage2");
  const std::string html = ce::render_report(data);
  const auto before_after = html.find("Before / after");
  ASSERT_NE(before_after, std::string::npos);
  const std::string table = html.substr(before_after, html.find("</table>", before_after) - before_after);
  EXPECT_NE(table.find("stage1"), std::string::npos) << table;
  EXPECT_NE(table.find("stage2"), std::string::npos) << table;
  EXPECT_EQ(table.find("step-000060"), std::string::npos) << table;
  // Same time: by name.
  for (const char* name : {"stage1", "stage2", "step-000060"})
    fs::last_write_time(run / "eval" / name / "metrics.json", fs::file_time_type::clock::now());
  const fs::file_time_type t = fs::last_write_time(run / "eval" / "stage1" / "metrics.json");
  for (const char* name : {"stage2", "step-000060"}) fs::last_write_time(run / "eval" / name / "metrics.json", t);
  data = ce::collect_run(run.string());
  ASSERT_EQ(data.evals.size(), 3u);
  EXPECT_EQ(data.evals[0].first, "stage1");
  EXPECT_EQ(data.evals[1].first, "stage2");
  EXPECT_EQ(data.evals[2].first, "step-000060");
  fs::remove_all(run);
}
