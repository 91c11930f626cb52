// The assignment solver against brute force over every injection of the smaller side into the larger
// one (random rectangular matrices up to 7x7: integer costs with many ties, real costs, forbidden
// entries), plus hand-made cases for maximum cardinality, empty sides, the tie rule, determinism and
// rejected inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "coordexp/matching/assignment.h"
#include "coordexp/util/error.h"

namespace {

using coordexp::matching::Assignment;
using coordexp::matching::CostMatrix;
using coordexp::matching::solve_assignment;

constexpr double kInf = std::numeric_limits<double>::infinity();

// Best (forbidden pairs, finite cost) over every full injection of the smaller side into the larger.
struct Best {
  int forbidden = std::numeric_limits<int>::max();
  double cost = kInf;
};

void brute_force(const CostMatrix& m, int row, std::vector<char>& col_used, int forbidden, double cost,
                 Best& best) {
  const bool transpose = m.rows > m.cols;
  const int n = transpose ? m.cols : m.rows, w = transpose ? m.rows : m.cols;
  if (row == n) {
    if (forbidden < best.forbidden || (forbidden == best.forbidden && cost < best.cost)) best = {forbidden, cost};
    return;
  }
  for (int c = 0; c < w; ++c) {
    if (col_used[c]) continue;
    col_used[c] = 1;
    const double x = transpose ? m.at(c, row) : m.at(row, c);
    if (std::isinf(x))
      brute_force(m, row + 1, col_used, forbidden + 1, cost, best);
    else
      brute_force(m, row + 1, col_used, forbidden, cost + x, best);
    col_used[c] = 0;
  }
}

Best brute_force(const CostMatrix& m) {
  Best best;
  std::vector<char> used(std::max(m.rows, m.cols), 0);
  if (m.rows == 0 || m.cols == 0) return {0, 0.0};
  brute_force(m, 0, used, 0, 0.0, best);
  return best;
}

// Structural checks every result must pass: consistent inverse maps, finite pairs, the totals, and
// the documented tie rule (no equal-cost move to an earlier free row/column, no equal-cost crossing).
void expect_well_formed(const CostMatrix& m, const Assignment& a) {
  ASSERT_EQ(a.col_of_row.size(), static_cast<size_t>(m.rows));
  ASSERT_EQ(a.row_of_col.size(), static_cast<size_t>(m.cols));
  int assigned = 0;
  double total = 0.0;
  for (int r = 0; r < m.rows; ++r) {
    const int c = a.col_of_row[r];
    if (c < 0) continue;
    ASSERT_LT(c, m.cols);
    ASSERT_EQ(a.row_of_col[c], r);
    ASSERT_TRUE(std::isfinite(m.at(r, c))) << "forbidden pair (" << r << ", " << c << ") assigned";
    ++assigned;
    total += m.at(r, c);
  }
  for (int c = 0; c < m.cols; ++c) {
    if (a.row_of_col[c] >= 0) {
      ASSERT_EQ(a.col_of_row[a.row_of_col[c]], c);
    }
  }
  EXPECT_EQ(a.num_assigned, assigned);
  EXPECT_DOUBLE_EQ(a.total_cost, total);
  for (int r = 0; r < m.rows; ++r) {
    const int c = a.col_of_row[r];
    if (c < 0) continue;
    for (int k = 0; k < r; ++k)
      EXPECT_FALSE(a.col_of_row[k] < 0 && m.at(k, c) <= m.at(r, c)) << "row " << r << " could move to row " << k;
    for (int k = 0; k < c; ++k)
      EXPECT_FALSE(a.row_of_col[k] < 0 && m.at(r, k) <= m.at(r, c)) << "col " << c << " could move to col " << k;
    for (int r2 = r + 1; r2 < m.rows; ++r2) {
      const int c2 = a.col_of_row[r2];
      if (c2 < 0 || c2 > c) continue;
      EXPECT_FALSE(m.at(r, c2) + m.at(r2, c) <= m.at(r, c) + m.at(r2, c2))
          << "pairs (" << r << ", " << c << ") and (" << r2 << ", " << c2 << ") cross at equal cost";
    }
  }
}

CostMatrix matrix(int rows, int cols, const std::vector<double>& values) {
  CostMatrix m(rows, cols);
  m.values = values;
  return m;
}

TEST(Assignment, MatchesBruteForceOnRandomRectangularMatrices) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> dim(0, 7), small_int(0, 3);
  std::uniform_real_distribution<double> real(-2.0, 5.0), unit(0.0, 1.0);
  int cases = 0, with_forbidden = 0, partial = 0;
  for (int flavour = 0; flavour < 4; ++flavour) {
    for (int t = 0; t < 150; ++t) {
      const int rows = dim(rng), cols = dim(rng);
      CostMatrix m(rows, cols);
      const double p_forbidden = flavour >= 2 ? 0.1 + 0.6 * unit(rng) : 0.0;
      bool any_forbidden = false;
      for (double& x : m.values) {
        x = (flavour % 2 == 0) ? small_int(rng) : real(rng);  // integers: exact sums, many ties
        if (unit(rng) < p_forbidden) {
          x = kInf;
          any_forbidden = true;
        }
      }
      const Assignment a = solve_assignment(m);
      const Best best = brute_force(m);
      SCOPED_TRACE("flavour " + std::to_string(flavour) + " case " + std::to_string(t) + " (" +
                   std::to_string(rows) + "x" + std::to_string(cols) + ")");
      expect_well_formed(m, a);
      EXPECT_EQ(a.num_assigned, std::min(rows, cols) - best.forbidden);
      if (flavour % 2 == 0)
        EXPECT_EQ(a.total_cost, best.cost);
      else
        EXPECT_NEAR(a.total_cost, best.cost, 1e-12 * (1.0 + std::abs(best.cost)));
      ++cases;
      with_forbidden += any_forbidden;
      partial += a.num_assigned < std::min(rows, cols);
    }
  }
  EXPECT_EQ(cases, 600);
  EXPECT_GT(with_forbidden, 200);  // the generator really exercises forbidden entries...
  EXPECT_GT(partial, 20);          // ...including matrices with no full assignment
}

