// `coordexp-train eval`, `visualize` and `report` end to end (in-process, tests/common/cli_capture.h)
// on a synthetic dataset with real PNG images: predictions made from the GT boxes (one object moved,
// one line broken), metrics.json contents and exit codes (0 clean, 3 when something was skipped,
// 1 unreadable file, 2 bad arguments), the pictures and the contact sheet, and report.html of a run
// folder that holds them.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "common/cli_capture.h"
#include "coordexp/data/synthetic.h"

namespace fs = std::filesystem;
using coordexp::testing::run_cli_captured;
using nlohmann::json;

namespace {

struct Fixture {
  fs::path root;
  std::string gt;
  std::string clean_pred, broken_pred;
  int num_images = 0;
};

// Synthetic val set; predictions: every GT box (score 0.9) except that the first object of the first
// image is moved far away; the broken file adds a garbage line and a NaN box.
const Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    x.root = fs::temp_directory_path() / ("coordexp_eval_cli_" + std::to_string(::getpid()));
    fs::remove_all(x.root);
    std::atexit([] { fs::remove_all(fs::temp_directory_path() / ("coordexp_eval_cli_" + std::to_string(::getpid()))); });
    coordexp::data::SyntheticDataOptions d;
    d.out_dir = (x.root / "data").string();
    d.num_train = 1;
    d.num_val = 6;
    d.width = 96;
    d.height = 80;
    d.max_objects = 3;
    d.seed = 5;
    x.gt = coordexp::data::write_synthetic_dataset(d).val_jsonl;
    std::ifstream in(x.gt);
    std::string line, clean;
    bool first = true;
    while (std::getline(in, line)) {
      const json g = json::parse(line);
      json p = {{"images", g["images"]}, {"width", g["width"]}, {"height", g["height"]}, {"text", ""},
                {"parse_status", "complete"}, {"finish_reason", "eos"}, {"objects", json::array()}};
      for (const auto& o : g["objects"]) {
        json box = o["bbox_2d"];
        if (first) box = {0, 0, 2, 2};  // a miss and an FP
        first = false;
        p["objects"].push_back({{"desc", o["desc"]}, {"bbox_2d", box}, {"score", 0.9}});
      }
      clean += p.dump() + "\n";
      ++x.num_images;
    }
    x.clean_pred = (x.root / "pred.jsonl").string();
    std::ofstream(x.clean_pred) << clean;
    x.broken_pred = (x.root / "pred_broken.jsonl").string();
    std::ofstream(x.broken_pred) << clean << "{oops\n"
                                 << R"({"images": ["nowhere.png"], "objects": [{"desc": "x", "bbox_2d": [NaN, 0, 1, 1]}]})" << "\n";
    return x;
  }();
  return f;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

}  // namespace

TEST(EvalCli, MetricsJsonAndExitCodes) {
  const Fixture& f = fixture();
  const std::string out = (f.root / "run" / "eval" / "step_000001.json").string();
  auto r = run_cli_captured({"eval", "--gt", f.gt, "--pred", f.clean_pred, "--out", out});
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("COCO bbox"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("score-free"), std::string::npos) << r.out;
  const json m = read_json(out);
  const double ap = m["coco"]["AP"].get<double>();
  EXPECT_GT(ap, 0.5);
  EXPECT_LT(ap, 1.0);  // one object was moved away
  EXPECT_EQ(m["counts"]["gt_images"].get<int>(), f.num_images);
  EXPECT_EQ(m["score_free"]["iou50"]["location_desc"]["fn"].get<int>(), 1);
  EXPECT_EQ(m["score_free"]["iou50"]["location_desc"]["fp"].get<int>(), 1);
  EXPECT_DOUBLE_EQ(m["parse"]["success_rate"].get<double>(), 1.0);
  EXPECT_FALSE(m["problems"]["anything_skipped"].get<bool>());
  EXPECT_FALSE(m["per_category"].empty());

  // Broken file: same metrics for the good lines, the problems listed with line numbers, exit 3.
  const std::string out2 = (f.root / "run" / "eval" / "step_000002.json").string();
  r = run_cli_captured({"eval", "--gt", f.gt, "--pred", f.broken_pred, "--out", out2});
  EXPECT_EQ(r.rc, 3) << r.out << r.err;
  const json m2 = read_json(out2);
  EXPECT_DOUBLE_EQ(m2["coco"]["AP"].get<double>(), ap);
  EXPECT_EQ(m2["problems"]["by_kind"]["bad_json"]["lines"], json::array({f.num_images + 1}));
  EXPECT_EQ(m2["problems"]["by_kind"]["unknown_image"]["lines"], json::array({f.num_images + 2}));
  EXPECT_NE(r.out.find("skipped bad_json: 1"), std::string::npos) << r.out;

  EXPECT_EQ(run_cli_captured({"eval", "--gt", f.gt, "--pred", (f.root / "absent.jsonl").string()}).rc, 1);
  EXPECT_EQ(run_cli_captured({"eval", "--pred", f.clean_pred}).rc, 2);  // --gt missing
  EXPECT_EQ(run_cli_captured({"eval", "--gt", f.gt, "--pred", f.clean_pred, "--set", "a=b"}).rc, 2);
}

