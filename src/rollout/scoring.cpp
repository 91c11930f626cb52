// Object confidence scores and expectation coordinates of parsed rollouts (see scoring.h).
#include "coordexp/rollout/scoring.h"

#include <cmath>

#include "coordexp/util/error.h"

namespace coordexp::rollout {

std::vector<double> object_scores(const protocol::ParseResult& parsed, const std::vector<float>& raw_logprobs) {
  std::vector<double> out;
  out.reserve(parsed.entries.size());
  for (const auto& e : parsed.entries) {
    const auto& positions = e.span.coord_positions;
    if (positions.empty()) {
      out.push_back(0.0);
      continue;
    }
    double sum = 0.0;
    for (int32_t p : positions) {
      COORDEXP_CHECK(p >= 0 && static_cast<size_t>(p) < raw_logprobs.size(),
                     "coord position " << p << " outside the " << raw_logprobs.size() << " generated log-probabilities");
      sum += raw_logprobs[static_cast<size_t>(p)];
    }
    out.push_back(std::exp(sum / static_cast<double>(positions.size())));
  }
  return out;
}

std::vector<std::vector<double>> expectation_coords(const protocol::ParseResult& parsed,
                                                    const std::vector<int64_t>& ids,
                                                    const torch::Tensor& coord_logits_K,
                                                    coord::CoordIdRange coord_ids, double tau) {
  // Row of coord_logits_K for each generated position (-1: not a coord id).
  std::vector<int64_t> row_of(ids.size(), -1);
  int64_t rows = 0;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= coord_ids.first_id && ids[i] < coord_ids.first_id + coord::CoordIdRange::kNumBins) row_of[i] = rows++;
  const int64_t kept = coord_logits_K.defined() ? coord_logits_K.size(0) : 0;
  COORDEXP_CHECK(kept == rows, "coord_logits_K has " << kept << " rows for " << rows << " generated coord ids");
  torch::Tensor values;
  if (rows > 0) values = coord::decode_exp(coord::coord_probs(coord_logits_K.to(torch::kDouble), tau)).contiguous();
  std::vector<std::vector<double>> out;
  out.reserve(parsed.entries.size());
  for (const auto& e : parsed.entries) {
    std::vector<double> coords;
    for (int32_t p : e.span.coord_positions) {
      COORDEXP_CHECK(p >= 0 && static_cast<size_t>(p) < ids.size() && row_of[static_cast<size_t>(p)] >= 0,
                     "coord position " << p << " is not a generated coord id");
      coords.push_back(values.data_ptr<double>()[row_of[static_cast<size_t>(p)]]);
    }
    out.push_back(std::move(coords));
  }
  return out;
}

}  // namespace coordexp::rollout
