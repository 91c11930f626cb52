// JSONL contract validation and reading (see include/coordexp/data/jsonl.h). nlohmann::json parses
// each line (with a callback that catches duplicate keys); every rule produces a RecordError that
// names the line, the object index and the fix. Coordinates go through protocol/coords.h only.
#include "coordexp/data/jsonl.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "coordexp/util/error.h"

namespace coordexp::data {

using json = nlohmann::json;
namespace fs = std::filesystem;

const char* record_rule_name(RecordRule rule) {
  switch (rule) {
    case RecordRule::kBadJson: return "bad_json";
    case RecordRule::kNonFinite: return "non_finite";
    case RecordRule::kDuplicateKey: return "duplicate_key";
    case RecordRule::kNotAnObject: return "not_an_object";
    case RecordRule::kMissingField: return "missing_field";
    case RecordRule::kUnknownField: return "unknown_field";
    case RecordRule::kWrongType: return "wrong_type";
    case RecordRule::kBadImageSize: return "bad_image_size";
    case RecordRule::kNoImages: return "no_images";
    case RecordRule::kEmptyDesc: return "empty_desc";
    case RecordRule::kSpecialTokenInDesc: return "special_token_in_desc";
    case RecordRule::kNoGeometry: return "no_geometry";
    case RecordRule::kTwoGeometries: return "two_geometries";
    case RecordRule::kBadArity: return "bad_arity";
    case RecordRule::kBadPolyPoints: return "bad_poly_points";
    case RecordRule::kBadCoordValue: return "bad_coord_value";
    case RecordRule::kCoordTokenOutOfRange: return "coord_token_out_of_range";
    case RecordRule::kSwappedBox: return "swapped_box";
    case RecordRule::kMissingImage: return "missing_image";
  }
  return "?";
}

std::string RecordError::message() const {
  std::string s = where.empty() ? what : where + ": " + what;
  if (!hint.empty()) s += " (hint: " + hint + ")";
  return s;
}

JsonlOptions JsonlOptions::from_config(const config::DataOptions& data,
                                       const config::ProtocolOptions& protocol) {
  data.validate();
  JsonlOptions o;
  o.coords = data.coords == "pixel"      ? CoordsMode::kPixel
             : data.coords == "norm1000" ? CoordsMode::kNorm1000
                                         : CoordsMode::kAuto;
  o.on_invalid = data.on_invalid == "skip" ? InvalidPolicy::kSkip : InvalidPolicy::kError;
  o.swapped_box = data.swapped_box == "reject" ? SwappedBoxPolicy::kReject : SwappedBoxPolicy::kSwap;
  o.image_root = data.image_root;
  o.convention = protocol::coord_convention(protocol);
  return o;
}

protocol::Object GtObject::to_protocol() const {
  protocol::Object o;
  o.desc = desc;
  o.kind = kind;
  o.bins.reserve(coords.size());
  for (const auto& c : coords) o.bins.push_back(c.bin);
  return o;
}

namespace {

constexpr int kMaxImageSide = 1 << 20;
constexpr int kMaxGeometryNesting = 4;
const char* const kRecordKeys[] = {"images", "width", "height", "objects", "summary", "metadata"};
const char* const kObjectKeys[] = {"desc", "bbox_2d", "poly", "poly_points", "crowd"};

// Thrown inside validation only; turned into ValidationResult::error.
struct Invalid {
  RecordRule rule;
  std::string what;
  std::string hint;
};

[[noreturn]] void invalid(RecordRule rule, std::string what, std::string hint) {
  throw Invalid{rule, std::move(what), std::move(hint)};
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  });
}

std::string short_json(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

std::string join_keys(const char* const* keys, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::string(keys[i]);
  return s;
}

// True if `text` has NaN/Infinity outside JSON strings (Python's json.dumps writes them).
bool has_non_finite_literal(std::string_view text) {
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (text.compare(i, 3, "NaN") == 0 || text.compare(i, 8, "Infinity") == 0) return true;
  }
  return false;
}

