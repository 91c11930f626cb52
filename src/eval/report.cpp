// report.html for a run directory (see report.h): charts are generated here as SVG markup (no
// scripts, no external resources), so the file opens anywhere, offline, and survives being mailed.
#include "coordexp/eval/report.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::eval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string num(double v, int sig = 4) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", sig, v);
  return buf;
}

std::string fixed3(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

// Axis ticks at 1, 2 or 5 times a power of ten, about 4-6 of them inside [lo, hi].
std::vector<double> nice_ticks(double lo, double hi) {
  const double raw = (hi - lo) / 4.0;
  if (!(raw > 0) || !std::isfinite(raw)) return {lo};
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1.0 : norm < 3.0 ? 2.0 : norm < 7.0 ? 5.0 : 10.0) * mag;
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9 && ticks.size() < 12; t += step)
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

// Points (step, value) of a numeric key, thinned to at most max_points (the last one is kept).
std::vector<std::pair<double, double>> series_of(const std::vector<json>& records, const std::string& key,
                                                 size_t max_points,
                                                 const std::function<bool(const json&)>& keep = nullptr) {
  std::vector<std::pair<double, double>> pts;
  for (size_t i = 0; i < records.size(); ++i) {
    const json& r = records[i];
    const auto it = r.find(key);
    if (it == r.end() || !it->is_number()) continue;
    if (keep && !keep(r)) continue;
    const auto step = r.find("step");
    const double x = step != r.end() && step->is_number() ? step->get<double>() : static_cast<double>(i);
    const double y = it->get<double>();
    if (std::isfinite(x) && std::isfinite(y)) pts.emplace_back(x, y);
  }
  if (max_points > 1 && pts.size() > max_points) {
    const size_t stride = (pts.size() + max_points - 1) / max_points;
    std::vector<std::pair<double, double>> thin;
    for (size_t i = 0; i < pts.size(); i += stride) thin.push_back(pts[i]);
    if (thin.back() != pts.back()) thin.push_back(pts.back());
    pts.swap(thin);
  }
  return pts;
}

// A value at a JSON pointer path, or NaN.
double at_path(const json& j, const std::string& pointer) {
  try {
    const json& v = j.at(json::json_pointer(pointer));
    return v.is_number() ? v.get<double>() : NAN;
  } catch (...) {
    return NAN;
  }
}

enum class Better { kHigher, kLower, kNearOne };
struct EvalColumn {
  const char* title;
  const char* pointer;
  Better better;
};
const EvalColumn kEvalColumns[] = {
    {"AP", "/coco/AP", Better::kHigher},
    {"AP50", "/coco/AP50", Better::kHigher},
    {"AP75", "/coco/AP75", Better::kHigher},
    {"APs", "/coco/APs", Better::kHigher},
    {"APm", "/coco/APm", Better::kHigher},
    {"APl", "/coco/APl", Better::kHigher},
    {"AR100", "/coco/AR100", Better::kHigher},
    {"P@.5", "/score_free/iou50/location_desc/precision", Better::kHigher},
    {"R@.5", "/score_free/iou50/location_desc/recall", Better::kHigher},
    {"F1@.5", "/score_free/iou50/location_desc/f1", Better::kHigher},
    {"F1@.5 loc", "/score_free/iou50/location/f1", Better::kHigher},
    {"F1@.3", "/score_free/iou30/location_desc/f1", Better::kHigher},
    {"parse ok", "/parse/success_rate", Better::kHigher},
    {"pred/GT", "/score_free/count_ratio", Better::kNearOne},
    {"dup rate", "/score_free/duplicates/rate", Better::kLower},
    {"mean IoU", "/score_free/matched_iou/mean", Better::kHigher},
};

// "Channel-B diagnostics" -> "channel-b-diagnostics" (section ids for links).
std::string anchor(const std::string& title) {
  std::string id;
  for (char c : title) {
    if (std::isalnum(static_cast<unsigned char>(c))) id += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!id.empty() && id.back() != '-') id += '-';
  }
  while (!id.empty() && id.back() == '-') id.pop_back();
  return id;
}

