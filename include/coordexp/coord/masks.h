// The Unified Mask / Weight Spec (seed 5.5.4): per-token CE weights by token type for the three contexts
// gt, self_context and rollout (FP-neutral + EOS-enforced), built from plain token-type and object-span
// structs. The layout (types, object spans with subsets, the top-level closing positions from the
// brace scan) is the protocol's ResponseLayout. One implementation shared by every path.
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "coordexp/config/sections/loss.h"
#include "coordexp/protocol/coordjson.h"

namespace coordexp::coord {

// The response description is the protocol's (one set of types for spans, subsets and token types
// across modules); coord reads it, never builds its own.
using protocol::GeometryKind;
using protocol::ObjectSpan;
using protocol::ObjectSubset;
using protocol::ResponseLayout;
using protocol::TokenRange;
using protocol::TokenType;

enum class Context : uint8_t { kGt, kSelfContext, kRollout };

const char* to_string(Context c);

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
//                anything outside spans stay 0. rollout requires eos >= 0 and no kUnassigned object.
//                Shared tokens: BPE may fuse the end of one record with the start of the next (compact
//                JSON `},{`, `]},{"`), so that token lies in both spans. It gets what either span gives
//                it (both give struct weight), except that a token touching an fp or invalid span is 0:
//                FP-neutral wins, because a mistake's tokens must never be reinforced.
// Throws InternalError (file:line) when spans/positions are out of range or disagree with types.
TokenWeights build_token_weights(const ResponseLayout& layout, Context context, const config::LossOptions& loss,
                                 bool fn_coord_ce = false);

// Checks the invariants build_token_weights relies on (positions in range, coord positions typed kCoord
// inside their record, desc inside record, no coord position in two objects, each record begins
// after the previous one begins and ends after it ends: records may share boundary tokens, never
// nest). Throws InternalError.
void check_layout(const ResponseLayout& layout);

}  // namespace coordexp::coord
