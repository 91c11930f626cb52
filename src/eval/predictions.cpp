// Tolerant reader of prediction JSONL (see predictions.h). Each rule that drops a line or an
// object has its own problem kind, so a summary says exactly what was wrong where.
#include "coordexp/eval/predictions.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <fstream>
#include <istream>
#include <limits>

#include "coordexp/util/error.h"

namespace coordexp::eval {
namespace {

using nlohmann::json;

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Replaces bare NaN / Infinity / -Infinity outside strings with null (JSON has no such literals),
// so one bad value costs one object, not the line. Returns whether anything was replaced.
bool replace_non_finite_literals(const std::string& in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  bool in_string = false, replaced = false;
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (in_string) {
      *out += c;
      if (c == '\\' && i + 1 < in.size()) *out += in[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      *out += c;
      continue;
    }
    const bool boundary = i == 0 || !word_char(in[i - 1]);
    for (const char* lit : {"-Infinity", "Infinity", "NaN"}) {
      const size_t n = std::char_traits<char>::length(lit);
      if (boundary && in.compare(i, n, lit) == 0 && (i + n == in.size() || !word_char(in[i + n]))) {
        *out += "null";
        i += n - 1;
        replaced = true;
        goto next;
      }
    }
    *out += c;
  next:;
  }
  return replaced;
}

std::string type_name(const json& j) { return j.type_name(); }

// A positive integer image size, or nullopt (with a reason) otherwise.
std::optional<int> image_size(const json& j, std::string* why) {
  if (j.is_number_integer() || j.is_number_unsigned()) {
    const int64_t v = j.get<int64_t>();
    if (v >= 1 && v <= std::numeric_limits<int>::max()) return static_cast<int>(v);
    *why = "is " + std::to_string(v) + "; it must be an integer >= 1";
    return std::nullopt;
  }
  if (j.is_number_float()) {
    const double v = j.get<double>();
    if (std::isfinite(v) && v >= 1 && v == std::floor(v) && v <= std::numeric_limits<int>::max())
      return static_cast<int>(v);
    *why = "is " + j.dump() + "; it must be an integer >= 1";
    return std::nullopt;
  }
  *why = "is a " + type_name(j) + "; it must be an integer >= 1";
  return std::nullopt;
}

}  // namespace

bool parse_prediction_line(const std::string& text, const std::string& file, int64_t line_no,
                           PredLine* out, ProblemLog* problems) {
  auto skip_line = [&](const std::string& kind, const std::string& what) {
    problems->add(kind, Severity::kSkipped, file, line_no, what + " (line skipped)");
    return false;
  };
  std::string cleaned;
  replace_non_finite_literals(text, &cleaned);
  const json j = json::parse(cleaned, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return skip_line("bad_json", "not valid JSON");
  if (!j.is_object()) return skip_line("not_an_object", "the line is a JSON " + type_name(j) + ", not an object");

  PredLine line;
  line.line = line_no;
  const auto images = j.find("images");
  if (images == j.end()) return skip_line("missing_images", "no \"images\" key");
  if (!images->is_array() || images->empty() || !(*images)[0].is_string() || (*images)[0].get<std::string>().empty())
    return skip_line("bad_images", "\"images\" must be a non-empty list of paths");
  line.image = (*images)[0].get<std::string>();

  for (const char* key : {"width", "height"}) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    std::string why;
    const auto v = image_size(*it, &why);
    if (!v) return skip_line("bad_image_size", std::string("\"") + key + "\" " + why);
    (std::string(key) == "width" ? line.width : line.height) = v;
  }
  if (const auto it = j.find("parse_status"); it != j.end() && it->is_string()) line.parse_status = it->get<std::string>();
  if (const auto it = j.find("finish_reason"); it != j.end() && it->is_string()) line.finish_reason = it->get<std::string>();

  const auto objects = j.find("objects");
  if (objects == j.end()) return skip_line("missing_objects", "no \"objects\" key (write [] for no detections)");
  if (!objects->is_array()) return skip_line("bad_objects", "\"objects\" is a " + type_name(*objects) + ", not a list");

  for (size_t k = 0; k < objects->size(); ++k) {
    const json& o = (*objects)[k];
    const std::string at = "objects[" + std::to_string(k) + "]";
    auto skip_object = [&](const std::string& kind, const std::string& what) {
      problems->add(kind, Severity::kSkipped, file, line_no, at + ": " + what + " (object skipped)");
    };
    if (!o.is_object()) {
      skip_object("bad_object", "a JSON " + type_name(o) + ", not an object");
      continue;
    }
    PredObject obj;
    const auto desc = o.find("desc");
    if (desc == o.end() || !desc->is_string()) {
      skip_object("bad_desc", desc == o.end() ? "no \"desc\"" : "\"desc\" is a " + type_name(*desc) + ", not a string");
      continue;
    }
    obj.desc = desc->get<std::string>();
    if (obj.desc.find_first_not_of(" \t\r\n\v\f") == std::string::npos) {
      skip_object("bad_desc", "\"desc\" is empty");
      continue;
    }
    const auto box = o.find("bbox_2d");
    if (box == o.end() || !box->is_array() || box->size() != 4) {
      skip_object("bad_bbox", box == o.end() ? "no \"bbox_2d\""
                              : !box->is_array() ? "\"bbox_2d\" is a " + type_name(*box) + ", not a list"
                                                 : "\"bbox_2d\" has " + std::to_string(box->size()) + " values, not 4");
      continue;
    }
    bool ok = true;
    for (size_t c = 0; c < 4 && ok; ++c) {
      const json& v = (*box)[c];
      if (v.is_null()) {
        skip_object("non_finite", "bbox_2d[" + std::to_string(c) + "] is NaN, Infinity or null");
        ok = false;
      } else if (!v.is_number()) {
        skip_object("bad_bbox", "bbox_2d[" + std::to_string(c) + "] is a " + type_name(v) + ", not a number");
        ok = false;
      } else if (!std::isfinite(v.get<double>())) {
        skip_object("non_finite", "bbox_2d[" + std::to_string(c) + "] is not finite");
        ok = false;
      } else {
        obj.xyxy[c] = v.get<double>();
      }
    }
    if (!ok) continue;
    if (obj.xyxy[2] < obj.xyxy[0] || obj.xyxy[3] < obj.xyxy[1]) {
      skip_object("inverted_box", "bbox_2d " + box->dump() + " has x2 < x1 or y2 < y1");
      continue;
    }
    const auto score = o.find("score");
    if (score == o.end()) {
      obj.has_score = false;
      obj.score = 1.0;
      problems->add("missing_score", Severity::kRepaired, file, line_no, at + ": no \"score\"; using 1.0");
    } else if (score->is_null() || (score->is_number() && !std::isfinite(score->get<double>()))) {
      skip_object("non_finite", "\"score\" is NaN, Infinity or null");
      continue;
    } else if (!score->is_number()) {
      skip_object("bad_score", "\"score\" is a " + type_name(*score) + ", not a number");
      continue;
    } else {
      obj.score = score->get<double>();
    }
    line.objects.push_back(std::move(obj));
  }
  *out = std::move(line);
  return true;
}

PredictionSet read_predictions(std::istream& in, const std::string& file_name) {
  PredictionSet set;
  set.file = file_name;
  std::string text;
  int64_t line_no = 0;
  while (std::getline(in, text)) {
    ++line_no;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t\r\n\v\f") == std::string::npos) {
      ++set.num_blank_lines;
      continue;
    }
    ++set.num_lines;
    PredLine line;
    if (parse_prediction_line(text, file_name, line_no, &line, &set.problems)) set.lines.push_back(std::move(line));
  }
  return set;
}

PredictionSet read_predictions(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot open the prediction file", path, "check --pred (write it with `coordexp-train infer`)");
  return read_predictions(in, path);
}

}  // namespace coordexp::eval