std::string cell(double v) { return std::isnan(v) ? "&ndash;" : (v < 0 ? "n/a" : fixed3(v)); }

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64_encode(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63], out += kAlphabet[(v >> 12) & 63], out += kAlphabet[(v >> 6) & 63],
        out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    out += kAlphabet[(v >> 18) & 63], out += kAlphabet[(v >> 12) & 63], out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63], out += kAlphabet[(v >> 12) & 63], out += kAlphabet[(v >> 6) & 63], out += '=';
  }
  return out;
}

std::string svg_line_chart(const std::string& title, const std::vector<ChartSeries>& series, int width, int height) {
  const double left = 58, right = 12, top = 34, bottom = 30;
  const double pw = width - left - right, ph = height - top - bottom;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y)) x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
  std::ostringstream os;
  os << "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
     << "\" viewBox=\"0 0 " << width << " " << height << "\" role=\"img\">";
  os << "<rect x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height << "\" fill=\"#fff\"/>";
  os << "<text x=\"" << left << "\" y=\"14\" class=\"ct\">" << html_escape(title) << "</text>";
  if (!(x0 <= x1)) {
    os << "<text x=\"" << width / 2 << "\" y=\"" << height / 2 << "\" text-anchor=\"middle\" class=\"ax\">no data</text></svg>";
    return os.str();
  }
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (y1 == y0) {
    const double d = std::fabs(y0) > 0 ? std::fabs(y0) * 0.05 : 0.5;
    y0 -= d, y1 += d;
  } else {
    const double m = (y1 - y0) * 0.04;
    y0 -= m, y1 += m;
  }
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + (1.0 - (y - y0) / (y1 - y0)) * ph; };
  os << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
     << "\" fill=\"none\" stroke=\"#bbb\"/>";
  for (const double yv : nice_ticks(y0, y1)) {
    const double yy = py(yv);
    os << "<line x1=\"" << left << "\" x2=\"" << left + pw << "\" y1=\"" << yy << "\" y2=\"" << yy
       << "\" stroke=\"#eee\"/><text x=\"" << left - 4 << "\" y=\"" << yy + 4 << "\" text-anchor=\"end\" class=\"ax\">"
       << num(yv) << "</text>";
  }
  for (const double xv : nice_ticks(x0, x1))
    os << "<text x=\"" << px(xv) << "\" y=\"" << top + ph + 16 << "\" text-anchor=\"middle\" class=\"ax\">" << num(xv, 6)
       << "</text>";
  double lx = left + 4;
  for (size_t si = 0; si < series.size(); ++si) {
    const ChartSeries& s = series[si];
    const std::string color = s.color.empty() ? kPalette[si % 10] : s.color;
    std::vector<std::pair<double, double>> pts;
    for (const auto& p : s.points)
      if (std::isfinite(p.first) && std::isfinite(p.second)) pts.push_back(p);
    std::stable_sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    if (pts.size() == 1) {
      os << "<circle cx=\"" << px(pts[0].first) << "\" cy=\"" << py(pts[0].second) << "\" r=\"3\" fill=\"" << color << "\"/>";
    } else if (!pts.empty()) {
      os << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"";
      char buf[64];
      for (const auto& [x, y] : pts) {
        std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(x), py(y));
        os << buf;
      }
      os << "\"/>";
    }
    if (series.size() > 1 || !s.name.empty()) {
      os << "<rect x=\"" << lx << "\" y=\"" << top - 12 << "\" width=\"10\" height=\"4\" fill=\"" << color << "\"/>"
         << "<text x=\"" << lx + 13 << "\" y=\"" << top - 8 << "\" class=\"lg\">" << html_escape(s.name) << "</text>";
      lx += 22 + 6.2 * static_cast<double>(s.name.size());
    }
  }
  os << "</svg>";
  return os.str();
}