TEST(EvalCli, VisualizeWritesPicturesAndSheet) {
  const Fixture& f = fixture();
  const fs::path out = f.root / "run" / "vis";
  const auto r = run_cli_captured({"visualize", "--gt", f.gt, "--pred", f.clean_pred, "--out", out.string(), "--num", "4"});
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  int pngs = 0;
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().extension() == ".png" && e.path().filename() != "contact_sheet.png") {
      ++pngs;
      const cv::Mat img = cv::imread(e.path().string());
      EXPECT_EQ(img.cols, 96);
      EXPECT_EQ(img.rows, 80);
    }
  EXPECT_EQ(pngs, f.num_images);
  const cv::Mat sheet = cv::imread((out / "contact_sheet.png").string());
  ASSERT_FALSE(sheet.empty());
  EXPECT_GT(sheet.cols, 2 * 320);  // 4 images: a 2 x 2 grid of 320 px tiles
  EXPECT_LT(sheet.cols, 3 * 320);
  // Red prediction boxes are drawn: the first picture holds pure-ish red pixels.
  std::string first_line;
  std::ifstream pred_in(f.clean_pred);
  std::getline(pred_in, first_line);
  const std::string stem = fs::path(json::parse(first_line).at("images")[0].get<std::string>()).stem().string();
  const cv::Mat first = cv::imread((out / ("0000_" + stem + ".png")).string());
  ASSERT_FALSE(first.empty());
  int red = 0;
  for (int y = 0; y < first.rows; ++y)
    for (int x = 0; x < first.cols; ++x) {
      const cv::Vec3b p = first.at<cv::Vec3b>(y, x);
      red += p[2] > 200 && p[1] < 80 && p[0] < 80;
    }
  EXPECT_GT(red, 10);
  EXPECT_EQ(run_cli_captured({"visualize", "--gt", f.gt, "--pred", f.clean_pred, "--out", out.string(), "--num", "0"}).rc, 2);
}

TEST(EvalCli, ReportOfARunFolder) {
  const Fixture& f = fixture();
  const fs::path run = f.root / "run";
  // Needs the eval results and pictures of the tests above (gtest runs them in order; make sure).
  if (!fs::exists(run / "eval" / "step_000001.json")) {
    ASSERT_EQ(run_cli_captured({"eval", "--gt", f.gt, "--pred", f.clean_pred, "--out", (run / "eval" / "step_000001.json").string()}).rc, 0);
  }
  if (!fs::exists(run / "vis" / "contact_sheet.png")) {
    ASSERT_EQ(run_cli_captured({"visualize", "--gt", f.gt, "--pred", f.clean_pred, "--out", (run / "vis").string()}).rc, 0);
  }
  {
    std::ofstream m(run / "metrics.jsonl");
    for (int step = 1; step <= 10; ++step)
      m << json{{"step", step}, {"loss", 1.0 / step}, {"loss_desc_ce", 0.3 / step}, {"lr", 1e-4}, {"step_kind", "A"}}.dump() << "\n";
  }
  const auto r = run_cli_captured({"report", "--run", run.string()});
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  std::ifstream in(run / "report.html");
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("loss_desc_ce"), std::string::npos);
  EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  EXPECT_NE(html.find("step_000001"), std::string::npos);
  EXPECT_EQ(run_cli_captured({"report", "--run", (f.root / "no_such_run").string()}).rc, 1);
}
