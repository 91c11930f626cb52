// CoordJSON text: the object record type shared by data, rendering and parsing; the exact
// single-line answer text (`{"objects": [{"desc": "...", "bbox_2d": [<|coord_k|>, ...]}, ...]}`)
// with the character layout of every record; token types and span structs. Text only: tokenizing
// and labeling live in render.h, parsing in parse.h. No LibTorch.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coordexp/config/sections/protocol.h"

namespace coordexp::protocol {

enum class GeometryKind : uint8_t { kBbox, kPoly };
enum class FieldOrder : uint8_t { kDescFirst, kGeometryFirst };

// From the validated `protocol` config section.
FieldOrder field_order(const config::ProtocolOptions& options);

// One object as the model writes it: description and geometry bins.
struct Object {
  std::string desc;                      // UTF-8, unescaped, non-empty
  GeometryKind kind = GeometryKind::kBbox;
  std::vector<int> bins;                 // flat x, y, x, y, ...: bbox 4 values, poly even >= 6; 0..999
};
bool operator==(const Object& a, const Object& b);

// "bbox_2d" or "poly".
const char* geometry_key(GeometryKind kind);
// Arity rule (after flattening): bbox exactly 4, poly even and >= 6.
bool valid_arity(GeometryKind kind, size_t num_values);
// True if `s` contains text of the form <|name|> (name of [A-Za-z0-9_*]): such text would be
// tokenized as a special/coord token, so descs must not contain it.
bool contains_special_token_text(std::string_view s);
// "<|coord_k|>".
std::string coord_literal(int k);
// JSON string body for `s` (no quotes): escapes ", \ and control characters (\b \f \n \r \t, else
// \u00xx), keeps everything else (non-ASCII included) like Python's json.dumps(ensure_ascii=False).
std::string escape_json_string(std::string_view s);

// Token types (seed 5.5.1), mutually exclusive; one per answer token.
enum class TokenType : uint8_t {
  kStruct,  // JSON syntax, keys, quotes, whitespace: everything not desc/coord/eos
  kDesc,    // tokens overlapping the characters of a desc string's content
  kCoord,   // <|coord_k|> vocabulary tokens (decided by id)
  kEos,     // the final <|im_end|>
};
const char* token_type_name(TokenType type);

// Half-open byte range [begin, end) in an answer text.
struct CharRange {
  uint32_t begin = 0;
  uint32_t end = 0;
  bool empty() const { return end <= begin; }
};

// Half-open token-index range [begin, end) in an answer id sequence (index 0 = first answer token).
struct TokenRange {
  int32_t begin = 0;
  int32_t end = 0;
  int32_t size() const { return end > begin ? end - begin : 0; }
  bool empty() const { return end <= begin; }
  bool contains(int32_t i) const { return i >= begin && i < end; }
};

// Object subset of a response (seed 5.5.1 / 5.5.4C). Stage-1 / Channel-A answers hold GT objects
// (kMatched: supervised as they are); a Channel-B y_in holds rollout prefix entries (kUnassigned until
// matching sets kMatched or kFp; kInvalid for complete entries that failed validation, masked like
// FP) and injected GT objects (kFn).
enum class ObjectSubset : uint8_t { kUnassigned, kMatched, kFp, kInvalid, kFn };
const char* object_subset_name(ObjectSubset subset);  // "unassigned" | "matched" | "fp" | "invalid" | "fn"

// Where one object record sits in the answer ids (seed 7.2 B1: span_i, desc_span_i, coord_pos_i), and
// what it is supervised as. The one span type of the project: the parser, the renderer, the y_in
// builder, the data pipeline and the mask / loss builders (coord/) all use it.
struct ObjectSpan {
  // Every token overlapping the record's characters `{` .. `}`: a BPE token fused with neighbouring
  // syntax (` [{"`, `]},`, `]}]}`) belongs to the object it overlaps. Adjacent objects share a token
  // only when one token covers both records (possible in model output, e.g. compact `},{`); the mask
  // builder's rule for such a token is in coord/masks.h (FP-neutral wins).
  TokenRange tokens;
  // Tokens overlapping the desc content (between its quotes). Rule for a token straddling the desc
  // boundary (BPE fuses e.g. `."` or ` "(`): it overlaps desc content, so it is kDesc and inside
  // this range; quote/punctuation characters fused into it are not supervised as struct.
  TokenRange desc;
  // Input positions (answer indices) of the geometry's coord tokens, in geometry order. The logit
  // that predicts the token at input position i sits at i - 1 (see coord_logit_position).
  std::vector<int32_t> coord_positions;
  GeometryKind geometry = GeometryKind::kBbox;
  ObjectSubset subset = ObjectSubset::kUnassigned;
  // Normalized [0,1] GT box (x1, y1, x2, y2) the object's geometry is supervised toward: its own GT
  // (gt / self_context / fn) or its matched GT (matched); set by data / Channel-B, unused for
  // fp / invalid / polygons.
  std::array<double, 4> gt_box{};
};

// Everything the mask and loss builders need about one response (an answer, a y_in, or several
// answers concatenated), in answer-token indices.
struct ResponseLayout {
  std::vector<TokenType> types;     // one per token
  std::vector<ObjectSpan> objects;  // sequence order
  // Top-level closure found by the brace scan (may coincide when BPE merges `]}`); -1 = absent.
  int32_t array_close = -1;   // token holding the `objects` array's `]`
  int32_t object_close = -1;  // token holding the outermost `}`
  int32_t eos = -1;           // the final <|im_end|>
};

// Causal shift: position (in the full prompt + answer sequence) of the logit that predicts the token
// at `input_position`. For answer index i with a prompt of P tokens: coord_logit_position(P + i).
inline int64_t coord_logit_position(int64_t input_position) { return input_position - 1; }

// Character layout of one record inside an answer text.
struct ObjectChars {
  CharRange record;               // `{` .. `}` inclusive
  CharRange desc;                 // desc content between its quotes (escaped form); empty if none
  std::vector<CharRange> coords;  // every coord literal of the geometry, in order
};

inline constexpr std::string_view kAnswerHead = "{\"objects\": [";
inline constexpr std::string_view kEntrySeparator = ", ";
inline constexpr std::string_view kAnswerClose = "]}";

// The answer text with its layout.
struct AnswerText {
  std::string text;                  // single line, no <|im_end|>
  std::vector<ObjectChars> objects;  // one per input object, in order
  uint32_t array_close = 0;          // index of the top-level `]`
  uint32_t outer_close = 0;          // index of the outermost `}`
};

// Appends one record (`{"desc": ..., "bbox_2d": [...]}`) to `out`; returns its layout.
// Precondition (COORDEXP_CHECK): valid arity, bins in 0..999, non-empty desc without <|...|> text.
ObjectChars append_object_record(std::string& out, const Object& object, FieldOrder order);
// `{"objects": [` + records joined by ", " + `]}`.
AnswerText render_text(const std::vector<Object>& objects, FieldOrder order);

}  // namespace coordexp::protocol