RunData collect_run(const std::string& run_dir) {
  if (!fs::is_directory(run_dir))
    throw DataError("not a directory", run_dir, "pass --run with a training output directory (train.output_dir)");
  RunData run;
  run.run_dir = run_dir;
  const fs::path root(run_dir);
  if (std::ifstream in(root / "metrics.jsonl"); in) {
    std::string line;
    while (std::getline(in, line)) {
      if (line.find_first_not_of(" \t\r\n") == std::string::npos) continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        ++run.bad_metric_lines;
        continue;
      }
      run.records.push_back(std::move(j));
    }
  }
  // Eval results in the order they were written (file modification time, then name): the report's
  // before/after compares the first with the last, and names do not sort by time (the demo's
  // eval/stage1 and eval/stage2 around the trainer's eval/step-<N>: "stage2" < "step-").
  struct EvalFile {
    fs::file_time_type written;
    std::string path, label;
  };
  std::vector<EvalFile> found;
  auto add_eval = [&](const fs::path& file, std::string label) {
    std::error_code ec;
    const auto written = fs::last_write_time(file, ec);
    found.push_back({ec ? fs::file_time_type::min() : written, file.string(), std::move(label)});
  };
  if (fs::is_directory(root / "eval")) {
    for (const auto& e : fs::directory_iterator(root / "eval")) {
      if (e.is_regular_file() && e.path().extension() == ".json") add_eval(e.path(), e.path().stem().string());
      if (e.is_directory() && fs::is_regular_file(e.path() / "metrics.json"))
        add_eval(e.path() / "metrics.json", e.path().filename().string());
    }
  }
  std::sort(found.begin(), found.end(), [](const EvalFile& a, const EvalFile& b) {
    return a.written != b.written ? a.written < b.written : a.label < b.label;
  });
  std::vector<std::pair<std::string, std::string>> files;  // path, label
  for (auto& f : found) files.emplace_back(std::move(f.path), std::move(f.label));
  for (const auto& [path, label] : files) {
    std::ifstream in(path);
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("coco") || !j["coco"].is_object()) {
      run.skipped_eval_files.push_back(path);
      continue;
    }
    run.evals.emplace_back(label, std::move(j));
  }
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    if (it.depth() > 3) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && it->path().filename() == "contact_sheet.png") run.contact_sheets.push_back(it->path().string());
  }
  std::sort(run.contact_sheets.begin(), run.contact_sheets.end());
  if (fs::is_regular_file(root / "config.yaml")) {
    try {
      run.config_yaml = util::read_file((root / "config.yaml").string());
    } catch (const std::exception&) {
      run.config_yaml.clear();
    }
    constexpr size_t kMaxConfigBytes = 200 * 1024;
    if (run.config_yaml.size() > kMaxConfigBytes) run.config_yaml = run.config_yaml.substr(0, kMaxConfigBytes) + "\n...\n";
  }
  return run;
}

