// CoordJSON-constrained decoding (rollout.constrained): a byte-level automaton for the canonical
// answer text (protocol::render_text) plus <|im_end|>, applied to whole tokens. A token is allowed
// when all of its bytes can be consumed from the row's state; coord tokens only fill coord slots,
// <|im_end|> only follows the closing `]}`. Every finished answer parses (parse_ids) as kComplete
// with every entry valid. Masks are computed once per automaton state and shared by all rows of a
// factory (the cache is locked: rows may live on different threads, each used by one at a time).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "coordexp/config/sections/data.h"
#include "coordexp/protocol/coordjson.h"
#include "coordexp/rollout/constraint.h"
#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::rollout {

// Geometries a record may take; from data.prompt_geometry (the kinds the prompt announces).
enum class AllowedGeometry : uint8_t { kBbox, kPoly, kBboxOrPoly };
// "bbox" | "poly" | "bbox_or_poly"; ConfigError naming data.prompt_geometry otherwise.
AllowedGeometry allowed_geometry_from_name(const std::string& prompt_geometry);

struct CoordJsonConstraintOptions {
  protocol::FieldOrder field_order = protocol::FieldOrder::kDescFirst;  // protocol.field_order
  AllowedGeometry geometry = AllowedGeometry::kBbox;                    // data.prompt_geometry
  // Logit rows per step (the model's vocabulary, which may exceed tok.vocab_size(); the extra rows
  // are always forbidden). allowed() checks its vector has exactly this size.
  int64_t vocab_rows = 0;

  // protocol.field_order and data.prompt_geometry of a validated config, and the model's logit rows.
  static CoordJsonConstraintOptions from_config(const config::ProtocolOptions& protocol,
                                                const config::DataOptions& data, int64_t vocab_rows);
};

// The grammar, byte for byte (no whitespace variants):
//   {"objects": [  then  ]}  or  RECORD (", " RECORD)* ]}  then <|im_end|>
//   RECORD (desc_first)     = {"desc": "DESC", "bbox_2d": [C, C, C, C]}
//   RECORD (geometry_first) = {"bbox_2d": [C, C, C, C], "desc": "DESC"}
//   "poly": [C, C, ...] (even count >= 6, unbounded) in place of "bbox_2d" when allowed.
// C is one <|coord_0..999|> token (never <|coord_*|>). DESC is string content as
// escape_json_string writes it, which parse_ids accepts: strict UTF-8 (a token may carry part of a
// character, completed before the closing quote), no raw control byte, only the escapes \" \\ \b \f
// \n \r \t and \u00XX (lowercase, other control characters), not blank after decoding, no <|name|>
// text, and no special or coord token (non-special added tokens such as <think> are text, as in
// parse_ids). So a finished answer is exactly render_text of the objects it parses to.
// Throws InternalError when the tokenizer lacks the coord tokens or vocab_rows < tok.vocab_size();
// advance() throws InternalError for an id that allowed() forbade.
std::unique_ptr<ConstraintFactory> make_coordjson_constraint(const tokenizer::Tokenizer& tok,
                                                             const CoordJsonConstraintOptions& options);

}  // namespace coordexp::rollout