json parse_line(std::string_view line) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(line.begin(), line.end(), cb);
  } catch (const json::parse_error& e) {
    if (has_non_finite_literal(line))
      invalid(RecordRule::kNonFinite, "NaN/Infinity is not JSON",
              "drop or fix the object with the non-finite coordinate before writing the JSONL");
    invalid(RecordRule::kBadJson, "not valid JSON at byte " + std::to_string(e.byte),
            "each line must be one complete JSON object (UTF-8)");
  } catch (const json::out_of_range&) {
    invalid(RecordRule::kNonFinite, "a number too large for a double",
            "fix the coordinate at the source");
  }
  if (!duplicate.empty())
    invalid(RecordRule::kDuplicateKey, "key '" + duplicate + "' appears twice in one object",
            "write each key once");
  return j;
}

void check_keys(const json& obj, const char* const* allowed, size_t n, const std::string& prefix) {
  for (const auto& item : obj.items()) {
    const std::string& key = item.key();
    if (std::none_of(allowed, allowed + n, [&](const char* a) { return key == a; }))
      invalid(RecordRule::kUnknownField, prefix + "unknown key '" + key + "'",
              "allowed keys: " + join_keys(allowed, n));
  }
}

int image_side(const json& record, const char* key, int min_side) {
  if (!record.contains(key))
    invalid(RecordRule::kMissingField, std::string("missing '") + key + "'",
            "every record needs images, width, height and objects");
  const json& v = record[key];
  if (!v.is_number_integer() || v.get<int64_t>() < min_side || v.get<int64_t>() > kMaxImageSide)
    invalid(RecordRule::kBadImageSize,
            std::string(key) + " must be an integer >= " + std::to_string(min_side) + ", got " +
                short_json(v),
            min_side > 1 ? "protocol.pixel_extent=size_minus_one needs images of at least 2 pixels"
                         : "write the image size in pixels as an integer");
  return static_cast<int>(v.get<int64_t>());
}