std::string render_report(const RunData& run, size_t max_points, size_t max_sheets) {
  const std::vector<json>& recs = run.records;
  // Numeric keys in first-seen order.
  std::vector<std::string> keys;
  std::set<std::string> seen;
  bool has_step_kind = false;
  for (const json& r : recs)
    for (const auto& [k, v] : r.items()) {
      if (k == "step_kind" && v.is_string()) has_step_kind = true;
      if (v.is_number() && seen.insert(k).second) keys.push_back(k);
    }

  std::ostringstream head, os;  // head: title and run line; os: the sections (after the contents line)
  std::vector<std::pair<std::string, std::string>> toc;  // id, title
  head << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
     << "<title>coordexp run report: " << html_escape(run.run_dir) << "</title><style>"
     << "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fafafa}"
     << "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}"
     << ".grid{display:flex;flex-wrap:wrap;gap:10px}.chart{border:1px solid #ddd;background:#fff}"
     << ".ct{font-size:13px;font-weight:600}.ax{font-size:10px;fill:#555}.lg{font-size:10px;fill:#333}"
     << "table{border-collapse:collapse;font-size:13px;background:#fff}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}"
     << "th{background:#f0f0f0}td.l,th.l{text-align:left}.up{color:#1a7f37}.down{color:#c62828}"
     << ".note{color:#666;font-size:13px}img.sheet{max-width:100%;border:1px solid #ddd;background:#fff}"
     << "</style></head><body>\n";
  head << "<h1>coordexp run report</h1>\n<p class=\"note\">run: <code>" << html_escape(run.run_dir) << "</code>";
  {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
    head << " &middot; generated " << buf;
  }
  head << " &middot; " << recs.size() << " metrics records";
  if (const auto steps = series_of(recs, "step", 0); !steps.empty())
    head << " (steps " << num(steps.front().second, 9) << "&ndash;" << num(steps.back().second, 9) << ")";
  if (run.bad_metric_lines > 0) head << " &middot; " << run.bad_metric_lines << " unreadable metrics.jsonl lines skipped";
  head << "</p>\n";

  auto chart = [&](const std::string& title, std::vector<std::pair<std::string, std::string>> key_names) {
    std::vector<ChartSeries> ss;
    for (const auto& [key, name] : key_names) {
      auto pts = series_of(recs, key, max_points);
      if (!pts.empty()) ss.push_back({name, std::move(pts), ""});
    }
    return ss.empty() ? std::string() : svg_line_chart(title, ss);
  };
  auto section = [&](const std::string& title, const std::vector<std::string>& charts, const std::string& note = "") {
    std::string body;
    for (const auto& c : charts)
      if (!c.empty()) body += c + "\n";
    if (body.empty()) return;
    toc.emplace_back(anchor(title), title);
    os << "<h2 id=\"" << anchor(title) << "\">" << html_escape(title) << "</h2>\n";
    if (!note.empty()) os << "<p class=\"note\">" << note << "</p>\n";
    os << "<div class=\"grid\">\n" << body << "</div>\n";
  };
  auto has_prefix = [](const std::string& k, const char* p) { return k.rfind(p, 0) == 0; };
  std::set<std::string> used = {"step", "epoch", "num_samples", "num_tokens"};

  // Losses: total, then each term, with its validation counterpart.
  {
    std::vector<std::string> charts;
    if (seen.count("loss") || seen.count("val_loss")) charts.push_back(chart("loss", {{"loss", "train"}, {"val_loss", "val"}}));
    used.insert({"loss", "val_loss"});
    for (const auto& k : keys)
      if (has_prefix(k, "loss_")) {
        charts.push_back(chart(k, {{k, "train"}, {"val_" + k, "val"}}));
        used.insert({k, "val_" + k});
      }
    section("Loss terms", charts, recs.empty() ? "" : "train: logged steps; val: validation passes (train.eval_every)");
  }
  // Channel A / B.
  if (has_step_kind) {
    std::vector<ChartSeries> by_kind;
    for (const char* kind : {"A", "B"}) {
      auto pts = series_of(recs, "loss", max_points, [&](const json& r) {
        const auto it = r.find("step_kind");
        return it != r.end() && it->is_string() && it->get<std::string>() == kind;
      });
      if (!pts.empty()) by_kind.push_back({std::string("loss on ") + kind + " steps", std::move(pts), kind[0] == 'A' ? "#1f77b4" : "#ff7f0e"});
    }
    // Share of B steps: the router's realized ratio (over every step of its window) when the records
    // carry it. Counting logged records instead is biased: B steps are always logged, A steps only
    // every train.log_every, so that count is only the fallback for older metrics files.
    std::vector<std::pair<double, double>> share = series_of(recs, "b_ratio_realized", max_points);
    std::string share_title = "share of Channel-B steps (realized ratio of the router)";
    if (share.empty()) {
      share_title = "share of Channel-B steps among the last 20 logged records";
      std::vector<int> window;
      for (size_t i = 0; i < recs.size(); ++i) {
        const auto it = recs[i].find("step_kind");
        if (it == recs[i].end() || !it->is_string()) continue;
        window.push_back(it->get<std::string>() == "B" ? 1 : 0);
        if (window.size() > 20) window.erase(window.begin());
        const auto st = recs[i].find("step");
        const double x = st != recs[i].end() && st->is_number() ? st->get<double>() : static_cast<double>(i);
        share.emplace_back(x, static_cast<double>(std::count(window.begin(), window.end(), 1)) / static_cast<double>(window.size()));
      }
    }
    used.insert("b_ratio_realized");
    std::vector<std::string> charts = {svg_line_chart("loss by step kind", by_kind),
                                       svg_line_chart(share_title, {{"", share, "#ff7f0e"}})};
    section("Channel A / Channel B steps", charts);
  }
  for (const auto& [prefix, title] : std::vector<std::pair<std::string, std::string>>{
           {"a_", "Channel-A diagnostics"}, {"b_", "Channel-B diagnostics"}, {"eval_", "Detection metrics during training"},
           {"val_", "Validation"}}) {
    std::vector<std::string> charts;
    for (const auto& k : keys)
      if (has_prefix(k, prefix.c_str()) && !used.count(k)) {
        charts.push_back(chart(k, {{k, ""}}));
        used.insert(k);
      }
    section(title, charts);
  }
  {
    std::vector<std::string> charts;
    for (const char* k : {"lr", "grad_norm", "tokens_per_s", "samples_per_s"})
      if (seen.count(k)) {
        charts.push_back(chart(k, {{k, ""}}));
        used.insert(k);
      }
    section("Optimization and speed", charts);
  }
  {
    std::vector<std::string> charts;
    for (const auto& k : keys) {
      if (used.count(k) || has_prefix(k, "num_")) continue;
      auto pts = series_of(recs, k, max_points);
      const bool varies = std::any_of(pts.begin(), pts.end(), [&](const auto& p) { return p.second != pts.front().second; });
      if (varies && charts.size() < 12) charts.push_back(svg_line_chart(k, {{"", pts, ""}}));
    }
    section("Other logged values", charts);
  }

  // Evaluation results.
  toc.emplace_back("evaluation", "Evaluation");
  os << "<h2 id=\"evaluation\">Evaluation</h2>\n";
  if (run.evals.empty()) {
    os << "<p class=\"note\">No eval results found (looked for eval/*.json and eval/*/metrics.json written by "
          "<code>coordexp-train eval --out</code>).</p>\n";
  } else {
    os << "<table><tr><th class=\"l\">eval</th>";
    for (const auto& c : kEvalColumns) os << "<th>" << c.title << "</th>";
    os << "<th>skipped</th></tr>\n";
    for (const auto& [label, j] : run.evals) {
      os << "<tr><td class=\"l\">" << html_escape(label) << "</td>";
      for (const auto& c : kEvalColumns) os << "<td>" << cell(at_path(j, c.pointer)) << "</td>";
      const double skipped = at_path(j, "/problems/skipped");
      os << "<td>" << (std::isnan(skipped) ? "&ndash;" : num(skipped, 9)) << "</td></tr>\n";
    }
    os << "</table>\n<p class=\"note\">COCO numbers: pycocotools rules (IoU .50:.95, maxDets 100). P/R/F1: score-free, "
          "one-to-one Hungarian matching, location+desc unless marked loc. n/a: undefined (-1 in metrics.json).</p>\n";
    if (run.evals.size() >= 2) {
      const auto& first = run.evals.front();
      const auto& last = run.evals.back();
      os << "<h2>Before / after</h2>\n<table><tr><th class=\"l\">metric</th><th>" << html_escape(first.first)
         << "</th><th>" << html_escape(last.first) << "</th><th>&Delta;</th></tr>\n";
      for (const auto& c : kEvalColumns) {
        const double a = at_path(first.second, c.pointer), b = at_path(last.second, c.pointer);
        std::string delta = "&ndash;", cls;
        if (!std::isnan(a) && !std::isnan(b) && a >= 0 && b >= 0) {
          const double d = b - a;
          delta = (d > 0 ? "+" : "") + fixed3(d);
          const bool improved = c.better == Better::kHigher  ? d > 0
                                : c.better == Better::kLower ? d < 0
                                                             : std::fabs(b - 1.0) < std::fabs(a - 1.0);
          if (d != 0) cls = improved ? "up" : "down";
        }
        os << "<tr><td class=\"l\">" << c.title << "</td><td>" << cell(a) << "</td><td>" << cell(b) << "</td><td class=\""
           << cls << "\">" << delta << "</td></tr>\n";
      }
      os << "</table>\n";
    }
    // Per-category AP of the last eval: the 15 best and worst.
    const json& last = run.evals.back().second;
    if (last.contains("per_category") && last["per_category"].is_object() && !last["per_category"].empty()) {
      std::vector<std::pair<double, std::string>> cats;
      for (const auto& [name, v] : last["per_category"].items())
        if (v.is_number()) cats.emplace_back(v.get<double>(), name);
      std::stable_sort(cats.begin(), cats.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
      os << "<h2>Per category AP (" << html_escape(run.evals.back().first) << ")</h2>\n<table><tr><th class=\"l\">desc</th><th>AP</th></tr>\n";
      for (size_t i = 0; i < cats.size(); ++i) {
        if (cats.size() > 30 && i == 15) {
          os << "<tr><td class=\"l\" colspan=\"2\">&hellip; " << cats.size() - 30 << " more &hellip;</td></tr>\n";
          i = cats.size() - 15;
        }
        os << "<tr><td class=\"l\">" << html_escape(cats[i].second) << "</td><td>" << cell(cats[i].first) << "</td></tr>\n";
      }
      os << "</table>\n";
    }
  }
  for (const auto& f : run.skipped_eval_files)
    os << "<p class=\"note\">skipped " << html_escape(f) << ": not a metrics.json of <code>coordexp-train eval</code></p>\n";

  // Pictures.
  if (!run.contact_sheets.empty()) {
    toc.emplace_back("pictures", "Pictures");
    os << "<h2 id=\"pictures\">Pictures</h2>\n<p class=\"note\">GT green, predictions red (desc and score).</p>\n";
    for (size_t i = 0; i < std::min(max_sheets, run.contact_sheets.size()); ++i) {
      const std::string& path = run.contact_sheets[i];
      std::string bytes;
      try {
        bytes = util::read_file(path);
      } catch (const std::exception&) {
        os << "<p class=\"note\">cannot read " << html_escape(path) << "</p>\n";
        continue;
      }
      os << "<p class=\"note\">" << html_escape(fs::relative(path, run.run_dir).string()) << "</p>\n"
         << "<img class=\"sheet\" alt=\"contact sheet\" src=\"data:image/png;base64," << base64_encode(bytes) << "\">\n";
    }
    if (run.contact_sheets.size() > max_sheets)
      os << "<p class=\"note\">" << run.contact_sheets.size() - max_sheets << " more contact sheet(s) not embedded</p>\n";
  }
  if (!run.config_yaml.empty()) {
    toc.emplace_back("config", "Config");
    os << "<h2 id=\"config\">Config</h2>\n<details><summary class=\"note\">config.yaml (the resolved run config)</summary><pre>"
       << html_escape(run.config_yaml) << "</pre></details>\n";
  }
  os << "</body></html>\n";
  std::string contents = "<p class=\"note\">contents:";
  for (size_t i = 0; i < toc.size(); ++i)
    contents += std::string(i ? " &middot;" : "") + " <a href=\"#" + toc[i].first + "\">" + html_escape(toc[i].second) + "</a>";
  return head.str() + contents + "</p>\n" + os.str();
}

}  // namespace coordexp::eval
