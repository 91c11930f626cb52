// rollout/scoring.h on hand-built parse results: object scores are exp(mean raw log-prob) of each
// entry's coord positions (0 without coords, error for positions outside the row); expectation
// coordinates read the kept coord logits row of each coord position (peaked logits -> the bin's
// k/999, uniform -> 0.5) and reject a coord_logits_K that does not match the ids.
#include <gtest/gtest.h>

#include <cmath>

#include "coordexp/rollout/scoring.h"
#include "coordexp/util/error.h"

namespace cp = coordexp::protocol;
namespace cr = coordexp::rollout;

namespace {

cp::ParseResult with_entries(const std::vector<std::vector<int32_t>>& coord_positions) {
  cp::ParseResult p;
  for (const auto& pos : coord_positions) {
    cp::ParsedEntry e;
    e.span.coord_positions = pos;
    p.entries.push_back(e);
  }
  return p;
}

}  // namespace

TEST(RolloutScoring, ObjectScoreIsGeometricMeanCoordProbability) {
  const std::vector<float> lp{-0.1f, -2.0f, -0.5f, -0.3f, -4.0f, -1.0f};
  const auto parsed = with_entries({{0, 2, 3, 5}, {}, {1, 4}});
  const auto scores = cr::object_scores(parsed, lp);
  ASSERT_EQ(scores.size(), 3u);
  EXPECT_NEAR(scores[0], std::exp((-0.1 - 0.5 - 0.3 - 1.0) / 4), 1e-6);
  EXPECT_EQ(scores[1], 0.0);
  EXPECT_NEAR(scores[2], std::exp((-2.0 - 4.0) / 2), 1e-6);
  EXPECT_THROW(cr::object_scores(with_entries({{6}}), lp), coordexp::InternalError);
}

TEST(RolloutScoring, ExpectationCoordsReadTheirOwnLogitRows) {
  const coordexp::coord::CoordIdRange range{100};
  // ids: struct, coord 10, struct, coord 990, coord 500, struct
  const std::vector<int64_t> ids{5, 110, 6, 1090, 600, 7};
  auto logits = torch::zeros({3, 1000});
  logits[0][10] = 60.0;   // peaked at bin 10
  logits[1][990] = 60.0;  // peaked at bin 990
  // row 2 uniform: expectation 0.5
  const auto parsed = with_entries({{1, 3}, {4}});
  const auto c = cr::expectation_coords(parsed, ids, logits, range, 1.0);
  ASSERT_EQ(c.size(), 2u);
  ASSERT_EQ(c[0].size(), 2u);
  EXPECT_NEAR(c[0][0], 10.0 / 999, 1e-9);
  EXPECT_NEAR(c[0][1], 990.0 / 999, 1e-9);
  EXPECT_NEAR(c[1][0], 0.5, 1e-9);
  // A high temperature flattens the peak towards 0.5.
  const auto hot = cr::expectation_coords(parsed, ids, logits, range, 100.0);
  EXPECT_GT(hot[0][0], 0.3);
  EXPECT_THROW(cr::expectation_coords(parsed, ids, logits.slice(0, 0, 2), range, 1.0), coordexp::InternalError);
  EXPECT_THROW(cr::expectation_coords(with_entries({{2}}), ids, logits, range, 1.0), coordexp::InternalError);
}