// "<|coord_k|>" -> k (0..999); other strings fail.
int coord_token_value(const std::string& s, const std::string& where) {
  static const std::string kPrefix = "<|coord_", kSuffix = "|>";
  const bool shape = s.size() > kPrefix.size() + kSuffix.size() && s.compare(0, kPrefix.size(), kPrefix) == 0 &&
                     s.compare(s.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
  const std::string digits = shape ? s.substr(kPrefix.size(), s.size() - kPrefix.size() - kSuffix.size()) : "";
  const bool numeric = !digits.empty() && std::all_of(digits.begin(), digits.end(),
                                                      [](char c) { return c >= '0' && c <= '9'; });
  if (!numeric || (digits.size() > 1 && digits[0] == '0'))
    invalid(RecordRule::kBadCoordValue, where + ": '" + s + "' is neither a number nor <|coord_k|>",
            "write pixel numbers or \"<|coord_k|>\" strings with k in 0..999");
  if (digits.size() > 3)
    invalid(RecordRule::kCoordTokenOutOfRange, where + ": '" + s + "' is outside <|coord_0|>..<|coord_999|>",
            "coord tokens are bins 0..999");
  return std::stoi(digits);
}

void flatten(const json& v, int depth, std::vector<const json*>& out, const std::string& where) {
  if (!v.is_array()) {
    out.push_back(&v);
    return;
  }
  if (depth > kMaxGeometryNesting)
    invalid(RecordRule::kWrongType, where + ": nested deeper than " + std::to_string(kMaxGeometryNesting),
            "write a flat list (or a list of [x, y] points)");
  for (const auto& e : v) flatten(e, depth + 1, out, where);
}

struct Converter {
  const JsonlOptions& options;
  int width, height;
  RecordFixes& fixes;

  // Raw values of one geometry: numbers or bins, plus whether they are bins.
  struct Raw {
    std::vector<double> values;
    bool bins = false;
  };

  Raw read_values(const json& geometry, const std::string& where) {
    if (!geometry.is_array())
      invalid(RecordRule::kWrongType, where + " must be a list, got " + short_json(geometry),
              "write [x1, y1, x2, y2] or a flat polygon list");
    std::vector<const json*> flat;
    flatten(geometry, 1, flat, where);
    Raw raw;
    int num_tokens = 0;
    for (size_t i = 0; i < flat.size(); ++i) {
      const json& v = *flat[i];
      const std::string at = where + "[" + std::to_string(i) + "]";
      if (v.is_string()) {
        if (options.coords == CoordsMode::kPixel)
          invalid(RecordRule::kBadCoordValue, at + ": coord token string with data.coords=pixel",
                  "set data.coords to auto (or norm1000), or write pixel numbers");
        raw.values.push_back(coord_token_value(v.get_ref<const std::string&>(), at));
        ++num_tokens;
      } else if (v.is_number()) {
        const double x = v.get<double>();
        if (!std::isfinite(x))
          invalid(RecordRule::kNonFinite, at + " is not finite", "fix the coordinate at the source");
        raw.values.push_back(x);
      } else {
        invalid(RecordRule::kBadCoordValue, at + ": " + short_json(v) + " is not a coordinate",
                "write pixel numbers or \"<|coord_k|>\" strings");
      }
    }
    if (num_tokens > 0 && num_tokens < static_cast<int>(flat.size()))
      invalid(RecordRule::kBadCoordValue, where + " mixes coord tokens and numbers",
              "write one kind per geometry");
    raw.bins = num_tokens > 0 || options.coords == CoordsMode::kNorm1000;
    return raw;
  }

  // Clamps every value into [0, limit(axis)], counting moves.
  void clamp_all(std::vector<double>& v, bool bins) {
    for (size_t i = 0; i < v.size(); ++i) {
      const double hi = bins ? protocol::kMaxCoordBin
                             : protocol::pixel_extent(i % 2 == 0 ? width : height,
                                                      options.convention.pixel_extent);
      const double c = std::clamp(v[i], 0.0, hi);
      if (c != v[i]) ++fixes.clamped_coords;
      v[i] = c;
    }
  }

  std::vector<protocol::CoordValue> bins_to_coords(const std::vector<double>& v) {
    std::vector<protocol::CoordValue> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      out[i].c_gt = v[i] / protocol::kMaxCoordBin;
      out[i].bin = protocol::norm_to_bin(out[i].c_gt);
    }
    return out;
  }

  std::vector<protocol::CoordValue> box(const json& geometry, const std::string& where) {
    Raw raw = read_values(geometry, where);
    if (raw.values.size() != 4)
      invalid(RecordRule::kBadArity,
              where + ": " + std::to_string(raw.values.size()) + " values; bbox_2d needs exactly 4",
              "write [x1, y1, x2, y2]");
    bool swapped = false;
    for (int a = 0; a < 2; ++a) {
      if (raw.values[a + 2] >= raw.values[a]) continue;
      if (options.swapped_box == SwappedBoxPolicy::kReject)
        invalid(RecordRule::kSwappedBox,
                where + ": " + (a == 0 ? "x2 < x1" : "y2 < y1") + " (data.swapped_box=reject)",
                "write [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2, or set data.swapped_box=swap");
      std::swap(raw.values[a], raw.values[a + 2]);
      swapped = true;
    }
    if (swapped) ++fixes.swapped_boxes;
    clamp_all(raw.values, raw.bins);
    if (raw.bins) return bins_to_coords(raw.values);
    const auto b = protocol::box_from_pixels({raw.values[0], raw.values[1], raw.values[2], raw.values[3]},
                                             width, height, options.convention);
    return {b.begin(), b.end()};
  }

  std::vector<protocol::CoordValue> poly(const json& geometry, const std::string& where) {
    Raw raw = read_values(geometry, where);
    if (!protocol::valid_arity(protocol::GeometryKind::kPoly, raw.values.size()))
      invalid(RecordRule::kBadArity,
              where + ": " + std::to_string(raw.values.size()) +
                  " values; poly needs an even number >= 6",
              "write [x1, y1, x2, y2, x3, y3, ...] with at least 3 points");
    clamp_all(raw.values, raw.bins);
    if (raw.bins) return bins_to_coords(raw.values);
    return protocol::poly_from_pixels(raw.values, width, height, options.convention.pixel_extent);
  }
};

