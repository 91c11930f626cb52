// M-RoPE position ids, rotary tables and the vision position-table interpolation (see rope.h).
// Everything follows HF transformers' qwen3_vl code operation by operation, including float32
// angle products and torch.linspace for the interpolation grid.
#include "coordexp/model/rope.h"

#include <algorithm>
#include <string>

#include "coordexp/util/error.h"

namespace coordexp::model {
namespace {

using torch::indexing::None;
using torch::indexing::Slice;

struct Grid {
  int64_t t, h, w;
};

std::vector<Grid> grids_of(const torch::Tensor& grid_thw) {
  std::vector<Grid> out;
  if (!grid_thw.defined()) return out;
  if (grid_thw.dim() != 2 || grid_thw.size(1) != 3)
    throw DataError("image_grid_thw must have shape [num_images, 3]", "image_grid_thw");
  auto g = grid_thw.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* p = g.data_ptr<int64_t>();
  for (int64_t i = 0; i < g.size(0); ++i) {
    if (p[3 * i] <= 0 || p[3 * i + 1] <= 0 || p[3 * i + 2] <= 0)
      throw DataError("image_grid_thw row " + std::to_string(i) + " has a non-positive entry", "image_grid_thw");
    out.push_back({p[3 * i], p[3 * i + 1], p[3 * i + 2]});
  }
  return out;
}

}  // namespace

RopeIndex compute_rope_index(const torch::Tensor& input_ids, const torch::Tensor& grid_thw,
                             const torch::Tensor& attention_mask, const RopeIndexSpec& spec) {
  COORDEXP_CHECK(input_ids.dim() == 2, "input_ids must be [B, T]");
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  auto ids = input_ids.to(torch::kCPU, torch::kLong).contiguous();
  torch::Tensor mask = attention_mask.defined()
                           ? attention_mask.to(torch::kCPU).ne(0).contiguous()
                           : torch::ones({B, T}, torch::kBool);
  COORDEXP_CHECK(mask.sizes() == ids.sizes(), "attention_mask must match input_ids");
  const std::vector<Grid> grids = grids_of(grid_thw);
  const int64_t m = spec.spatial_merge_size;

  RopeIndex out;
  out.position_ids = torch::ones({3, B, T}, torch::kLong);
  out.rope_deltas = torch::zeros({B, 1}, torch::kLong);
  out.next_position.assign(B, 0);
  auto pos = out.position_ids.accessor<int64_t, 3>();
  const int64_t* idp = ids.data_ptr<int64_t>();
  const bool* mp = mask.data_ptr<bool>();
  const bool any_images = grid_thw.defined();
  size_t next_grid = 0;

  for (int64_t b = 0; b < B; ++b) {
    // Real tokens of the row and where they sit in the padded row.
    std::vector<int64_t> tok, col;
    for (int64_t t = 0; t < T; ++t)
      if (mp[b * T + t]) {
        tok.push_back(idp[b * T + t]);
        col.push_back(t);
      }
    const int64_t n = static_cast<int64_t>(tok.size());
    for (int64_t i = 0; i < n; ++i)
      if (tok[i] == spec.video_token_id)
        throw DataError("video inputs are not supported (found <|video_pad|> at row " + std::to_string(b) +
                            ", position " + std::to_string(col[i]) + ")", "input_ids");
    // Visual blocks are announced by <|vision_start|> followed by an image pad (HF's counting).
    int64_t num_images = 0;
    for (int64_t i = 0; i + 1 < n; ++i)
      if (tok[i] == spec.vision_start_token_id && tok[i + 1] == spec.image_token_id) ++num_images;

    std::vector<int64_t> pt(n), ph(n), pw(n);
    int64_t st = 0, next = 0, max_pos = -1;
    for (int64_t k = 0; k < num_images; ++k) {
      int64_t ed = st;
      while (ed < n && tok[ed] != spec.image_token_id) ++ed;
      COORDEXP_CHECK(ed < n, "image block counted but not found");
      if (next_grid >= grids.size())
        throw DataError("row " + std::to_string(b) + " has more image blocks than image_grid_thw rows (" +
                            std::to_string(grids.size()) + ")", "image_grid_thw",
                        "pass one grid row per image, in order of appearance");
      const Grid g = grids[next_grid++];
      if (g.h % m != 0 || g.w % m != 0)
        throw DataError("image grid (" + std::to_string(g.h) + ", " + std::to_string(g.w) +
                            ") is not a multiple of spatial_merge_size " + std::to_string(m), "image_grid_thw");
      const int64_t tm = g.t, hm = g.h / m, wm = g.w / m, ntok = tm * hm * wm;
      int64_t run = 0;
      while (ed + run < n && tok[ed + run] == spec.image_token_id) ++run;
      if (run != ntok)
        throw DataError("image block " + std::to_string(k) + " of row " + std::to_string(b) + " has " +
                            std::to_string(run) + " <|image_pad|> tokens but its grid (" + std::to_string(g.t) + ", " +
                            std::to_string(g.h) + ", " + std::to_string(g.w) + ") needs " + std::to_string(ntok),
                        "input_ids", "expand each image placeholder to grid_t*grid_h*grid_w/merge^2 pads");
      for (int64_t i = st; i < ed; ++i) pt[i] = ph[i] = pw[i] = next + (i - st);
      const int64_t base = next + (ed - st);
      int64_t j = ed;
      for (int64_t ti = 0; ti < tm; ++ti)
        for (int64_t hi = 0; hi < hm; ++hi)
          for (int64_t wi = 0; wi < wm; ++wi, ++j) {
            pt[j] = base + ti;
            ph[j] = base + hi;
            pw[j] = base + wi;
          }
      next = base + std::max({tm - 1, hm - 1, wm - 1}) + 1;
      st = ed + ntok;
    }
    for (int64_t i = st; i < n; ++i) pt[i] = ph[i] = pw[i] = next + (i - st);
    for (int64_t i = 0; i < n; ++i) {
      pos[0][b][col[i]] = pt[i];
      pos[1][b][col[i]] = ph[i];
      pos[2][b][col[i]] = pw[i];
      max_pos = std::max({max_pos, pt[i], ph[i], pw[i]});
    }
    out.next_position[b] = max_pos + 1;
    // HF's text-only branch takes the max over the whole row, padded slots (value 1) included.
    int64_t delta_max = max_pos;
    if (!any_images && n < T) delta_max = std::max<int64_t>(delta_max, 1);
    out.rope_deltas[b][0] = delta_max + 1 - T;
  }
  if (any_images && next_grid != grids.size())
    throw DataError("image_grid_thw has " + std::to_string(grids.size()) + " rows but input_ids contain " +
                        std::to_string(next_grid) + " image blocks", "image_grid_thw",
                    "each image needs <|vision_start|> followed by its <|image_pad|> run");
  return out;
}

torch::Tensor rope_inv_freq(int64_t dim, double theta) {
  auto exps = torch::arange(0, dim, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(dim);
  return torch::reciprocal(torch::pow(theta, exps));
}

std::pair<torch::Tensor, torch::Tensor> mrope_cos_sin(const torch::Tensor& position_ids,
                                                      const torch::Tensor& inv_freq,
                                                      const std::vector<int64_t>& mrope_section) {
  COORDEXP_CHECK(position_ids.dim() == 3 && position_ids.size(0) == 3, "position_ids must be [3, B, T]");
  const int64_t half = inv_freq.size(0);
  auto inv = inv_freq.to(position_ids.device(), torch::kFloat);
  // ang[a, b, t, j] = float32(pos) * inv_freq[j]: a single rounding, like HF's K=1 matmul.
  auto ang = position_ids.to(torch::kFloat).unsqueeze(-1) * inv;  // [3, B, T, half]
  auto freqs = ang[0].clone();
  for (int axis = 1; axis <= 2; ++axis) {
    const int64_t end = std::min<int64_t>(3 * mrope_section[axis], half);
    if (end <= axis) continue;
    auto idx = Slice(axis, end, 3);
    freqs.index_put_({"...", idx}, ang[axis].index({"...", idx}));
  }
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos(), emb.sin()};
}

std::pair<torch::Tensor, torch::Tensor> vision_rope_cos_sin(const torch::Tensor& grid_thw,
                                                            int64_t head_dim, int64_t merge_size) {
  const auto grids = grids_of(grid_thw);
  auto inv = rope_inv_freq(head_dim / 2, 10000.0);  // head_dim/4 values
  std::vector<int64_t> rows, cols;
  int64_t max_hw = 0;
  for (const Grid& g : grids) {
    max_hw = std::max({max_hw, g.h, g.w});
    for (int64_t t = 0; t < g.t; ++t)
      for (int64_t bh = 0; bh < g.h / merge_size; ++bh)
        for (int64_t bw = 0; bw < g.w / merge_size; ++bw)
          for (int64_t ih = 0; ih < merge_size; ++ih)
            for (int64_t iw = 0; iw < merge_size; ++iw) {
              rows.push_back(bh * merge_size + ih);
              cols.push_back(bw * merge_size + iw);
            }
  }
  // HF gathers rows of the table outer(arange(max_hw), inv_freq): same float32 products.
  auto table = torch::outer(torch::arange(max_hw, torch::kFloat), inv);
  auto r = torch::tensor(rows, torch::kLong), c = torch::tensor(cols, torch::kLong);
  auto ang = torch::cat({table.index_select(0, r), table.index_select(0, c)}, -1);  // [Np, hd/2]
  auto emb = torch::cat({ang, ang}, -1);
  return {emb.cos(), emb.sin()};
}

torch::Tensor interpolate_pos_embed(const torch::Tensor& pos_table, const torch::Tensor& grid_thw,
                                    int64_t side, int64_t merge_size) {
  const auto grids = grids_of(grid_thw);
  std::vector<torch::Tensor> parts;
  for (const Grid& g : grids) {
    auto hi = torch::linspace(0, static_cast<double>(side - 1), g.h);  // float32, torch semantics
    auto wi = torch::linspace(0, static_cast<double>(side - 1), g.w);
    auto hf = hi.to(torch::kInt), wf = wi.to(torch::kInt);
    auto hc = (hf + 1).clamp_max(side - 1), wc = (wf + 1).clamp_max(side - 1);
    auto dh = hi - hf, dw = wi - wf;  // float32
    auto bh = (hf * side).to(torch::kLong).unsqueeze(1), bhc = (hc * side).to(torch::kLong).unsqueeze(1);
    auto wfl = wf.to(torch::kLong).unsqueeze(0), wcl = wc.to(torch::kLong).unsqueeze(0);
    const torch::Tensor idx[4] = {(bh + wfl).flatten(), (bh + wcl).flatten(), (bhc + wfl).flatten(),
                                  (bhc + wcl).flatten()};
    auto odh = (1 - dh).unsqueeze(1), ddh = dh.unsqueeze(1);
    auto odw = (1 - dw).unsqueeze(0), ddw = dw.unsqueeze(0);
    const torch::Tensor wts[4] = {(odh * odw).flatten(), (odh * ddw).flatten(), (ddh * odw).flatten(),
                                  (ddh * ddw).flatten()};
    torch::Tensor p;
    for (int k = 0; k < 4; ++k) {
      auto term = pos_table.index_select(0, idx[k].to(pos_table.device())) *
                  wts[k].to(pos_table.device(), pos_table.scalar_type()).unsqueeze(1);
      p = k == 0 ? term : p + term;
    }
    const int64_t D = pos_table.size(1);
    p = p.repeat({g.t, 1})
            .view({g.t, g.h / merge_size, merge_size, g.w / merge_size, merge_size, D})
            .permute({0, 1, 3, 2, 4, 5})
            .reshape({-1, D});
    parts.push_back(p);
  }
  return torch::cat(parts, 0);
}

std::vector<int64_t> vision_cu_seqlens(const torch::Tensor& grid_thw) {
  std::vector<int64_t> cu{0};
  for (const Grid& g : grids_of(grid_thw))
    for (int64_t t = 0; t < g.t; ++t) cu.push_back(cu.back() + g.h * g.w);
  return cu;
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t d = x.size(-1);
  return torch::cat({-x.index({"...", Slice(d / 2, None)}), x.index({"...", Slice(None, d / 2)})}, -1);
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return x * cos + rotate_half(x) * sin;
}

}  // namespace coordexp::model
