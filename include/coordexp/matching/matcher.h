// Channel-B step B2 (seed 7.2, 5.5.3): the rollout's valid predicted objects vs the GT objects ->
// cost matrix -> Hungarian (assignment.h) -> coord_gate / text_gate -> ValidMatched, FP, FN.
// Every geometry enters through its bounding box in normalized [0,1] coordinates (a polygon via its
// vertices' box). Stop-grad and LibTorch-free; y_in building is protocol/channel_b.h (this only sets
// its prefix subsets), masks coord/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordexp/config/sections/channel_b.h"
#include "coordexp/matching/assignment.h"
#include "coordexp/matching/box.h"
#include "coordexp/protocol/channel_b.h"
#include "coordexp/protocol/coordjson.h"
#include "coordexp/protocol/parse.h"

namespace coordexp::matching {

// One side of a pair: a predicted or GT object reduced to what matching reads.
struct MatchObject {
  std::string desc;                                           // as written (normalized on use)
  protocol::GeometryKind kind = protocol::GeometryKind::kBbox;
  Box box{};                                                  // bounding box, normalized [0,1]
};

// A protocol object (model output or GT bins): coordinates k / 999, then the bounding box.
MatchObject match_object_from_bins(const protocol::Object& object);
// A GT object with continuous normalized coordinates (data::GtObject's c_gt values, flat x, y, ...).
MatchObject match_object_from_norm(std::string desc, protocol::GeometryKind kind,
                                   const std::vector<double>& flat_xy);

// The valid entries of a parsed rollout (seed 7.2 B1), in order, with where each came from.
struct Predictions {
  std::vector<MatchObject> objects;
  std::vector<int32_t> entry_index;  // ascending; objects[p] is ParseResult::entries[entry_index[p]]
};
Predictions predictions_from_parse(const protocol::ParseResult& parsed);

// Desc as compared by cost_text / text_gate: ASCII letters lower-cased, runs of ASCII whitespace
// collapsed to one space, leading/trailing whitespace removed; other bytes kept as they are.
std::string normalize_desc(const std::string& desc);

// Pair cost of assignment.h's matrix (rows = predictions, cols = GT):
//   cost_l1 * mean_l1 + cost_iou * (1 - giou or 1 - iou) + cost_text * [normalized descs differ],
// +inf when the kinds differ and !cross_kind. `options` must be valid (MatchingOptions::validate).
CostMatrix build_cost_matrix(const std::vector<MatchObject>& preds, const std::vector<MatchObject>& gts,
                             const config::MatchingOptions& options);

struct MatchedPair {
  int pred = 0;        // index into the predictions
  int gt = 0;          // index into the GT objects
  double iou = 0.0;    // plain IoU of the two bounding boxes
  double l1 = 0.0;     // mean |pred - gt| over the 4 coordinates
  double cost = 0.0;   // the pair's entry of the cost matrix
};

// Partition of both sides: every prediction is in exactly one of matched / fp, every GT in exactly
// one of matched / fn. All lists ascend (matched and rejected by pred index).
struct MatchResult {
  std::vector<MatchedPair> matched;   // ValidMatched: assigned and accepted by the gates
  std::vector<int> fp;                // predictions left unassigned or gated out
  std::vector<int> fn;                // GT objects left unassigned or gated out
  std::vector<MatchedPair> rejected;  // assigned pairs the gates refused (diagnostics; in fp and fn)
};

// B2: builds the costs, solves the assignment, then keeps an assigned pair only if IoU >= min_iou,
// mean_l1 <= max_l1 and (text_gate) the normalized descs are equal. Throws ConfigError (naming the
// key) when `options` is invalid.
MatchResult match_objects(const std::vector<MatchObject>& preds, const std::vector<MatchObject>& gts,
                          const config::MatchingOptions& options);

// Finishes the rollout-prefix subsets of a y_in built from the same parse (protocol::build_y_in
// leaves valid entries kUnassigned): kMatched for predictions in result.matched, with gt_box = the
// matched GT's box from `gts` (the GT list given to match_objects), kFp otherwise. kInvalid and kFn
// objects are left alone. COORDEXP_CHECK: every kUnassigned prefix object is one of `preds` (same
// ParseResult).
void set_prefix_subsets(protocol::YIn& y_in, const Predictions& preds, const MatchResult& result,
                        const std::vector<MatchObject>& gts);

}  // namespace coordexp::matching