GtObject read_object(const json& o, size_t index, Converter& conv) {
  const std::string at = "objects[" + std::to_string(index) + "]";
  if (!o.is_object())
    invalid(RecordRule::kNotAnObject, at + " is not a JSON object", "each object is {\"desc\": ..., \"bbox_2d\": [...]}");
  check_keys(o, kObjectKeys, std::size(kObjectKeys), at + ": ");
  GtObject g;
  if (!o.contains("desc"))
    invalid(RecordRule::kMissingField, at + ": missing 'desc'", "every object needs a non-empty desc");
  if (!o["desc"].is_string())
    invalid(RecordRule::kWrongType, at + ".desc must be a string, got " + short_json(o["desc"]),
            "write the description as a string");
  g.desc = o["desc"].get<std::string>();
  if (is_blank(g.desc))
    invalid(RecordRule::kEmptyDesc, at + ".desc is empty", "give every object a description");
  if (protocol::contains_special_token_text(g.desc))
    invalid(RecordRule::kSpecialTokenInDesc, at + ".desc contains <|...|> special-token text",
            "remove the <|...|> text from the description");
  const bool has_box = o.contains("bbox_2d"), has_poly = o.contains("poly");
  if (!has_box && !has_poly)
    invalid(RecordRule::kNoGeometry, at + ": neither bbox_2d nor poly", "give exactly one geometry");
  if (has_box && has_poly)
    invalid(RecordRule::kTwoGeometries, at + ": both bbox_2d and poly", "keep exactly one geometry");
  if (has_box) {
    g.kind = protocol::GeometryKind::kBbox;
    g.coords = conv.box(o["bbox_2d"], at + ".bbox_2d");
  } else {
    g.kind = protocol::GeometryKind::kPoly;
    g.coords = conv.poly(o["poly"], at + ".poly");
  }
  if (o.contains("poly_points")) {
    const json& pp = o["poly_points"];
    if (!has_poly)
      invalid(RecordRule::kBadPolyPoints, at + ": poly_points without poly", "drop poly_points");
    if (!pp.is_number_integer() || pp.get<int64_t>() != static_cast<int64_t>(g.coords.size() / 2))
      invalid(RecordRule::kBadPolyPoints,
              at + ".poly_points is " + short_json(pp) + " but poly has " +
                  std::to_string(g.coords.size() / 2) + " points",
              "poly_points must equal len(poly) / 2, or be omitted");
  }
  if (o.contains("crowd")) {
    if (!o["crowd"].is_boolean())
      invalid(RecordRule::kWrongType, at + ".crowd must be true or false, got " + short_json(o["crowd"]),
              "write crowd as a JSON boolean");
    g.crowd = o["crowd"].get<bool>();
  }
  return g;
}

std::string resolve_image(const std::string& path, const RecordContext& ctx, const JsonlOptions& opt) {
  const fs::path p(path);
  if (p.is_absolute()) return path;
  if (!opt.image_root.empty()) return (fs::path(opt.image_root) / p).string();
  if (!ctx.jsonl_dir.empty()) return (fs::path(ctx.jsonl_dir) / p).string();
  return path;
}

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

Record read_record(std::string_view line, const RecordContext& ctx, const JsonlOptions& opt,
                   RecordFixes& fixes) {
  const json j = parse_line(line);
  if (!j.is_object())
    invalid(RecordRule::kNotAnObject, "the line is not a JSON object", "write one {...} record per line");
  check_keys(j, kRecordKeys, std::size(kRecordKeys), "");
  for (const char* key : {"images", "width", "height", "objects"})
    if (!j.contains(key))
      invalid(RecordRule::kMissingField, std::string("missing '") + key + "'",
              "every record needs images, width, height and objects");
  Record r;
  const json& images = j["images"];
  if (!images.is_array())
    invalid(RecordRule::kWrongType, "images must be a list of paths, got " + short_json(images),
            "write \"images\": [\"path/to/image.jpg\"]");
  if (images.empty()) invalid(RecordRule::kNoImages, "images is empty", "list at least one image path");
  for (const auto& im : images) {
    if (!im.is_string() || im.get_ref<const std::string&>().empty())
      invalid(RecordRule::kWrongType, "images must hold non-empty path strings, got " + short_json(im),
              "write \"images\": [\"path/to/image.jpg\"]");
    r.images.push_back(resolve_image(im.get<std::string>(), ctx, opt));
  }
  const int min_side = opt.convention.pixel_extent == protocol::PixelExtent::kSizeMinusOne ? 2 : 1;
  r.width = image_side(j, "width", min_side);
  r.height = image_side(j, "height", min_side);
  if (j.contains("summary")) {
    if (!j["summary"].is_string())
      invalid(RecordRule::kWrongType, "summary must be a string", "write summary as one line of text");
    r.summary = j["summary"].get<std::string>();
  }
  if (j.contains("metadata")) r.metadata_json = j["metadata"].dump();
  const json& objects = j["objects"];
  if (!objects.is_array())
    invalid(RecordRule::kWrongType, "objects must be a list, got " + short_json(objects),
            "write \"objects\": [{...}, ...] (an empty list is fine)");
  Converter conv{opt, r.width, r.height, fixes};
  for (size_t i = 0; i < objects.size(); ++i) r.objects.push_back(read_object(objects[i], i, conv));
  if (opt.check_images)
    for (const auto& im : r.images) {
      std::error_code ec;
      if (!fs::is_regular_file(im, ec))
        invalid(RecordRule::kMissingImage, "image file not found: " + im,
                opt.image_root.empty() ? "relative paths resolve against the JSONL's folder; set "
                                         "data.image_root if the images live elsewhere"
                                       : "relative paths resolve against data.image_root");
    }
  r.source = ctx.file + ":" + std::to_string(ctx.line);
  r.sample_key = fnv1a(std::to_string(ctx.line), fnv1a(fs::path(ctx.file).filename().string()));
  return r;
}

}  // namespace

