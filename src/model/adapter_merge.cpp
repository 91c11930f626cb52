// Merge math of adapter_merge.h: LoRA delta, merged LoRA and DoRA weights, coord-offset rows.
// Invariant checks only (shapes, ranges); the user-facing validation of an adapter against a base
// model (errors naming keys and both shapes) happens in the export command before these run.
#include "coordexp/model/adapter_merge.h"

#include <algorithm>

#include "coordexp/util/error.h"

namespace coordexp::model {
namespace {

void check_factors(const torch::Tensor& W, const torch::Tensor& A, const torch::Tensor& B) {
  COORDEXP_CHECK(W.dim() == 2 && A.dim() == 2 && B.dim() == 2, "W, A and B must be matrices");
  COORDEXP_CHECK(A.size(1) == W.size(1) && B.size(0) == W.size(0) && A.size(0) == B.size(1),
                 "W " << W.sizes() << ", A " << A.sizes() << ", B " << B.sizes() << " do not fit W + B A");
}

// Rows of [out, in] computed at a time: about 2 MiB of temporaries in the compute dtype, so a merge
// holds its output (the weight's size, in the weight's dtype) plus a few such blocks, not several
// full-size float64 copies. Every quantity is per output row (DoRA's norm too), so the result is the
// same as computing all rows at once.
int64_t rows_per_block(int64_t in, torch::ScalarType compute) {
  constexpr int64_t kBlockBytes = int64_t{2} << 20;
  return std::max<int64_t>(1, kBlockBytes / std::max<int64_t>(1, in * static_cast<int64_t>(c10::elementSize(compute))));
}

// out[rows] = f(rows of W + s B A in the compute dtype, first row), block by block; out has W's dtype.
template <typename F>
torch::Tensor merge_by_rows(const torch::Tensor& W_oi, const torch::Tensor& A_ri, const torch::Tensor& B_or,
                            double scale, F&& finish) {
  const auto compute = merge_compute_dtype(W_oi.scalar_type());
  torch::Tensor out = torch::empty(W_oi.sizes(), W_oi.options().memory_format(at::MemoryFormat::Contiguous));
  const torch::Tensor A = A_ri.to(compute);
  const int64_t rows = W_oi.size(0), step = rows_per_block(W_oi.size(1), compute);
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    const int64_t n = std::min(step, rows - r0);
    torch::Tensor merged =
        torch::matmul(B_or.narrow(0, r0, n).to(compute), A).mul_(scale).add_(W_oi.narrow(0, r0, n).to(compute));
    out.narrow(0, r0, n).copy_(finish(merged, r0, n));  // the one rounding to W's dtype
  }
  return out;
}

}  // namespace

torch::ScalarType merge_compute_dtype(torch::ScalarType weight_dtype) {
  return (weight_dtype == torch::kBFloat16 || weight_dtype == torch::kHalf) ? torch::kFloat : torch::kDouble;
}

torch::Tensor lora_weight_delta(const torch::Tensor& A_ri, const torch::Tensor& B_or, double scale,
                                torch::ScalarType compute) {
  COORDEXP_CHECK(A_ri.dim() == 2 && B_or.dim() == 2 && A_ri.size(0) == B_or.size(1),
                 "A " << A_ri.sizes() << " and B " << B_or.sizes() << " do not multiply as B A");
  return torch::matmul(B_or.to(compute), A_ri.to(compute)).mul_(scale);
}

torch::Tensor merge_lora_weight(const torch::Tensor& W_oi, const torch::Tensor& A_ri, const torch::Tensor& B_or,
                                double scale) {
  check_factors(W_oi, A_ri, B_or);
  return merge_by_rows(W_oi, A_ri, B_or, scale, [](torch::Tensor& merged, int64_t, int64_t) { return merged; });
}

torch::Tensor dora_row_norms(const torch::Tensor& W_oi, const torch::Tensor& A_ri, const torch::Tensor& B_or,
                             double scale, torch::ScalarType compute) {
  check_factors(W_oi, A_ri, B_or);
  return lora_weight_delta(A_ri, B_or, scale, compute).add_(W_oi.to(compute)).norm(2, {1});
}

torch::Tensor merge_dora_weight(const torch::Tensor& W_oi, const torch::Tensor& A_ri, const torch::Tensor& B_or,
                                const torch::Tensor& magnitude_o, double scale) {
  check_factors(W_oi, A_ri, B_or);
  COORDEXP_CHECK(magnitude_o.dim() == 1 && magnitude_o.size(0) == W_oi.size(0),
                 "magnitude " << magnitude_o.sizes() << " does not match W " << W_oi.sizes());
  const torch::Tensor m = magnitude_o.to(merge_compute_dtype(W_oi.scalar_type()));
  return merge_by_rows(W_oi, A_ri, B_or, scale, [&](torch::Tensor& merged, int64_t r0, int64_t n) {
    // PEFT detaches the norm (it is a constant of the merge, not part of the graph); no grad here anyway.
    const torch::Tensor factor = m.narrow(0, r0, n) / merged.norm(2, {1});
    return merged.mul_(factor.view({-1, 1}));
  });
}

torch::Tensor add_coord_offset_rows(const torch::Tensor& table_VH, const torch::Tensor& offset_NH, int64_t first_id) {
  COORDEXP_CHECK(table_VH.dim() == 2 && offset_NH.dim() == 2 && offset_NH.size(1) == table_VH.size(1),
                 "table " << table_VH.sizes() << " and offset " << offset_NH.sizes() << " differ in width");
  COORDEXP_CHECK(first_id >= 0 && first_id + offset_NH.size(0) <= table_VH.size(0),
                 "offset rows [" << first_id << ", " << first_id + offset_NH.size(0) << ") outside a table of "
                                 << table_VH.size(0) << " rows");
  const auto compute = merge_compute_dtype(table_VH.scalar_type());
  torch::Tensor out = table_VH.clone(at::MemoryFormat::Contiguous);
  const int64_t n = offset_NH.size(0), step = rows_per_block(table_VH.size(1), compute);
  for (int64_t r0 = 0; r0 < n; r0 += step) {
    const int64_t k = std::min(step, n - r0);
    torch::Tensor rows = out.narrow(0, first_id + r0, k);
    rows.copy_(rows.to(compute).add_(offset_NH.narrow(0, r0, k).to(compute)));  // one rounding to the table's dtype
  }
  return out;
}

}  // namespace coordexp::model
