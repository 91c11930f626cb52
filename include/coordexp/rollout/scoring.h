// Reading parsed rollouts with their token statistics: a confidence score per parsed object from
// the raw model log-probabilities of its coord tokens, and CoordExp expectation coordinates from
// the coord logits kept during generation (GenerationOptions::keep_coord_logits). Pure functions
// over a protocol::ParseResult of the generated ids; no model.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "coordexp/coord/decode.h"
#include "coordexp/protocol/parse.h"

namespace coordexp::rollout {

// One score per parsed entry: exp(mean of raw_logprobs[p] over the entry's coord token positions
// p = entry.span.coord_positions), i.e. the geometric-mean probability the raw model gave the
// object's coordinates, in (0, 1]. 0 for an entry without coord tokens. Meaningful for valid
// entries (a dropped entry scores whatever coord tokens it had). raw_logprobs: GeneratedRow's, one
// per generated id (parsed = parse_ids of those ids). Throws InternalError when a position is
// outside raw_logprobs (the parse was of other ids).
std::vector<double> object_scores(const protocol::ParseResult& parsed, const std::vector<float>& raw_logprobs);

// Expectation readout (seed 9.3): per parsed entry, its coordinates in [0, 1], one per coord
// position: c = sum_k softmax(s / tau)_k * k/999 over the 1000 coord logits s kept at that step.
// ids: the generated ids; coord_logits_K: GeneratedRow::coord_logits_K (row j = the j-th coord id
// of ids). Throws InternalError when coord_logits_K does not have one row per coord id of ids.
std::vector<std::vector<double>> expectation_coords(const protocol::ParseResult& parsed,
                                                    const std::vector<int64_t>& ids,
                                                    const torch::Tensor& coord_logits_K,
                                                    coord::CoordIdRange coord_ids, double tau);

}  // namespace coordexp::rollout
