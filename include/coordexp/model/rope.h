// Position math of Qwen3-VL (spec sections 3.2, 3.3 and 5): M-RoPE position ids with rope deltas
// (HF get_rope_index) for any number of images and left/right padding, the interleaved text rotary
// cos/sin tables, the 2-D vision rotary tables, the bilinear interpolation of the learned vision
// position table, and the half-split rotation itself. Pure functions; angles are float32 products
// exactly as HF computes them. Videos are not supported (their pad tokens are an error).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace coordexp::model {

// Special token ids and geometry get_rope_index needs.
struct RopeIndexSpec {
  int64_t image_token_id = 151655;
  int64_t video_token_id = 151656;
  int64_t vision_start_token_id = 151652;
  int64_t spatial_merge_size = 2;
};

struct RopeIndex {
  torch::Tensor position_ids;  // int64 [3, B, T] (T, H, W rows); padded positions hold 1
  torch::Tensor rope_deltas;   // int64 [B, 1]: max position + 1 - T (HF convention)
  std::vector<int64_t> next_position;  // per row: largest position of a real token + 1 (0 if none)
};

// HF get_rope_index. input_ids: int64 [B, T]; grid_thw: int64 [N, 3] for all images of the batch in
// order (row-major over rows, then appearance), or undefined when there are none; attention_mask:
// [B, T] (nonzero = real token) or undefined (all real). Throws DataError when image blocks and
// grids disagree (count or block length) or when video tokens appear.
RopeIndex compute_rope_index(const torch::Tensor& input_ids, const torch::Tensor& grid_thw,
                             const torch::Tensor& attention_mask, const RopeIndexSpec& spec);

// inv_freq[j] = 1 / theta^(2j / dim), j < dim/2, float32 (HF formula, same ATen kernels).
torch::Tensor rope_inv_freq(int64_t dim, double theta);

// Interleaved M-RoPE tables: position_ids int64 [3, B, T] -> cos, sin float32 [B, T, head_dim].
// Frequency slot j takes the H position when j % 3 == 1 and j < 3*section[1], the W position when
// j % 3 == 2 and j < 3*section[2], else the T position.
std::pair<torch::Tensor, torch::Tensor> mrope_cos_sin(const torch::Tensor& position_ids,
                                                      const torch::Tensor& inv_freq,
                                                      const std::vector<int64_t>& mrope_section);

// 2-D vision rotary tables for all patches (merge-block order): cos, sin float32 [Np, head_dim].
std::pair<torch::Tensor, torch::Tensor> vision_rope_cos_sin(const torch::Tensor& grid_thw,
                                                            int64_t head_dim, int64_t merge_size);

// Bilinear (align-corners) interpolation of the learned position table, reordered into merge-block
// order and repeated over frames: pos_table [side*side, Dv] -> [Np, Dv] in pos_table's dtype.
// Differentiable with respect to pos_table.
torch::Tensor interpolate_pos_embed(const torch::Tensor& pos_table, const torch::Tensor& grid_thw,
                                    int64_t side, int64_t merge_size);

// Segment boundaries of per-frame attention: [0, cumsum(gh*gw repeated gt times)].
std::vector<int64_t> vision_cu_seqlens(const torch::Tensor& grid_thw);

// concat(-x[..., d/2:], x[..., :d/2]).
torch::Tensor rotate_half(const torch::Tensor& x);
// x*cos + rotate_half(x)*sin (cos/sin broadcast against x).
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

}  // namespace coordexp::model
