// Exact rectangular minimum-cost assignment (Hungarian / Jonker-Volgenant shortest augmenting paths
// with potentials, O(r^2 c) for r = min(rows, cols), c = max). Plain C++ on doubles; knows nothing of
// boxes or objects (matcher.h builds the costs). +inf marks a forbidden pair. Tie rule: see
// solve_assignment and docs/matching.md.
#pragma once

#include <cstddef>
#include <vector>

namespace coordexp::matching {

// Row-major cost matrix: rows = predictions, cols = GT objects (cost_PG).
struct CostMatrix {
  int rows = 0;
  int cols = 0;
  std::vector<double> values;  // rows * cols entries; finite or +inf (forbidden)

  CostMatrix() = default;
  CostMatrix(int num_rows, int num_cols, double fill = 0.0);
  double at(int r, int c) const { return values[static_cast<std::size_t>(r) * cols + c]; }
  double& at(int r, int c) { return values[static_cast<std::size_t>(r) * cols + c]; }
};

struct Assignment {
  std::vector<int> col_of_row;  // per row: its column, or -1 when unassigned
  std::vector<int> row_of_col;  // per column: its row, or -1 when unassigned
  int num_assigned = 0;
  double total_cost = 0.0;      // sum of the assigned (finite) costs
};

// Optimal assignment of `cost` (rows and cols may differ; either may be 0):
//  1. it uses only finite entries and assigns as many pairs as possible (maximum cardinality; with
//     no +inf entry that is min(rows, cols));
//  2. among those, its total cost is minimal (exact: no epsilon, no big-M substitution);
//  3. tie rule — among equal-cost alternatives the result is canonical: no assigned pair (i, j) can
//     move to an unassigned row i' < i or an unassigned column j' < j at equal or lower cost, and no
//     two assigned pairs cross (i1 < i2 with j1 > j2) when uncrossing them costs the same or less.
//     So duplicate predictions leave the earliest one assigned, duplicate GTs the earliest GT, and
//     interchangeable pairs keep index order. The result is a pure function of the matrix.
// COORDEXP_CHECK fails on NaN, -inf or values.size() != rows * cols.
Assignment solve_assignment(const CostMatrix& cost);

}  // namespace coordexp::matching
