// Detection evaluation of a prediction set against GT records (see evaluate.h): image and category
// mapping, box repairs, the COCO and score-free metrics, parse statistics, metrics.json and the
// printed summary.
#include "coordexp/eval/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "coordexp/eval/category.h"
#include "coordexp/protocol/parse.h"
#include "coordexp/util/error.h"

namespace coordexp::eval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Paths compare after lexical normalization ("./a//b" == "a/b").
std::string path_key(const std::string& p) {
  if (p.empty()) return p;
  std::string s = fs::path(p).lexically_normal().generic_string();
  while (s.size() > 2 && s.compare(0, 2, "./") == 0) s.erase(0, 2);
  return s;
}

// The line number at the end of a Record::source ("file.jsonl:17"), 0 when there is none.
int64_t line_of(const std::string& source) {
  const size_t colon = source.rfind(':');
  if (colon == std::string::npos) return 0;
  try {
    return std::stoll(source.substr(colon + 1));
  } catch (...) {
    return 0;
  }
}

std::string fmt(double v, int digits = 3) {
  if (v < 0) return "-1";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string pct(double v) { return v < 0 ? "n/a" : fmt(100.0 * v, 1) + "%"; }

}  // namespace

std::array<double, 4> gt_pixel_box(const data::GtObject& o, int width, int height, const protocol::CoordConvention& conv) {
  double x1 = 1e300, y1 = 1e300, x2 = -1e300, y2 = -1e300;
  for (size_t i = 0; i + 1 < o.coords.size(); i += 2) {
    const double x = protocol::norm_to_pixel(o.coords[i].c_gt, width, conv.pixel_extent);
    const double y = protocol::norm_to_pixel(o.coords[i + 1].c_gt, height, conv.pixel_extent);
    x1 = std::min(x1, x), x2 = std::max(x2, x), y1 = std::min(y1, y), y2 = std::max(y2, y);
  }
  if (o.coords.size() < 4) return {0, 0, 0, 0};
  return {x1, y1, x2, y2};
}

GroundTruth GroundTruth::from_records(std::vector<data::Record> records, protocol::CoordConvention convention) {
  GroundTruth gt;
  gt.records = std::move(records);
  gt.convention = convention;
  for (const auto& r : gt.records) gt.raw_images.push_back(r.images.empty() ? "" : r.images[0]);
  gt.summary.num_valid = static_cast<int64_t>(gt.records.size());
  return gt;
}

GroundTruth read_ground_truth(const std::string& path, data::JsonlOptions options) {
  options.on_invalid = data::InvalidPolicy::kSkip;
  options.check_images = false;  // evaluation never opens images
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot open the GT JSONL file", path, "check --gt (a file of the JSONL data contract)");
  GroundTruth gt;
  gt.file = path;
  gt.convention = options.convention;
  data::JsonlSummary& s = gt.summary;
  s.file = path;
  data::RecordContext ctx;
  ctx.file = path;
  ctx.jsonl_dir = fs::path(path).parent_path().string();
  std::string line;
  while (std::getline(in, line)) {
    ctx.line = ++s.num_lines;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t\r\n\v\f") == std::string::npos) {
      ++s.num_blank_lines;
      continue;
    }
    data::ValidationResult v = data::validate_record(line, ctx, options);
    if (v.error) {
      gt.problems.add(std::string("gt_invalid_") + data::record_rule_name(v.error->rule), Severity::kSkipped, path,
                      ctx.line, v.error->what + " (hint: " + v.error->hint + "; record skipped)");
      ++s.num_invalid;
      ++s.invalid_by_rule[data::record_rule_name(v.error->rule)];
      if (s.first_errors.size() < data::JsonlSummary::kMaxListedErrors)
        s.first_errors.push_back(v.error->message() + " [rule " + data::record_rule_name(v.error->rule) + "]");
      continue;
    }
    ++s.num_valid;
    s.fixes.swapped_boxes += v.fixes.swapped_boxes;
    s.fixes.clamped_coords += v.fixes.clamped_coords;
    for (int64_t k = 0; k < v.fixes.swapped_boxes; ++k)
      gt.problems.add("gt_swapped_box", Severity::kRepaired, path, ctx.line, "x2 < x1 or y2 < y1: the pair was swapped");
    for (int64_t k = 0; k < v.fixes.clamped_coords; ++k)
      gt.problems.add("gt_clamped_coord", Severity::kRepaired, path, ctx.line, "a coordinate outside the image was clamped");
    for (const auto& o : v.record->objects) {
      ++s.num_objects;
      (o.kind == protocol::GeometryKind::kBbox ? s.num_bbox : s.num_poly)++;
      s.num_crowd += o.crowd ? 1 : 0;
    }
    // images[0] as written: the record is valid, so this parse succeeds and images[0] is a string.
    const json j = json::parse(line, nullptr, false);
    std::string raw;
    if (j.is_object() && j.contains("images") && j["images"].is_array() && !j["images"].empty() && j["images"][0].is_string())
      raw = j["images"][0].get<std::string>();
    gt.raw_images.push_back(raw);
    gt.records.push_back(std::move(*v.record));
  }
  if (in.bad()) throw DataError("read error", path, "check the file system");
  return gt;
}

