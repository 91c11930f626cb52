// The detection prompt, one definition for training, rollout and inference: an optional system turn
// and the configured user text, whose "{format}" placeholder expands to an output-format instruction
// generated from the field order, object order and geometry kinds (so the prompt never contradicts
// the rendered answers); the image(s) come before the text in the user turn. Produces ChatPrompt
// values; tokenizing them is tokenizer/chat_format.h's job. No LibTorch, no I/O.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "coordexp/config/sections/data.h"
#include "coordexp/config/sections/protocol.h"
#include "coordexp/data/jsonl.h"
#include "coordexp/protocol/coordjson.h"
#include "coordexp/tokenizer/chat_format.h"

namespace coordexp::data {

// Geometry kinds the prompt announces (data.prompt_geometry).
enum class PromptGeometry : uint8_t { kBbox, kPoly, kBboxOrPoly };
PromptGeometry prompt_geometry_from_name(const std::string& name);  // ConfigError naming the key
bool prompt_allows(PromptGeometry geometry, protocol::GeometryKind kind);

// The output-format instruction: the one-line JSON shape with the configured field order, bare
// coordinate tokens on the 0..999 grid, the object order, the empty answer, and "no other text".
std::string format_instruction(protocol::FieldOrder field_order, ObjectOrder object_order,
                               PromptGeometry geometry);

// The resolved prompt text (placeholders expanded).
struct PromptSpec {
  std::optional<std::string> system;  // unset = no system turn
  std::string user_text;              // the text after the image(s)
  PromptGeometry geometry = PromptGeometry::kBbox;

  // From validated config sections. Throws ConfigError naming data.prompt_system / data.prompt_user
  // when the text contains special-token text (<|...|>), which would tokenize as a special token.
  // Warns (once per call) when prompt_user lacks "{format}".
  static PromptSpec from_config(const config::DataOptions& data, const config::ProtocolOptions& protocol);
};

// The one prompt builder: system turn (if any), then the user turn with one image item per entry of
// image_pad_counts (its <|image_pad|> count, in order) followed by the user text.
tokenizer::ChatPrompt detection_chat_prompt(const PromptSpec& spec, const std::vector<int>& image_pad_counts);

}  // namespace coordexp::data
