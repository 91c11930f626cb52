// The Unified Mask / Weight Spec (seed 5.5.4): per-token CE weights by token type for the three contexts
// gt, self_context and rollout (FP-neutral + EOS-enforced), built from plain token-type and object-span
// structs. The protocol layer produces equivalent data (spans, types, the top-level closing positions
// from its brace scan); this header does not include it. One implementation shared by every path.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "coordexp/config/sections/loss.h"

namespace coordexp::coord {

// Mutually exclusive token types of a response (seed 5.5.1). <|im_end|> is kEos, never kStruct.
enum class TokenType : uint8_t { kStruct, kDesc, kCoord, kEos };
// Channel-B object subsets. kInvalid = dropped-invalid rollout spans, masked like kFp.
enum class ObjectSubset : uint8_t { kMatched, kFp, kInvalid, kFn };
enum class GeometryKind : uint8_t { kBbox, kPoly };
enum class Context : uint8_t { kGt, kSelfContext, kRollout };

const char* to_string(Context c);
const char* to_string(ObjectSubset s);

// Half-open token range [begin, end) in response-token positions.
struct TokenRange {
  int64_t begin = 0;
  int64_t end = 0;
  bool contains(int64_t t) const { return t >= begin && t < end; }
};

// One object record of the response, in response-token positions.
struct ObjectSpan {
  TokenRange record;                     // the record's tokens, from its `{` to its `}`
  TokenRange desc;                       // the desc string's content tokens (inside record)
  std::vector<int64_t> coord_positions;  // its coord tokens in order (bbox: x1, y1, x2, y2)
  GeometryKind geometry = GeometryKind::kBbox;
  ObjectSubset subset = ObjectSubset::kMatched;  // rollout only; gt/self_context ignore it
  // Normalized [0,1] GT box (x1, y1, x2, y2) this object is supervised toward: its own GT (gt,
  // self_context, fn) or its matched GT (matched). Unused for fp/invalid and polygons.
  std::array<double, 4> gt_box{};
};

// Everything the mask builder needs about one response of length types.size().
struct ResponseLayout {
  std::vector<TokenType> types;     // per response token
  std::vector<ObjectSpan> objects;  // non-overlapping records
  // Top-level closure found by the protocol layer's brace scan (may coincide when BPE merges `]}`);
  // -1 = absent. Used by context=rollout (EOS-enforced).
  int64_t array_close = -1;   // the `objects` array's `]`
  int64_t object_close = -1;  // the outermost `}`
  int64_t eos = -1;           // <|im_end|>
};

// Per-token weights, float32 [T] each. Types are exclusive, so at most one weight is non-zero per token.
// L_struct_ce sums (struct + eos) * CE; the other terms use their own weight. A token is counted as a
// supervised item of a term when its weight for that term is > 0.
struct TokenWeights {
  torch::Tensor struct_w, desc_w, coord_w, eos_w;
};

// Weights per context (seed 5.5.4), scaled by the per-token weights of `loss`:
//  gt:           struct/desc/eos everywhere by type; coord = coord_ce.upweight when coord_ce.weight > 0.
//  self_context: all zero (token CE comes from the gt-context forward).
//  rollout:      zeros, then struct in matched spans; struct + desc in fn spans (+ coord when
//                fn_coord_ce); struct on array_close / object_close and eos on eos (EOS-enforced);
//                finally every fp/invalid span is zeroed (FP-neutral wins). Header, separators and
//                anything outside spans stay 0. rollout requires eos >= 0.
// Throws InternalError (file:line) when spans/positions are out of range, overlap or disagree with types.
TokenWeights build_token_weights(const ResponseLayout& layout, Context context, const config::LossOptions& loss,
                                 bool fn_coord_ce = false);

// Checks the invariants build_token_weights relies on (positions in range, coord positions typed kCoord
// inside their record, desc inside record, records non-overlapping). Throws InternalError.
void check_layout(const ResponseLayout& layout);

}  // namespace coordexp::coord
