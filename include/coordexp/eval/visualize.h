// Pictures of predictions against GT (OpenCV): GT boxes in green, predicted boxes in red with their
// desc and score, one PNG per image, and a contact sheet of the first N images. Images come from
// the GT records' resolved images[0]; a missing or unreadable file is drawn on a grey canvas with the
// record's aspect ratio (at most 1024 px a side) and counted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "coordexp/eval/evaluate.h"

namespace coordexp::eval {

struct DrawBox {
  std::array<double, 4> xyxy{};  // pixels of the drawn image
  std::string label;              // drawn above the box ("" = none)
};

// A copy of `bgr` with GT (green, thin) and predictions (red, labelled) drawn on it.
cv::Mat draw_boxes(const cv::Mat& bgr, const std::vector<DrawBox>& gt, const std::vector<DrawBox>& pred);

// Tiles `images` (BGR) into a grid of tile x tile cells (each image fitted, aspect kept) with a
// caption strip under each and a legend line on top.
cv::Mat contact_sheet(const std::vector<cv::Mat>& images, const std::vector<std::string>& captions, int tile = 320);

struct VisualizeOptions {
  int sheet_images = 16;  // images on the contact sheet (the first ones drawn)
  int max_images = 0;     // per-image PNGs: the first max_images GT images (0 = all)
  int tile = 320;         // contact sheet cell size in pixels
};

struct VisualizeResult {
  std::vector<std::string> written;   // per-image PNG paths, in GT order
  std::string contact_sheet;          // its path ("" when no image was drawn)
  int64_t missing_image_files = 0;    // drawn on a grey canvas
  std::vector<std::string> missing_examples;  // first few paths
  ProblemLog problems;                // image/prediction matching (as in eval)
};

// Writes <out_dir>/<index>_<image stem>.png for each GT image (index = position in GT order,
// 4 digits) and <out_dir>/contact_sheet.png. Throws DataError when a PNG cannot be written.
VisualizeResult visualize(const GroundTruth& gt, const PredictionSet& preds, const std::string& out_dir,
                          const VisualizeOptions& options = {});

}  // namespace coordexp::eval