ValidationResult validate_record(std::string_view line, const RecordContext& context,
                                 const JsonlOptions& options) {
  ValidationResult result;
  RecordFixes fixes;
  const std::string where = context.file + ":" + std::to_string(context.line);
  try {
    result.record = read_record(line, context, options, fixes);
    result.fixes = fixes;
  } catch (const Invalid& e) {
    result.error = RecordError{e.rule, where, e.what, e.hint};
  } catch (const std::exception& e) {
    // nlohmann type/out-of-range errors would be bugs in the checks above; report, never crash.
    result.error = RecordError{RecordRule::kBadJson, where, std::string("unreadable record: ") + e.what(), ""};
  }
  return result;
}

std::string JsonlSummary::format() const {
  std::ostringstream os;
  os << "file: " << file << "\n"
     << "lines: " << num_lines << " (blank: " << num_blank_lines << ")\n"
     << "valid records: " << num_valid << "\n"
     << "invalid records: " << num_invalid << "\n";
  for (const auto& [rule, n] : invalid_by_rule) os << "  " << rule << ": " << n << "\n";
  os << "objects: " << num_objects << " (bbox_2d " << num_bbox << ", poly " << num_poly
     << ", crowd " << num_crowd << ")\n"
     << "fixes: swapped boxes " << fixes.swapped_boxes << ", clamped coordinates "
     << fixes.clamped_coords << "\n";
  if (!first_errors.empty()) {
    os << "first invalid records:\n";
    for (const auto& e : first_errors) os << "  " << e << "\n";
    if (static_cast<int64_t>(first_errors.size()) < num_invalid)
      os << "  ... and " << (num_invalid - static_cast<int64_t>(first_errors.size())) << " more\n";
  }
  return os.str();
}

