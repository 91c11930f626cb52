// Drawing predictions and GT with OpenCV (see visualize.h). Labels are drawn with OpenCV's Hershey
// font, which only has ASCII glyphs: other bytes show as '?'.
#include "coordexp/eval/visualize.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "coordexp/model/vision_preprocess.h"
#include "coordexp/util/error.h"

namespace coordexp::eval {
namespace {

namespace fs = std::filesystem;

const cv::Scalar kGreen(60, 200, 60), kRed(40, 40, 230), kWhite(255, 255, 255), kDark(40, 40, 40);

std::string ascii_only(const std::string& s) {
  std::string out;
  for (unsigned char c : s) out += (c >= 32 && c < 127) ? static_cast<char>(c) : '?';
  return out;
}

// The image as training and infer see it (model::load_rgb_image: EXIF orientation applied, alpha over
// white) as 8-bit BGR for drawing; empty when the file is missing or cannot be decoded.
cv::Mat load_bgr(const std::string& path) {
  torch::Tensor rgb;
  try {
    rgb = model::load_rgb_image(path);
  } catch (const DataError&) {
    return {};
  }
  const cv::Mat view(static_cast<int>(rgb.size(0)), static_cast<int>(rgb.size(1)), CV_8UC3, rgb.data_ptr<uint8_t>());
  cv::Mat bgr;
  cv::cvtColor(view, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

cv::Point pt(double x, double y) { return cv::Point(static_cast<int>(std::lround(x)), static_cast<int>(std::lround(y))); }

// Text with a filled background box whose bottom-left corner is at `org` (kept inside the image).
void label(cv::Mat& img, const std::string& text, cv::Point org, double scale, const cv::Scalar& bg) {
  int base = 0;
  const int thick = std::max(1, static_cast<int>(std::lround(scale * 1.5)));
  const cv::Size sz = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, thick, &base);
  org.x = std::clamp(org.x, 0, std::max(0, img.cols - sz.width));
  org.y = std::clamp(org.y, sz.height + base, std::max(sz.height + base, img.rows));
  cv::rectangle(img, cv::Point(org.x, org.y - sz.height - base), cv::Point(org.x + sz.width, org.y), bg, cv::FILLED);
  cv::putText(img, text, cv::Point(org.x, org.y - base / 2), cv::FONT_HERSHEY_SIMPLEX, scale, kWhite, thick, cv::LINE_AA);
}

std::string fmt_score(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", s);
  return buf;
}

}  // namespace

cv::Mat draw_boxes(const cv::Mat& bgr, const std::vector<DrawBox>& gt, const std::vector<DrawBox>& pred) {
  cv::Mat img = bgr.clone();
  const int side = std::max(1, std::min(img.cols, img.rows));
  const int thick = std::max(1, static_cast<int>(std::lround(side / 300.0)));
  const double scale = std::clamp(side / 900.0, 0.35, 1.2);
  for (const DrawBox& b : gt)
    cv::rectangle(img, pt(b.xyxy[0], b.xyxy[1]), pt(b.xyxy[2], b.xyxy[3]), kGreen, thick + 1, cv::LINE_AA);
  for (const DrawBox& b : pred)
    cv::rectangle(img, pt(b.xyxy[0], b.xyxy[1]), pt(b.xyxy[2], b.xyxy[3]), kRed, thick, cv::LINE_AA);
  for (const DrawBox& b : pred)
    if (!b.label.empty()) label(img, ascii_only(b.label), pt(b.xyxy[0], b.xyxy[1]), scale, kRed);
  return img;
}

cv::Mat contact_sheet(const std::vector<cv::Mat>& images, const std::vector<std::string>& captions, int tile) {
  COORDEXP_CHECK(!images.empty() && images.size() == captions.size() && tile >= 32, "bad contact sheet input");
  const int n = static_cast<int>(images.size());
  const int cols = std::min(n, static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n)))));
  const int rows = (n + cols - 1) / cols;
  const int caption_h = 22, legend_h = 28, pad = 6;
  const int cell_w = tile + pad, cell_h = tile + caption_h + pad;
  cv::Mat sheet(legend_h + rows * cell_h + pad, cols * cell_w + pad, CV_8UC3, cv::Scalar(250, 250, 250));
  cv::putText(sheet, "GT: green   predictions: red (desc score)", cv::Point(pad, 20), cv::FONT_HERSHEY_SIMPLEX, 0.55,
              kDark, 1, cv::LINE_AA);
  for (int i = 0; i < n; ++i) {
    const int r = i / cols, c = i % cols;
    const int x0 = pad + c * cell_w, y0 = legend_h + r * cell_h;
    const cv::Mat& im = images[static_cast<size_t>(i)];
    cv::Mat cell(sheet, cv::Rect(x0, y0, tile, tile));
    cell.setTo(cv::Scalar(60, 60, 60));
    if (!im.empty()) {
      const double f = std::min(static_cast<double>(tile) / im.cols, static_cast<double>(tile) / im.rows);
      const int w = std::max(1, static_cast<int>(im.cols * f)), h = std::max(1, static_cast<int>(im.rows * f));
      cv::Mat fitted;
      cv::resize(im, fitted, cv::Size(w, h), 0, 0, f < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
      fitted.copyTo(cell(cv::Rect((tile - w) / 2, (tile - h) / 2, w, h)));
    }
    std::string cap = ascii_only(captions[static_cast<size_t>(i)]);
    if (cap.size() > 48) cap = cap.substr(0, 45) + "...";
    cv::putText(sheet, cap, cv::Point(x0 + 2, y0 + tile + 16), cv::FONT_HERSHEY_SIMPLEX, 0.42, kDark, 1, cv::LINE_AA);
  }
  return sheet;
}