int exit_code(const EvalResult& result) { return result.anything_skipped() ? kExitSkipped : 0; }

ImageMatching match_images(const GroundTruth& gt, const PredictionSet& preds, ProblemLog* problems_out) {
  ProblemLog& problems = *problems_out;
  const std::string gt_name = gt.file.empty() ? "gt" : gt.file;
  const std::string pred_name = preds.file.empty() ? "predictions" : preds.file;
  ImageMatching matching;
  // GT images by key; a second record for the same image is skipped.
  const size_t N = gt.records.size();
  std::unordered_map<std::string, size_t> image_of_key;
  std::vector<uint8_t>& gt_used = matching.gt_used;
  gt_used.assign(N, 1);
  for (size_t i = 0; i < N; ++i) {
    const data::Record& r = gt.records[i];
    const std::string resolved = path_key(r.images.empty() ? "" : r.images[0]);
    const std::string raw = path_key(i < gt.raw_images.size() ? gt.raw_images[i] : "");
    bool duplicate = false;
    for (const std::string& k : {resolved, raw}) {
      const auto it = k.empty() ? image_of_key.end() : image_of_key.find(k);
      if (it != image_of_key.end() && it->second != i) duplicate = true;
    }
    if (duplicate) {
      gt_used[i] = 0;
      problems.add("gt_duplicate_image", Severity::kSkipped, gt_name, line_of(r.source),
                   "a second GT record for image " + r.images[0] + " (record skipped)");
      continue;
    }
    for (const std::string& k : {resolved, raw})
      if (!k.empty()) image_of_key.emplace(k, i);
  }

  // Prediction lines -> GT images.
  std::vector<const PredLine*>& pred_of_image = matching.pred_of_image;
  pred_of_image.assign(N, nullptr);
  for (const PredLine& line : preds.lines) {
    const auto it = image_of_key.find(path_key(line.image));
    if (it == image_of_key.end()) {
      problems.add("unknown_image", Severity::kSkipped, pred_name, line.line,
                   "image " + line.image + " is not in the GT file (line skipped)");
      continue;
    }
    const size_t i = it->second;
    const data::Record& r = gt.records[i];
    if (pred_of_image[i]) {
      problems.add("duplicate_image", Severity::kSkipped, pred_name, line.line,
                   "a second prediction line for image " + line.image + " (first at line " +
                       std::to_string(pred_of_image[i]->line) + "; line skipped)");
      continue;
    }
    if ((line.width && *line.width != r.width) || (line.height && *line.height != r.height)) {
      problems.add("size_mismatch", Severity::kSkipped, pred_name, line.line,
                   "width x height " + std::to_string(line.width.value_or(r.width)) + "x" +
                       std::to_string(line.height.value_or(r.height)) + " differs from the GT's " +
                       std::to_string(r.width) + "x" + std::to_string(r.height) + " (line skipped)");
      continue;
    }
    pred_of_image[i] = &line;
  }

  return matching;
}