TEST(Assignment, EmptySidesAndAllForbidden) {
  for (auto [r, c] : {std::pair{0, 0}, std::pair{0, 4}, std::pair{3, 0}}) {
    const Assignment a = solve_assignment(CostMatrix(r, c));
    EXPECT_EQ(a.num_assigned, 0);
    EXPECT_EQ(a.col_of_row, std::vector<int>(r, -1));
    EXPECT_EQ(a.row_of_col, std::vector<int>(c, -1));
    EXPECT_EQ(a.total_cost, 0.0);
  }
  const Assignment none = solve_assignment(CostMatrix(3, 2, kInf));
  EXPECT_EQ(none.num_assigned, 0);
  EXPECT_EQ(none.col_of_row, (std::vector<int>{-1, -1, -1}));
}

TEST(Assignment, ForbiddenEntriesCardinalityFirstThenCost) {
  // Column 1 is forbidden for both rows: one pair only, and it must be the cheap one (row 1), even
  // though row 0 is inserted first.
  const Assignment a = solve_assignment(matrix(2, 2, {10, kInf, 1, kInf}));
  EXPECT_EQ(a.col_of_row, (std::vector<int>{-1, 0}));
  EXPECT_EQ(a.total_cost, 1.0);
  // Two pairs beat one cheaper pair: cardinality first.
  const Assignment b = solve_assignment(matrix(2, 2, {0, kInf, 1, 100}));
  EXPECT_EQ(b.col_of_row, (std::vector<int>{0, 1}));
  EXPECT_EQ(b.total_cost, 100.0);
  // Huge and tiny finite costs together stay exact (a big-M substitution would lose the 1e-9).
  const Assignment c = solve_assignment(matrix(2, 3, {1e15, 1e-9, kInf, 2e-9, 1e15, kInf}));
  EXPECT_EQ(c.col_of_row, (std::vector<int>{1, 0}));
  EXPECT_DOUBLE_EQ(c.total_cost, 1e-9 + 2e-9);
  // Tall matrix (transposed internally).
  const Assignment d = solve_assignment(matrix(3, 2, {5, 1, 1, 5, 3, 3}));
  EXPECT_EQ(d.col_of_row, (std::vector<int>{1, 0, -1}));
  EXPECT_EQ(d.total_cost, 2.0);
}

TEST(Assignment, TieRuleAndDeterminism) {
  // Duplicate rows (duplicate predictions): the earliest row is assigned, in both orientations.
  EXPECT_EQ(solve_assignment(matrix(3, 1, {2, 2, 2})).col_of_row, (std::vector<int>{0, -1, -1}));
  // Three identical rows, two columns: rows 0 and 1 are assigned, uncrossed.
  EXPECT_EQ(solve_assignment(matrix(3, 2, {9, 2, 9, 2, 9, 2})).col_of_row, (std::vector<int>{0, 1, -1}));
  // Duplicate columns (duplicate GT): the earliest column.
  EXPECT_EQ(solve_assignment(matrix(1, 3, {4, 4, 4})).col_of_row, (std::vector<int>{0}));
  // All equal: identity (interchangeable pairs keep index order).
  EXPECT_EQ(solve_assignment(CostMatrix(4, 4, 1.0)).col_of_row, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(solve_assignment(CostMatrix(3, 5, 0.0)).col_of_row, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(solve_assignment(CostMatrix(5, 3, 0.0)).row_of_col, (std::vector<int>{0, 1, 2}));

  std::mt19937 rng(7);
  std::uniform_int_distribution<int> cost(0, 2);
  CostMatrix big(40, 55);
  for (double& x : big.values) x = cost(rng);
  const Assignment first = solve_assignment(big);
  const Assignment again = solve_assignment(big);
  EXPECT_EQ(first.col_of_row, again.col_of_row);
  EXPECT_EQ(first.total_cost, again.total_cost);
  expect_well_formed(big, first);
}

TEST(Assignment, RejectsNanNegativeInfinityAndBadShape) {
  EXPECT_THROW(solve_assignment(matrix(1, 2, {0.0, std::nan("")})), coordexp::InternalError);
  EXPECT_THROW(solve_assignment(matrix(1, 2, {0.0, -kInf})), coordexp::InternalError);
  EXPECT_THROW(solve_assignment(matrix(2, 2, {0.0, 1.0, 2.0})), coordexp::InternalError);
}

}  // namespace
