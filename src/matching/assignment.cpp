// Rectangular min-cost assignment (see assignment.h). The shortest-augmenting-path Hungarian runs on
// lexicographic costs (number of forbidden pairs, sum of finite costs): a forbidden entry is (1, 0),
// a finite one (0, c). That ordered group keeps the algorithm exact — maximum finite cardinality
// first, then minimum cost — without a big-M constant that could swamp the finite costs. A final
// pass applies the tie rule. No knowledge of boxes or objects here.
#include "coordexp/matching/assignment.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "coordexp/util/error.h"

namespace coordexp::matching {

CostMatrix::CostMatrix(int num_rows, int num_cols, double fill)
    : rows(num_rows), cols(num_cols), values(static_cast<size_t>(num_rows) * num_cols, fill) {
  COORDEXP_CHECK(num_rows >= 0 && num_cols >= 0, "negative matrix shape " << num_rows << "x" << num_cols);
}

namespace {

// (forbidden pairs, finite cost sum), compared lexicographically. Counts are integers held in doubles
// (exact far beyond any matrix size); +inf in `forbidden` is the "unreached" sentinel.
struct LexCost {
  double forbidden = 0.0;
  double value = 0.0;
};
LexCost operator+(LexCost a, LexCost b) { return {a.forbidden + b.forbidden, a.value + b.value}; }
LexCost operator-(LexCost a, LexCost b) { return {a.forbidden - b.forbidden, a.value - b.value}; }
bool operator<(LexCost a, LexCost b) {
  return a.forbidden < b.forbidden || (a.forbidden == b.forbidden && a.value < b.value);
}
LexCost lex(double c) { return std::isinf(c) ? LexCost{1.0, 0.0} : LexCost{0.0, c}; }

// Hungarian on an n x m problem with n <= m (entry(i, j), 0-based). Returns the column of every row.
// Rows are inserted in index order; each takes the shortest augmenting path, scanning columns in
// ascending order with strict comparisons (so the lowest column wins a tie).
template <class Entry>
std::vector<int> hungarian(int n, int m, const Entry& entry) {
  const LexCost unreached{std::numeric_limits<double>::infinity(), 0.0};
  // 1-based as in the classic formulation: column 0 is the virtual start, p[j] the row of column j.
  std::vector<LexCost> u(n + 1), v(m + 1), minv(m + 1);
  std::vector<int> p(m + 1, 0), way(m + 1, 0);
  std::vector<char> used(m + 1);
  for (int i = 1; i <= n; ++i) {
    p[0] = i;
    int j0 = 0;
    std::fill(minv.begin(), minv.end(), unreached);
    std::fill(used.begin(), used.end(), 0);
    do {
      used[j0] = 1;
      const int i0 = p[j0];
      LexCost delta = unreached;
      int j1 = -1;
      for (int j = 1; j <= m; ++j) {
        if (used[j]) continue;
        const LexCost reduced = entry(i0 - 1, j - 1) - u[i0] - v[j];
        if (reduced < minv[j]) {
          minv[j] = reduced;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      COORDEXP_CHECK(j1 > 0, "no free column while inserting row " << i << " (n=" << n << ", m=" << m << ")");
      for (int j = 0; j <= m; ++j) {
        if (used[j]) {
          u[p[j]] = u[p[j]] + delta;
          v[j] = v[j] - delta;
        } else {
          minv[j] = minv[j] - delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {  // augment along the alternating path back to the virtual column
      const int j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int> col_of_row(n, -1);
  for (int j = 1; j <= m; ++j)
    if (p[j] != 0) col_of_row[p[j] - 1] = j - 1;
  return col_of_row;
}

// The tie rule of assignment.h. Each change lowers (sum of assigned row and column indices, number
// of crossing pairs) lexicographically — a move lowers the sum, an uncrossing keeps the sum and
// removes at least one crossing — so the loop ends. Changes never raise the cost.
void canonicalize_ties(const CostMatrix& cost, std::vector<int>& col_of_row, std::vector<int>& row_of_col) {
  bool changed = true;
  while (changed) {
    changed = false;
    for (int i = 0; i < cost.rows; ++i) {  // move to an earlier unassigned row
      const int j = col_of_row[i];
      if (j < 0) continue;
      for (int k = 0; k < i; ++k) {
        if (col_of_row[k] >= 0 || !(cost.at(k, j) <= cost.at(i, j))) continue;
        col_of_row[k] = j;
        col_of_row[i] = -1;
        row_of_col[j] = k;
        changed = true;
        break;
      }
    }
    for (int j = 0; j < cost.cols; ++j) {  // move to an earlier unassigned column
      const int i = row_of_col[j];
      if (i < 0) continue;
      for (int k = 0; k < j; ++k) {
        if (row_of_col[k] >= 0 || !(cost.at(i, k) <= cost.at(i, j))) continue;
        row_of_col[k] = i;
        row_of_col[j] = -1;
        col_of_row[i] = k;
        changed = true;
        break;
      }
    }
    for (int i1 = 0; i1 < cost.rows; ++i1) {  // uncross
      for (int i2 = i1 + 1; i2 < cost.rows; ++i2) {
        const int j1 = col_of_row[i1], j2 = col_of_row[i2];
        if (j1 < 0 || j2 < 0 || j1 < j2) continue;
        if (!(cost.at(i1, j2) + cost.at(i2, j1) <= cost.at(i1, j1) + cost.at(i2, j2))) continue;
        std::swap(col_of_row[i1], col_of_row[i2]);
        row_of_col[j2] = i1;
        row_of_col[j1] = i2;
        changed = true;
      }
    }
  }
}

}  // namespace

Assignment solve_assignment(const CostMatrix& cost) {
  COORDEXP_CHECK(cost.rows >= 0 && cost.cols >= 0 &&
                     cost.values.size() == static_cast<size_t>(cost.rows) * cost.cols,
                 "cost matrix " << cost.rows << "x" << cost.cols << " holds " << cost.values.size()
                                << " values");
  for (size_t k = 0; k < cost.values.size(); ++k) {
    const double c = cost.values[k];
    COORDEXP_CHECK(!std::isnan(c) && c != -std::numeric_limits<double>::infinity(),
                   "cost (" << k / std::max(cost.cols, 1) << ", " << k % std::max(cost.cols, 1)
                            << ") = " << c << "; costs must be finite or +inf");
  }
  Assignment out;
  out.col_of_row.assign(cost.rows, -1);
  out.row_of_col.assign(cost.cols, -1);
  if (cost.rows == 0 || cost.cols == 0) return out;

  if (cost.rows <= cost.cols) {
    out.col_of_row = hungarian(cost.rows, cost.cols, [&](int r, int c) { return lex(cost.at(r, c)); });
  } else {
    const auto row_of_col =
        hungarian(cost.cols, cost.rows, [&](int c, int r) { return lex(cost.at(r, c)); });
    for (int c = 0; c < cost.cols; ++c) out.col_of_row[row_of_col[c]] = c;
  }
  // The solve pads with forbidden pairs when it must; those are not assignments.
  for (int r = 0; r < cost.rows; ++r) {
    const int c = out.col_of_row[r];
    if (c >= 0 && std::isinf(cost.at(r, c))) out.col_of_row[r] = -1;
  }
  for (int r = 0; r < cost.rows; ++r)
    if (out.col_of_row[r] >= 0) out.row_of_col[out.col_of_row[r]] = r;
  canonicalize_ties(cost, out.col_of_row, out.row_of_col);
  for (int r = 0; r < cost.rows; ++r) {
    if (out.col_of_row[r] < 0) continue;
    ++out.num_assigned;
    out.total_cost += cost.at(r, out.col_of_row[r]);
  }
  return out;
}

}  // namespace coordexp::matching