EvalResult evaluate(const GroundTruth& gt, const PredictionSet& preds, const EvalOptions& options) {
  EvalResult res;
  res.gt_file = gt.file;
  res.pred_file = preds.file;
  ProblemLog& problems = res.problems;
  const std::string gt_name = gt.file.empty() ? "gt" : gt.file;
  const std::string pred_name = preds.file.empty() ? "predictions" : preds.file;

  problems.merge(gt.problems);
  problems.merge(preds.problems);

  const size_t N = gt.records.size();
  const ImageMatching matching = match_images(gt, preds, &problems);
  const std::vector<uint8_t>& gt_used = matching.gt_used;
  const std::vector<const PredLine*>& pred_of_image = matching.pred_of_image;

  // Categories: the normalized descs of the GT objects.
  std::vector<std::string> gt_descs;
  for (size_t i = 0; i < N; ++i)
    if (gt_used[i])
      for (const auto& o : gt.records[i].objects) gt_descs.push_back(o.desc);
  const CategoryIndex categories(gt_descs);
  const int K = categories.size();

  // Per-image inputs of the two evaluations.
  std::vector<CocoImage> coco_images;
  std::vector<ScoreFreeImage> sf_images;
  std::map<std::string, int> desc_keys;
  std::map<std::string, int64_t> unmapped;
  std::vector<int64_t> pred_per_category(static_cast<size_t>(K), 0);
  EvalCounts& counts = res.counts;
  counts.pred_lines = preds.num_lines;
  for (size_t i = 0; i < N; ++i) {
    if (!gt_used[i]) continue;
    const data::Record& r = gt.records[i];
    ++counts.gt_images;
    counts.gt_images_without_objects += r.objects.empty() ? 1 : 0;
    CocoImage ci;
    ScoreFreeImage si;
    for (const auto& o : r.objects) {
      const auto b = gt_pixel_box(o, r.width, r.height, gt.convention);
      const CocoBox box = coco_box_from_xyxy(b[0], b[1], b[2], b[3]);
      const int cat = categories.find(o.desc);
      ci.gts.push_back(CocoGt{box, cat, o.crowd});
      si.gt.push_back(box);
      si.gt_category.push_back(cat);
      si.gt_crowd.push_back(o.crowd ? 1 : 0);
      ++counts.gt_objects;
      counts.gt_crowd += o.crowd ? 1 : 0;
      counts.gt_poly_as_bbox += o.kind == protocol::GeometryKind::kPoly ? 1 : 0;
    }
    const PredLine* line = pred_of_image[i];
    if (!line) {
      problems.add("gt_image_without_prediction", Severity::kSkipped, gt_name, line_of(r.source),
                   "no prediction line for image " + r.images[0] + " (evaluated as no detections)");
    } else {
      ++counts.pred_lines_evaluated;
      ParseStats& ps = res.parse;
      ++ps.num_lines;
      if (!line->parse_status.empty()) {
        ++ps.num_with_status;
        ++ps.by_status[line->parse_status];
      }
      if (!line->finish_reason.empty()) ++ps.by_finish_reason[line->finish_reason];
      for (size_t k = 0; k < line->objects.size(); ++k) {
        const PredObject& o = line->objects[k];
        std::array<double, 4> b = o.xyxy;
        const std::array<double, 4> hi = {double(r.width), double(r.height), double(r.width), double(r.height)};
        bool clamped = false;
        for (size_t c = 0; c < 4; ++c) {
          const double v = std::clamp(b[c], 0.0, hi[c]);
          clamped |= v != b[c];
          b[c] = v;
        }
        if (clamped) {
          char what[160];
          std::snprintf(what, sizeof what, "objects[%zu]: bbox_2d [%g, %g, %g, %g] reaches outside the %dx%d image (clamped)",
                        k, o.xyxy[0], o.xyxy[1], o.xyxy[2], o.xyxy[3], r.width, r.height);
          problems.add("clamped_box", Severity::kRepaired, pred_name, line->line, what);
        }
        const CocoBox box = coco_box_from_xyxy(b[0], b[1], b[2], b[3]);
        const std::string norm = normalize_desc(o.desc);
        const int cat = categories.find_normalized(norm);
        ++counts.predictions;
        if (cat < 0) {
          ++counts.predictions_unmapped;
          ++unmapped[norm];
        } else {
          ci.dets.push_back(CocoDet{box, cat, o.score});
          ++pred_per_category[static_cast<size_t>(cat)];
        }
        si.pred.push_back(box);
        si.pred_category.push_back(cat);
        si.pred_desc_key.push_back(desc_keys.emplace(norm, static_cast<int>(desc_keys.size())).first->second);
      }
    }
    coco_images.push_back(std::move(ci));
    sf_images.push_back(std::move(si));
  }

  const CocoResult coco = coco_evaluate(coco_images, K);
  res.coco = coco.stats;
  for (int k = 0; k < K; ++k) {
    const size_t u = static_cast<size_t>(k);
    res.per_category.push_back(CategoryStat{categories.names()[u], coco.per_category_ap[u], coco.per_category_ap50[u],
                                            coco.per_category_num_gt[u], pred_per_category[u]});
  }
  res.score_free = score_free_metrics(sf_images);

  ParseStats& ps = res.parse;
  const auto complete = ps.by_status.find(protocol::rollout_status_name(protocol::RolloutStatus::kComplete));
  if (ps.num_with_status > 0)
    ps.success_rate = static_cast<double>(complete == ps.by_status.end() ? 0 : complete->second) /
                      static_cast<double>(ps.num_with_status);

  res.top_unmapped.assign(unmapped.begin(), unmapped.end());
  std::stable_sort(res.top_unmapped.begin(), res.top_unmapped.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (res.top_unmapped.size() > options.max_listed_unmapped) res.top_unmapped.resize(options.max_listed_unmapped);
  return res;
}

namespace {

json prf_json(const PrfCounts& c) {
  return {{"tp", c.tp}, {"fp", c.fp}, {"fn", c.fn}, {"ignored_on_crowd", c.ignored},
          {"precision", c.precision}, {"recall", c.recall}, {"f1", c.f1}};
}

}  // namespace

json to_json(const EvalResult& r) {
  json j;
  json coco = json::object();
  const auto values = r.coco.values();
  for (size_t i = 0; i < values.size(); ++i) coco[CocoStats::names()[i]] = values[i];
  j["coco"] = coco;

  json per_cat = json::object(), per_cat_detail = json::object();
  for (const auto& c : r.per_category) {
    per_cat[c.name] = c.ap;
    per_cat_detail[c.name] = {{"AP", c.ap}, {"AP50", c.ap50}, {"num_gt", c.num_gt}, {"num_pred", c.num_pred}};
  }
  j["per_category"] = per_cat;
  j["per_category_detail"] = per_cat_detail;

  const ScoreFreeResult& s = r.score_free;
  json sf;
  for (size_t t = 0; t < ScoreFreeResult::kIouThresholds.size(); ++t) {
    const std::string key = t == 0 ? "iou50" : "iou30";
    sf[key] = {{"iou", ScoreFreeResult::kIouThresholds[t]},
               {"location", prf_json(s.location[t])},
               {"location_desc", prf_json(s.location_desc[t])}};
  }
  sf["num_predictions"] = s.num_predictions;
  sf["num_gt"] = s.num_gt;
  sf["count_ratio"] = s.count_ratio;
  sf["duplicates"] = {{"iou", ScoreFreeResult::kDuplicateIou}, {"count", s.num_duplicates}, {"rate", s.duplicate_rate}};
  json edges = json::array();
  for (int b = 0; b <= 10; ++b) edges.push_back(b / 10.0);
  sf["matched_iou"] = {{"matching", "location_desc, IoU > 0"},
                       {"num_pairs", s.matched_iou.num_pairs},
                       {"mean", s.matched_iou.mean},
                       {"median", s.matched_iou.median},
                       {"histogram", {{"edges", edges}, {"counts", s.matched_iou.histogram}}}};
  j["score_free"] = sf;

  j["parse"] = {{"num_lines", r.parse.num_lines},
                {"num_with_status", r.parse.num_with_status},
                {"by_status", r.parse.by_status},
                {"finish_reason", r.parse.by_finish_reason},
                {"success_rate", r.parse.success_rate}};

  json top = json::array();
  for (const auto& [desc, n] : r.top_unmapped) top.push_back({{"desc", desc}, {"count", n}});
  j["categories"] = {{"num", r.per_category.size()},
                     {"unmapped_predictions", r.counts.predictions_unmapped},
                     {"top_unmapped", top}};

  const EvalCounts& c = r.counts;
  j["counts"] = {{"gt_images", c.gt_images},
                 {"gt_images_without_objects", c.gt_images_without_objects},
                 {"gt_objects", c.gt_objects},
                 {"gt_crowd", c.gt_crowd},
                 {"gt_poly_as_bbox", c.gt_poly_as_bbox},
                 {"pred_lines", c.pred_lines},
                 {"pred_lines_evaluated", c.pred_lines_evaluated},
                 {"predictions", c.predictions}};

  json kinds = json::object();
  for (const auto& [name, k] : r.problems.kinds())
    kinds[name] = {{"severity", severity_name(k.severity)}, {"count", k.count}, {"lines", k.lines}, {"examples", k.examples}};
  j["problems"] = {{"skipped", r.problems.total(Severity::kSkipped)},
                   {"repaired", r.problems.total(Severity::kRepaired)},
                   {"anything_skipped", r.anything_skipped()},
                   {"by_kind", kinds}};
  j["inputs"] = {{"gt", r.gt_file}, {"pred", r.pred_file}};
  return j;
}

std::vector<std::pair<std::string, double>> headline_metrics(const EvalResult& r) {
  std::vector<std::pair<std::string, double>> out;
  const auto values = r.coco.values();
  for (size_t i = 0; i < values.size(); ++i) out.emplace_back(CocoStats::names()[i], values[i]);
  const ScoreFreeResult& s = r.score_free;
  out.emplace_back("f1_50", s.location_desc[0].f1);
  out.emplace_back("precision_50", s.location_desc[0].precision);
  out.emplace_back("recall_50", s.location_desc[0].recall);
  out.emplace_back("f1_30", s.location_desc[1].f1);
  out.emplace_back("f1_50_loc", s.location[0].f1);
  out.emplace_back("parse_rate", r.parse.success_rate);
  out.emplace_back("count_ratio", s.count_ratio);
  out.emplace_back("duplicate_rate", s.duplicate_rate);
  out.emplace_back("matched_iou_mean", s.matched_iou.mean);
  return out;
}

std::string format_summary(const EvalResult& r) {
  std::ostringstream os;
  const EvalCounts& c = r.counts;
  os << "GT: " << c.gt_images << " images (" << c.gt_images_without_objects << " without objects), " << c.gt_objects
     << " objects (" << c.gt_crowd << " crowd, " << c.gt_poly_as_bbox << " polygons as boxes), "
     << r.per_category.size() << " categories\n";
  os << "predictions: " << c.pred_lines_evaluated << " of " << c.pred_lines << " lines evaluated, " << c.predictions
     << " objects (" << c.predictions_unmapped << " with a desc that is no GT category)\n\n";

  os << "COCO bbox (IoU .50:.95, maxDets 100 unless noted; -1 = undefined)\n";
  const auto v = r.coco.values();
  for (int row = 0; row < 2; ++row) {
    os << " ";
    for (int i = 0; i < 6; ++i) {
      char cell[16];
      std::snprintf(cell, sizeof cell, " %-6s", CocoStats::names()[static_cast<size_t>(row * 6 + i)]);
      os << cell;
    }
    os << "\n ";
    for (int i = 0; i < 6; ++i) {
      char cell[16];
      std::snprintf(cell, sizeof cell, " %-6s", fmt(v[static_cast<size_t>(row * 6 + i)]).c_str());
      os << cell;
    }
    os << "\n";
  }

  const ScoreFreeResult& s = r.score_free;
  os << "\nscore-free (one-to-one Hungarian matching)\n";
  os << "  match          IoU   precision recall  F1      TP      FP      FN  ignored\n";
  for (size_t t = 0; t < ScoreFreeResult::kIouThresholds.size(); ++t)
    for (bool desc : {false, true}) {
      const PrfCounts& p = desc ? s.location_desc[t] : s.location[t];
      char row[200];
      std::snprintf(row, sizeof row, "  %-14s %.2f  %-9s %-7s %-7s %-7lld %-7lld %-7lld %lld\n",
                    desc ? "location+desc" : "location", ScoreFreeResult::kIouThresholds[t], fmt(p.precision).c_str(),
                    fmt(p.recall).c_str(), fmt(p.f1).c_str(), (long long)p.tp, (long long)p.fp, (long long)p.fn,
                    (long long)p.ignored);
      os << row;
    }
  os << "  predicted/GT count ratio: " << fmt(s.count_ratio) << " (" << s.num_predictions << " / " << s.num_gt << ")\n";
  os << "  duplicates (same desc, IoU >= 0.9): " << s.num_duplicates << " (" << pct(s.duplicate_rate) << ")\n";
  os << "  matched IoU (location+desc, IoU > 0): " << s.matched_iou.num_pairs << " pairs, mean "
     << fmt(s.matched_iou.mean) << ", median " << fmt(s.matched_iou.median) << "\n   ";
  for (size_t b = 0; b < s.matched_iou.histogram.size(); ++b)
    os << " [" << fmt(b / 10.0, 1) << "," << fmt((b + 1) / 10.0, 1) << (b == 9 ? "]" : ")") << " " << s.matched_iou.histogram[b];
  os << "\n";

  const ParseStats& p = r.parse;
  os << "\nparse: " << pct(p.success_rate) << " complete (of " << p.num_with_status << " lines with parse_status)";
  for (const auto& [status, n] : p.by_status) os << "; " << status << " " << n;
  if (!p.by_finish_reason.empty()) {
    os << "\nfinish:";
    for (const auto& [reason, n] : p.by_finish_reason) os << " " << reason << " " << n;
  }
  os << "\n";
  if (!r.top_unmapped.empty()) {
    os << "unmapped prediction descs (top " << r.top_unmapped.size() << "):";
    for (const auto& [desc, n] : r.top_unmapped) os << " \"" << desc << "\" " << n << ";";
    os << "\n";
  }

  // Per category: the ones with the most GT first, at most 20 rows (all are in metrics.json).
  std::vector<const CategoryStat*> cats;
  for (const auto& cat : r.per_category) cats.push_back(&cat);
  std::stable_sort(cats.begin(), cats.end(), [](const CategoryStat* a, const CategoryStat* b) { return a->num_gt > b->num_gt; });
  if (!cats.empty()) {
    os << "\nper category (most GT first)\n  AP     AP50   GT      pred    desc\n";
    for (size_t i = 0; i < std::min<size_t>(cats.size(), 20); ++i) {
      char row[96];
      std::snprintf(row, sizeof row, "  %-6s %-6s %-7lld %-7lld ", fmt(cats[i]->ap).c_str(), fmt(cats[i]->ap50).c_str(),
                    (long long)cats[i]->num_gt, (long long)cats[i]->num_pred);
      os << row << cats[i]->name << "\n";
    }
    if (cats.size() > 20) os << "  ... " << cats.size() - 20 << " more in metrics.json\n";
  }

  os << "\nproblems: " << r.problems.total(Severity::kSkipped) << " skipped, " << r.problems.total(Severity::kRepaired)
     << " repaired\n";
  for (const auto& [name, k] : r.problems.kinds()) {
    os << "  " << severity_name(k.severity) << " " << name << ": " << k.count;
    std::string lines;
    for (size_t i = 0; i < std::min<size_t>(k.lines.size(), 10); ++i)
      if (k.lines[i] > 0) lines += (lines.empty() ? "" : ", ") + std::to_string(k.lines[i]);
    if (!lines.empty()) os << " (line" << (k.lines.size() > 1 ? "s " : " ") << lines << (k.count > 10 ? ", ..." : "") << ")";
    os << "\n";
    if (!k.examples.empty()) os << "    e.g. " << k.examples.front() << "\n";
  }
  return os.str();
}

}  // namespace coordexp::eval
