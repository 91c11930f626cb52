// CoordJSON answer text: escaping, record layout, rendering (see coordjson.h). Text only.
#include "coordexp/protocol/coordjson.h"

#include "coordexp/protocol/coords.h"
#include "coordexp/util/error.h"

namespace coordexp::protocol {

FieldOrder field_order(const config::ProtocolOptions& options) {
  options.validate();
  return options.field_order == "geometry_first" ? FieldOrder::kGeometryFirst
                                                 : FieldOrder::kDescFirst;
}

bool operator==(const Object& a, const Object& b) {
  return a.desc == b.desc && a.kind == b.kind && a.bins == b.bins;
}

const char* geometry_key(GeometryKind kind) {
  return kind == GeometryKind::kBbox ? "bbox_2d" : "poly";
}

bool valid_arity(GeometryKind kind, size_t num_values) {
  if (kind == GeometryKind::kBbox) return num_values == 4;
  return num_values >= 6 && num_values % 2 == 0;
}

bool contains_special_token_text(std::string_view s) {
  auto name_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '*';
  };
  for (size_t p = s.find("<|"); p != std::string_view::npos; p = s.find("<|", p + 1)) {
    size_t q = p + 2;
    while (q < s.size() && name_char(s[q])) ++q;
    if (q > p + 2 && q + 1 < s.size() && s[q] == '|' && s[q + 1] == '>') return true;
  }
  return false;
}

std::string coord_literal(int k) { return "<|coord_" + std::to_string(k) + "|>"; }

std::string escape_json_string(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  return out;
}

const char* token_type_name(TokenType type) {
  switch (type) {
    case TokenType::kStruct: return "struct";
    case TokenType::kDesc: return "desc";
    case TokenType::kCoord: return "coord";
    case TokenType::kEos: return "eos";
  }
  return "?";
}

const char* object_subset_name(ObjectSubset subset) {
  switch (subset) {
    case ObjectSubset::kUnassigned: return "unassigned";
    case ObjectSubset::kMatched: return "matched";
    case ObjectSubset::kFp: return "fp";
    case ObjectSubset::kInvalid: return "invalid";
    case ObjectSubset::kFn: return "fn";
  }
  return "?";
}

namespace {

uint32_t size32(const std::string& s) { return static_cast<uint32_t>(s.size()); }

void append_desc_field(std::string& out, const Object& object, ObjectChars& chars) {
  out += "\"desc\": \"";
  chars.desc.begin = size32(out);
  out += escape_json_string(object.desc);
  chars.desc.end = size32(out);
  out += '"';
}

void append_geometry_field(std::string& out, const Object& object, ObjectChars& chars) {
  out += '"';
  out += geometry_key(object.kind);
  out += "\": [";
  for (size_t i = 0; i < object.bins.size(); ++i) {
    if (i > 0) out += ", ";
    const uint32_t b = size32(out);
    out += coord_literal(object.bins[i]);
    chars.coords.push_back({b, size32(out)});
  }
  out += ']';
}

}  // namespace

ObjectChars append_object_record(std::string& out, const Object& object, FieldOrder order) {
  COORDEXP_CHECK(valid_arity(object.kind, object.bins.size()),
                 "geometry " << geometry_key(object.kind) << " with " << object.bins.size() << " values");
  for (int k : object.bins) COORDEXP_CHECK(k >= 0 && k <= kMaxCoordBin, "bin " << k);
  COORDEXP_CHECK(!object.desc.empty(), "empty desc");
  COORDEXP_CHECK(!contains_special_token_text(object.desc),
                 "desc contains special-token text: " << object.desc);
  ObjectChars chars;
  chars.record.begin = size32(out);
  out += '{';
  if (order == FieldOrder::kDescFirst) {
    append_desc_field(out, object, chars);
    out += ", ";
    append_geometry_field(out, object, chars);
  } else {
    append_geometry_field(out, object, chars);
    out += ", ";
    append_desc_field(out, object, chars);
  }
  out += '}';
  chars.record.end = size32(out);
  return chars;
}

AnswerText render_text(const std::vector<Object>& objects, FieldOrder order) {
  AnswerText a;
  a.text.reserve(32 + objects.size() * 120);
  a.text += kAnswerHead;
  for (size_t i = 0; i < objects.size(); ++i) {
    if (i > 0) a.text += kEntrySeparator;
    a.objects.push_back(append_object_record(a.text, objects[i], order));
  }
  a.array_close = size32(a.text);
  a.text += kAnswerClose;
  a.outer_close = a.array_close + 1;
  return a;
}

}  // namespace coordexp::protocol
