// Detection prompt text: the generated format instruction and the configured system/user turns.
// Every sentence of the instruction is derived from an option, so changing protocol.field_order,
// data.object_order or data.prompt_geometry changes the prompt with the answers.
#include "coordexp/data/prompt.h"

#include <spdlog/spdlog.h>

#include "coordexp/util/error.h"

namespace coordexp::data {

namespace {

constexpr const char* kFormatPlaceholder = "{format}";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

// One example record in the configured field order.
std::string example_record(protocol::FieldOrder order, const std::string& geometry) {
  const std::string desc = "\"desc\": \"<description>\"";
  return order == protocol::FieldOrder::kDescFirst ? "{" + desc + ", " + geometry + "}"
                                                   : "{" + geometry + ", " + desc + "}";
}

}  // namespace

PromptGeometry prompt_geometry_from_name(const std::string& name) {
  if (name == "bbox") return PromptGeometry::kBbox;
  if (name == "poly") return PromptGeometry::kPoly;
  if (name == "bbox_or_poly") return PromptGeometry::kBboxOrPoly;
  throw ConfigError("invalid value '" + name + "'", "key data.prompt_geometry", "use one of bbox|poly|bbox_or_poly");
}

bool prompt_allows(PromptGeometry geometry, protocol::GeometryKind kind) {
  switch (geometry) {
    case PromptGeometry::kBbox: return kind == protocol::GeometryKind::kBbox;
    case PromptGeometry::kPoly: return kind == protocol::GeometryKind::kPoly;
    case PromptGeometry::kBboxOrPoly: return true;
  }
  return false;
}

std::string format_instruction(protocol::FieldOrder field_order, ObjectOrder object_order,
                               PromptGeometry geometry) {
  const std::string bbox = "\"bbox_2d\": [x1, y1, x2, y2]";
  const std::string poly = "\"poly\": [x1, y1, x2, y2, x3, y3, ...]";
  const bool poly_only = geometry == PromptGeometry::kPoly;
  std::string s = "Answer with one line of JSON and no other text: {\"objects\": [" +
                  example_record(field_order, poly_only ? poly : bbox) + ", ...]}.";
  if (geometry == PromptGeometry::kBboxOrPoly)
    s += " An object may give its outline as " + poly + " (at least 3 vertices) instead of \"bbox_2d\".";
  const std::string geometry_name = geometry == PromptGeometry::kBbox   ? "\"bbox_2d\""
                                    : geometry == PromptGeometry::kPoly ? "\"poly\""
                                                                        : "the geometry";
  s += field_order == protocol::FieldOrder::kDescFirst
           ? " In every object write \"desc\" before " + geometry_name + "."
           : " In every object write " + geometry_name + " before \"desc\".";
  s += " Every coordinate is a bare coordinate token (not quoted, not a number) for a value from 0 to 999 "
       "on a 1000-step grid over the image: 0 is the left or top edge, 999 the right or bottom edge";
  if (geometry == PromptGeometry::kPoly)
    s += "; (x1, y1), (x2, y2), ... are the outline's vertices.";
  else
    s += "; (x1, y1) is the top-left and (x2, y2) the bottom-right corner of a box.";
  // data.object_order: sorted = stable by (min y, min x) of the geometry (jsonl.h object_order).
  s += object_order == ObjectOrder::kSorted
           ? " List the objects from top to bottom by their top edge, and from left to right by their left "
             "edge when top edges are equal."
           : " The objects may come in any order.";
  s += " With no objects, answer {\"objects\": []}.";
  return s;
}

PromptSpec PromptSpec::from_config(const config::DataOptions& data, const config::ProtocolOptions& protocol) {
  data.validate();
  protocol.validate();
  if (protocol::contains_special_token_text(data.prompt_system))
    throw ConfigError("contains special-token text <|...|>", "key data.prompt_system",
                      "remove it: the tokenizer would turn it into a special token");
  if (protocol::contains_special_token_text(data.prompt_user))
    throw ConfigError("contains special-token text <|...|>", "key data.prompt_user",
                      "remove it: the tokenizer would turn it into a special token");
  PromptSpec spec;
  spec.geometry = prompt_geometry_from_name(data.prompt_geometry);
  if (!data.prompt_system.empty()) spec.system = data.prompt_system;
  const bool has_format = data.prompt_user.find(kFormatPlaceholder) != std::string::npos;
  spec.user_text = replace_all(data.prompt_user, kFormatPlaceholder,
                               format_instruction(protocol::field_order(protocol),
                                                  object_order_from_name(data.object_order), spec.geometry));
  if (!has_format)
    spdlog::warn("data.prompt_user has no {{format}}: the prompt does not state the output format "
                 "(field order, coordinate tokens, object order)");
  return spec;
}

tokenizer::ChatPrompt detection_chat_prompt(const PromptSpec& spec, const std::vector<int>& image_pad_counts) {
  return tokenizer::make_image_prompt(image_pad_counts, spec.user_text, spec.system);
}

}  // namespace coordexp::data