JsonlFile read_jsonl(const std::string& path, const JsonlOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw DataError("cannot open the JSONL file", path, "check the path in data.train_jsonl / data.val_jsonl");
  JsonlFile out;
  JsonlSummary& s = out.summary;
  s.file = path;
  RecordContext ctx;
  ctx.file = path;
  ctx.jsonl_dir = fs::path(path).parent_path().string();
  // Lines are validated in chunks on several threads (validate_record is pure), then taken in file
  // order, so counts, the first errors and the first error thrown are those of a sequential read.
  // (1M records: 52 s -> ~half on 2 cores.)
  const size_t num_threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
  constexpr size_t kChunkLines = 8192;
  std::vector<std::string> lines;
  std::vector<int64_t> line_numbers;
  std::vector<ValidationResult> results;
  auto take = [&](ValidationResult& v) {
    if (v.error) {
      if (options.on_invalid == InvalidPolicy::kError)
        throw DataError(v.error->what + " [rule " + record_rule_name(v.error->rule) + "]",
                        v.error->where, v.error->hint);
      ++s.num_invalid;
      ++s.invalid_by_rule[record_rule_name(v.error->rule)];
      if (s.first_errors.size() < JsonlSummary::kMaxListedErrors)
        s.first_errors.push_back(v.error->message() + " [rule " + record_rule_name(v.error->rule) + "]");
      return;
    }
    ++s.num_valid;
    s.fixes.swapped_boxes += v.fixes.swapped_boxes;
    s.fixes.clamped_coords += v.fixes.clamped_coords;
    for (const auto& o : v.record->objects) {
      ++s.num_objects;
      (o.kind == protocol::GeometryKind::kBbox ? s.num_bbox : s.num_poly)++;
      s.num_crowd += o.crowd ? 1 : 0;
    }
    out.records.push_back(std::move(*v.record));
  };
  auto flush = [&] {
    results.clear();
    results.resize(lines.size());
    const size_t threads = std::min(num_threads, (lines.size() + 255) / 256);
    std::vector<std::exception_ptr> errors(std::max<size_t>(threads, 1));
    auto work = [&](size_t t) {
      try {
        RecordContext c = ctx;
        for (size_t i = t; i < lines.size(); i += threads) {
          c.line = line_numbers[i];
          results[i] = validate_record(lines[i], c, options);
        }
      } catch (...) {
        errors[t] = std::current_exception();
      }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
    if (threads > 0) work(0);
    for (auto& th : pool) th.join();
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
    for (auto& v : results) take(v);
    lines.clear();
    line_numbers.clear();
  };
  std::string line;
  while (std::getline(in, line)) {
    ++s.num_lines;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (is_blank(line)) {
      ++s.num_blank_lines;
      continue;
    }
    lines.push_back(std::move(line));
    line_numbers.push_back(s.num_lines);
    if (lines.size() == kChunkLines) flush();
  }
  flush();
  if (in.bad()) throw DataError("read error", path, "check the file system");
  if (s.num_invalid > 0) {
    std::string counts;
    for (const auto& [rule, n] : s.invalid_by_rule) counts += (counts.empty() ? "" : ", ") + rule + " " + std::to_string(n);
    spdlog::warn("{}: skipped {} invalid record(s) of {} (data.on_invalid=skip): {}", path,
                 s.num_invalid, s.num_invalid + s.num_valid, counts);
  }
  if (s.fixes.swapped_boxes + s.fixes.clamped_coords > 0)
    spdlog::info("{}: swapped {} box(es), clamped {} coordinate(s) into range", path,
                 s.fixes.swapped_boxes, s.fixes.clamped_coords);
  return out;
}

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// (y, x) key of an object for the sorted order: (y1, x1) for boxes, (min y, min x) for polygons.
std::pair<double, double> sort_key(const GtObject& o) {
  if (o.kind == protocol::GeometryKind::kBbox) return {o.coords[1].c_gt, o.coords[0].c_gt};
  double min_x = 1.0, min_y = 1.0;
  for (size_t i = 0; i + 1 < o.coords.size(); i += 2) {
    min_x = std::min(min_x, o.coords[i].c_gt);
    min_y = std::min(min_y, o.coords[i + 1].c_gt);
  }
  return {min_y, min_x};
}

}  // namespace

std::vector<size_t> object_order(const std::vector<GtObject>& objects, ObjectOrder order,
                                 uint64_t sample_key, int64_t epoch) {
  std::vector<size_t> idx(objects.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  if (order == ObjectOrder::kSorted) {
    std::vector<std::pair<double, double>> keys(objects.size());
    for (size_t i = 0; i < objects.size(); ++i) keys[i] = sort_key(objects[i]);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  } else if (order == ObjectOrder::kRandom) {
    uint64_t epoch_state = static_cast<uint64_t>(epoch);
    uint64_t state = sample_key ^ splitmix64(epoch_state);
    // Fisher-Yates with our own generator: std::shuffle differs between standard libraries.
    for (size_t i = idx.size(); i > 1; --i) {
      const auto j = static_cast<size_t>((static_cast<unsigned __int128>(splitmix64(state)) * i) >> 64);
      std::swap(idx[i - 1], idx[j]);
    }
  }
  return idx;
}

ObjectOrder fn_injection_order(ObjectOrder configured) {
  return configured == ObjectOrder::kAsIs ? ObjectOrder::kAsIs : ObjectOrder::kSorted;
}

ObjectOrder object_order_from_name(const std::string& name) {
  if (name == "sorted") return ObjectOrder::kSorted;
  if (name == "as_is") return ObjectOrder::kAsIs;
  if (name == "random") return ObjectOrder::kRandom;
  throw ConfigError("invalid value '" + name + "'", "key data.object_order", "use one of sorted|as_is|random");
}

}  // namespace coordexp::data
