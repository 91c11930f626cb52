// The JSONL data contract (docs/data/JSONL_CONTRACT.md): one record per line with images, width,
// height, objects (desc + exactly one of bbox_2d / poly, optional poly_points and crowd), optional
// summary and metadata. Validates every rule with file, line, object index and the rule broken;
// converts coordinates with coordexp/protocol/coords.h (bin + c_gt per value); applies the
// invalid-record policy with counters; orders GT objects. No images are decoded, no tokens made.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordexp/config/sections/data.h"
#include "coordexp/config/sections/protocol.h"
#include "coordexp/protocol/coordjson.h"
#include "coordexp/protocol/coords.h"

namespace coordexp::data {

enum class CoordsMode : uint8_t { kAuto, kPixel, kNorm1000 };  // data.coords
enum class InvalidPolicy : uint8_t { kError, kSkip };             // data.on_invalid
enum class ObjectOrder : uint8_t { kSorted, kAsIs, kRandom };     // data.object_order
enum class SwappedBoxPolicy : uint8_t { kSwap, kReject };         // data.swapped_box

// Everything the validator needs, resolved from the `data` and `protocol` config sections.
struct JsonlOptions {
  CoordsMode coords = CoordsMode::kAuto;
  InvalidPolicy on_invalid = InvalidPolicy::kError;
  SwappedBoxPolicy swapped_box = SwappedBoxPolicy::kSwap;
  std::string image_root;    // "" = relative to the JSONL's folder
  bool check_images = true;  // false skips the file-exists check (tests, fuzzing)
  protocol::CoordConvention convention;

  static JsonlOptions from_config(const config::DataOptions& data,
                                  const config::ProtocolOptions& protocol);
};

// The rule a record broke (check-data counts invalid records by these names).
enum class RecordRule : uint8_t {
  kBadJson,             // not parseable JSON (byte offset given)
  kNonFinite,           // NaN / Infinity / a number too large for a double
  kDuplicateKey,        // a JSON object with the same key twice
  kNotAnObject,         // the line (or an objects[] entry) is not a JSON object
  kMissingField,        // images / width / height / objects / desc missing
  kUnknownField,        // a key outside the contract
  kWrongType,           // a field of the wrong JSON type
  kBadImageSize,        // width/height not a positive integer (>= 2 for size_minus_one)
  kNoImages,            // images is empty
  kEmptyDesc,           // desc empty or only whitespace
  kSpecialTokenInDesc,  // desc contains <|...|> text (it would become a special token)
  kNoGeometry,          // neither bbox_2d nor poly
  kTwoGeometries,       // both bbox_2d and poly
  kBadArity,            // bbox_2d != 4 values; poly odd or < 6 values (after flattening)
  kBadPolyPoints,       // poly_points != len(poly)/2, or poly_points without poly
  kBadCoordValue,       // not a number / "<|coord_k|>"; mixed kinds; tokens with data.coords=pixel
  kCoordTokenOutOfRange,// "<|coord_k|>" with k outside 0..999
  kSwappedBox,          // x2 < x1 or y2 < y1 with data.swapped_box=reject
  kMissingImage,        // an image file does not exist
};
const char* record_rule_name(RecordRule rule);  // snake_case, e.g. "bad_arity"

// A GT object after validation and conversion.
struct GtObject {
  std::string desc;
  protocol::GeometryKind kind = protocol::GeometryKind::kBbox;
  std::vector<protocol::CoordValue> coords;  // flat x, y, x, y, ...: bin and c_gt for each
  bool crowd = false;                        // evaluation only (never rendered)
  protocol::Object to_protocol() const;      // desc, kind and bins for rendering
};

struct Record {
  std::vector<std::string> images;  // resolved paths
  int width = 0;
  int height = 0;
  std::vector<GtObject> objects;    // file order
  std::string summary;              // "" when absent
  std::string metadata_json;        // compact JSON of `metadata`; "" when absent
  std::string source;               // "file.jsonl:17" for messages
  uint64_t sample_key = 0;          // stable per (file name, line): seeds random object order
};

// Repairs the contract allows, counted (nothing is silent).
struct RecordFixes {
  int64_t swapped_boxes = 0;    // boxes whose x or y pair was swapped (data.swapped_box=swap)
  int64_t clamped_coords = 0;   // coordinates moved into the image / [0, 999]
};

struct RecordError {
  RecordRule rule;
  std::string where;    // "file.jsonl:17"
  std::string what;     // "objects[2].bbox_2d: 3 values; bbox_2d needs exactly 4"
  std::string hint;     // how to fix it
  std::string message() const;  // where: what (hint: ...)
};

struct RecordContext {
  std::string file;       // for messages
  int64_t line = 0;       // 1-based
  std::string jsonl_dir;  // folder relative image paths resolve against ("" = cwd)
};

struct ValidationResult {
  std::optional<Record> record;      // set when valid
  std::optional<RecordError> error;  // set when invalid
  RecordFixes fixes;
};

// Validates and converts one line (without its newline). Never throws on any input bytes.
ValidationResult validate_record(std::string_view line, const RecordContext& context,
                                 const JsonlOptions& options);

struct JsonlSummary {
  std::string file;
  int64_t num_lines = 0;
  int64_t num_blank_lines = 0;  // empty/whitespace lines: ignored, but counted
  int64_t num_valid = 0;
  int64_t num_invalid = 0;
  std::map<std::string, int64_t> invalid_by_rule;  // rule name -> count
  std::vector<std::string> first_errors;           // up to kMaxListedErrors messages
  int64_t num_objects = 0, num_bbox = 0, num_poly = 0, num_crowd = 0;
  RecordFixes fixes;
  static constexpr size_t kMaxListedErrors = 20;
  // Multi-line human-readable report (what check-data prints).
  std::string format() const;
};

struct JsonlFile {
  std::vector<Record> records;
  JsonlSummary summary;
};

// Reads a JSONL file. kError: throws DataError for the first invalid record (file:line, object,
// rule, hint). kSkip: drops invalid records, counts them by rule and logs a warning with the counts.
// Throws DataError if the file cannot be read.
JsonlFile read_jsonl(const std::string& path, const JsonlOptions& options);

// Order in which a record's objects enter the GT sequence: indices into `objects`.
// kSorted: stable by (y1, x1) (polygons: min y, then min x) on c_gt; kAsIs: file order; kRandom:
// a permutation that depends only on (sample_key, epoch).
std::vector<size_t> object_order(const std::vector<GtObject>& objects, ObjectOrder order,
                                 uint64_t sample_key, int64_t epoch);
// FN injection in Channel-B uses the canonical order: kAsIs if configured, else kSorted.
ObjectOrder fn_injection_order(ObjectOrder configured);

ObjectOrder object_order_from_name(const std::string& name);  // data.object_order value

}  // namespace coordexp::data
