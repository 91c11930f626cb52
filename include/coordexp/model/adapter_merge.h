// Merge math for LoRA / DoRA adapters and the coord-offset table: small pure functions over
// tensors (no files, no modules). Each computes in float64 for float32/float64 weights and in float32
// for 16-bit weights, and rounds to the weight's dtype once at the end. Shapes follow PEFT: W [out, in],
// A [r, in], B [out, r], magnitude [out]; scale = lora_alpha / r (PEFT's `scaling`).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace coordexp::model {

// The dtype merges of a `weight_dtype` weight are computed in (float64, or float32 for bf16/f16).
torch::ScalarType merge_compute_dtype(torch::ScalarType weight_dtype);

// scale * B @ A in `compute` dtype: [out, in] (the weight-space delta; model/adapter.h's lora_delta is
// the activation-space one, s * x A^T B^T).
torch::Tensor lora_weight_delta(const torch::Tensor& A_ri, const torch::Tensor& B_or, double scale,
                                torch::ScalarType compute);

// W + scale * B @ A, in W's dtype.
torch::Tensor merge_lora_weight(const torch::Tensor& W_oi, const torch::Tensor& A_ri, const torch::Tensor& B_or,
                                double scale);

// ||W + scale * B @ A|| over each output row ([out], `compute` dtype): DoRA's weight norm.
torch::Tensor dora_row_norms(const torch::Tensor& W_oi, const torch::Tensor& A_ri, const torch::Tensor& B_or,
                             double scale, torch::ScalarType compute);

// DoRA's merged weight (m / ||W + s B A||_row).view(-1, 1) * (W + s B A), in W's dtype.
torch::Tensor merge_dora_weight(const torch::Tensor& W_oi, const torch::Tensor& A_ri, const torch::Tensor& B_or,
                                const torch::Tensor& magnitude_o, double scale);

// A copy of `table_VH` (embed_tokens or lm_head weight) with offset_NH added to rows
// [first_id, first_id + N), in the table's dtype. Rows outside the range are copied bit for bit.
// For a tied head the shared embedding gets the table once (it is the head); an untied offset adds
// its embed table to embed_tokens and its head table to lm_head.
torch::Tensor add_coord_offset_rows(const torch::Tensor& table_VH, const torch::Tensor& offset_NH, int64_t first_id);

}  // namespace coordexp::model