VisualizeResult visualize(const GroundTruth& gt, const PredictionSet& preds, const std::string& out_dir,
                          const VisualizeOptions& options) {
  VisualizeResult res;
  res.problems.merge(preds.problems);
  const ImageMatching m = match_images(gt, preds, &res.problems);
  fs::create_directories(out_dir);
  std::vector<cv::Mat> sheet_images;
  std::vector<std::string> captions;
  int drawn = 0;
  for (size_t i = 0; i < gt.records.size(); ++i) {
    if (!m.gt_used[i]) continue;
    if (options.max_images > 0 && drawn >= options.max_images) break;
    const data::Record& r = gt.records[i];
    cv::Mat img = load_bgr(r.images[0]);
    if (img.empty()) {
      ++res.missing_image_files;
      if (res.missing_examples.size() < 5) res.missing_examples.push_back(r.images[0]);
      // A canvas of the record's aspect, at most 1024 px a side (the boxes are scaled to it below).
      const double f = std::min(1.0, 1024.0 / std::max(r.width, r.height));
      img = cv::Mat(std::max(1, static_cast<int>(r.height * f)), std::max(1, static_cast<int>(r.width * f)), CV_8UC3,
                    cv::Scalar(128, 128, 128));
      cv::putText(img, "image not found", cv::Point(4, std::min(img.rows - 4, 20)), cv::FONT_HERSHEY_SIMPLEX, 0.5,
                  kWhite, 1, cv::LINE_AA);
    }
    // Boxes are in the record's pixels; scale them if the file's size differs from width/height.
    const double sx = static_cast<double>(img.cols) / r.width, sy = static_cast<double>(img.rows) / r.height;
    auto scaled = [&](std::array<double, 4> b) { return std::array<double, 4>{b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy}; };
    std::vector<DrawBox> gt_boxes, pred_boxes;
    for (const auto& o : r.objects) gt_boxes.push_back({scaled(gt_pixel_box(o, r.width, r.height, gt.convention)), ""});
    const PredLine* line = m.pred_of_image[i];
    if (line)
      for (const auto& o : line->objects)
        pred_boxes.push_back({scaled(o.xyxy), o.desc + (o.has_score ? " " + fmt_score(o.score) : std::string())});
    const cv::Mat out = draw_boxes(img, gt_boxes, pred_boxes);
    char prefix[16];
    std::snprintf(prefix, sizeof prefix, "%04zu_", i);
    const std::string path = (fs::path(out_dir) / (prefix + fs::path(r.images[0]).stem().string() + ".png")).string();
    if (!cv::imwrite(path, out)) throw DataError("cannot write the picture", path, "check --out");
    res.written.push_back(path);
    ++drawn;
    if (static_cast<int>(sheet_images.size()) < options.sheet_images) {
      sheet_images.push_back(out);
      captions.push_back(fs::path(r.images[0]).filename().string() + "  gt " + std::to_string(gt_boxes.size()) +
                         " pred " + (line ? std::to_string(pred_boxes.size()) : std::string("-")));
    }
  }
  if (!sheet_images.empty()) {
    res.contact_sheet = (fs::path(out_dir) / "contact_sheet.png").string();
    if (!cv::imwrite(res.contact_sheet, contact_sheet(sheet_images, captions, options.tile)))
      throw DataError("cannot write the picture", res.contact_sheet, "check --out");
  }
  return res;
}

}  // namespace coordexp::eval
