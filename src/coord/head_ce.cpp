// Chunked LM head + token CE (head_ce.h): a custom autograd function over row chunks; the forward
// keeps the CE gradient for the declared loss weights (all of it when K >= H, else its last chunk),
// the backward reuses it or recomputes the rest.
#include "coordexp/coord/head_ce.h"

#include <atomic>
#include <cmath>

#include "coordexp/coord/decode.h"
#include "coordexp/util/error.h"

namespace coordexp::coord {
namespace {

std::atomic<int64_t> g_backward_passes{0};

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

torch::ScalarType math_dtype(const torch::Tensor& t) {
  return t.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// a_r = scale[term_r] * row_weight_r (0 for rows without a CE term), in `dtype`.
torch::Tensor row_coefficients(const torch::Tensor& term_K, const torch::Tensor& row_weight_K,
                               const torch::Tensor& scale_3, torch::ScalarType dtype) {
  const torch::Tensor has = term_K.ge(0);
  const torch::Tensor idx = term_K.clamp_min(0);
  return (scale_3.to(dtype).index_select(0, idx) * row_weight_K.to(dtype)).mul(has.to(dtype));
}

// d (sum_r a_r CE_r) / d logits of one chunk: a_r * (softmax_r - onehot(target_r)).
torch::Tensor ce_logit_grad(const torch::Tensor& logits_cV, const torch::Tensor& lse_c, const torch::Tensor& targets_c,
                            const torch::Tensor& a_c) {
  torch::Tensor g = (logits_cV - lse_c.unsqueeze(1)).exp_().mul_(a_c.unsqueeze(1));
  g.scatter_add_(1, targets_c.unsqueeze(1), -a_c.unsqueeze(1));
  return g;
}

class ChunkedHeadCeFn : public torch::autograd::Function<ChunkedHeadCeFn> {
 public:
  static variable_list forward(AutogradContext* ctx, torch::Tensor hidden, torch::Tensor weight, torch::Tensor targets,
                               torch::Tensor term, torch::Tensor row_weight, torch::Tensor scale, int64_t first,
                               int64_t chunk) {
    const int64_t K = hidden.size(0), V = weight.size(0);
    const torch::ScalarType dt = math_dtype(hidden);
    // Keeping the CE gradient costs a [V, H] buffer from the forward to the backward; it saves the
    // backward's second pass over the vocabulary. Worth it when that buffer is no larger than the
    // [K, V] logits it replaces (K >= H); otherwise the backward recomputes each chunk.
    const bool wants_grad = (hidden.requires_grad() || weight.requires_grad()) && scale.abs().sum().item<double>() > 0.0;
    const bool grads = wants_grad && K >= hidden.size(1);
    const torch::Tensor W = weight.to(hidden.scalar_type());
    const torch::Tensor a = row_coefficients(term, row_weight, scale, dt);
    const torch::Tensor has = term.ge(0);
    torch::Tensor sums = torch::zeros({kNumHeadCeTerms}, hidden.options().dtype(dt));
    torch::Tensor coord = torch::empty({K, CoordIdRange::kNumBins}, hidden.options());
    torch::Tensor lse = torch::empty({K}, hidden.options().dtype(dt));
    // A frozen head (adapter training) gets no [V, H] weight gradient at all.
    const bool weight_grad = weight.requires_grad();
    // Otherwise the forward keeps the CE gradient of its last chunk ([n <= chunk, V]: no more than
    // the chunk's logits it already holds), so the backward recomputes every chunk but that one,
    // and none when all K rows fit in one chunk (one sample's answer, usually).
    const bool keep_last = wants_grad && !grads;
    torch::Tensor last_g;
    torch::Tensor pre_gh, pre_gw;
    if (grads) {
      pre_gh = torch::empty_like(hidden);
      if (weight_grad) pre_gw = torch::zeros({V, hidden.size(1)}, weight.options().dtype(dt));
    }
    for (int64_t r0 = 0; r0 < K; r0 += chunk) {
      const int64_t n = std::min(chunk, K - r0);
      const torch::Tensor h = hidden.narrow(0, r0, n);
      const torch::Tensor logits = torch::matmul(h, W.t()).to(dt);  // [n, V]: the only [., V] tensor
      coord.narrow(0, r0, n).copy_(logits.narrow(1, first, CoordIdRange::kNumBins));
      const torch::Tensor lse_c = torch::logsumexp(logits, 1);
      lse.narrow(0, r0, n).copy_(lse_c);
      const torch::Tensor tgt = targets.narrow(0, r0, n);
      const torch::Tensor ce = (lse_c - logits.gather(1, tgt.unsqueeze(1)).squeeze(1)).mul(has.narrow(0, r0, n).to(dt));
      const torch::Tensor w = row_weight.narrow(0, r0, n).to(dt);
      sums.index_add_(0, term.narrow(0, r0, n).clamp_min(0), ce * w);
      if (keep_last && r0 + n == K) last_g = ce_logit_grad(logits, lse_c, tgt, a.narrow(0, r0, n));
      if (grads) {
        const torch::Tensor g = ce_logit_grad(logits, lse_c, tgt, a.narrow(0, r0, n));
        pre_gh.narrow(0, r0, n).copy_(torch::matmul(g.to(W.scalar_type()), W));
        if (weight_grad) pre_gw.addmm_(g.t(), h.to(dt));
      }
    }
    ctx->save_for_backward({hidden, weight, targets, term, row_weight, scale, lse});
    ctx->saved_data["first"] = first;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["weight_grad"] = weight_grad;
    if (grads) {
      ctx->saved_data["pre_gh"] = pre_gh;
      if (weight_grad) ctx->saved_data["pre_gw"] = pre_gw;
    }
    if (last_g.defined()) ctx->saved_data["last_g"] = last_g;
    return {sums, coord};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &hidden = saved[0], &weight = saved[1], &targets = saved[2], &term = saved[3],
                        &row_weight = saved[4], &scale = saved[5], &lse = saved[6];
    const int64_t first = ctx->saved_data["first"].toInt(), chunk = ctx->saved_data["chunk"].toInt();
    const int64_t K = hidden.size(0);
    const bool weight_grad = ctx->saved_data["weight_grad"].toBool();
    const torch::ScalarType dt = math_dtype(hidden);
    const torch::Tensor g_sums = grad_out[0].defined() ? grad_out[0].to(torch::kDouble).cpu()
                                                       : torch::zeros({kNumHeadCeTerms}, torch::kDouble);
    const torch::Tensor g_coord = grad_out[1];

    // Reuse the forward's CE gradient iff, over the terms that have rows, the incoming gradients are
    // c x the declared ones for one c (the trainer: c = 1).
    const torch::Tensor present = torch::zeros({kNumHeadCeTerms}, torch::kLong)
                                      .index_add_(0, term.clamp_min(0).cpu(), term.ge(0).to(torch::kLong).cpu());
    const torch::Tensor scale_cpu = scale.to(torch::kDouble).cpu();
    const double* g = g_sums.data_ptr<double>();
    const double* s = scale_cpu.data_ptr<double>();
    const int64_t* has = present.data_ptr<int64_t>();
    // c: incoming = c x declared for every term with rows (the trainer: c = 1); then what the
    // forward kept, times c, is the exact gradient.
    bool proportional = true;
    double c = 0.0;
    for (int t = 0; t < kNumHeadCeTerms; ++t)
      if (has[t] > 0 && s[t] != 0.0) {
        c = g[t] / s[t];
        break;
      }
    for (int t = 0; t < kNumHeadCeTerms && proportional; ++t)
      if (has[t] > 0) proportional = std::abs(g[t] - c * s[t]) <= 1e-12 * std::max(std::abs(g[t]), 1e-300);
    torch::Tensor gh, gw;
    const torch::Tensor W = weight.to(hidden.scalar_type());
    // Taken out of the context, not copied: autograd keeps a node's saved_data until the whole graph
    // is freed (after the rest of the backward), and the [V, H] buffer is the size of the head.
    auto take = [&](const char* key) {
      const auto it = ctx->saved_data.find(key);
      if (it == ctx->saved_data.end()) return torch::Tensor();
      torch::Tensor t = it->second.toTensor();
      ctx->saved_data.erase(it);
      return t;
    };
    torch::Tensor pre_gh = take("pre_gh"), pre_gw = take("pre_gw"), last_g = take("last_g");
    if (proportional && pre_gh.defined()) {
      gh = c == 1.0 ? pre_gh : pre_gh * c;
      if (weight_grad) gw = c == 1.0 ? pre_gw : pre_gw * c;
    } else {
      // Chunk by chunk: the kept last chunk's gradient (times c), or the chunk recomputed with the
      // incoming gradients. The first chunk's weight gradient is written, not added to zeros.
      const bool use_last = proportional && last_g.defined();
      if (!use_last || K > chunk) ++g_backward_passes;
      gh = torch::empty_like(hidden);
      const torch::Tensor a = row_coefficients(term, row_weight, g_sums.to(hidden.device()), dt);
      for (int64_t r0 = 0; r0 < K; r0 += chunk) {
        const int64_t n = std::min(chunk, K - r0);
        const torch::Tensor h = hidden.narrow(0, r0, n);
        torch::Tensor gl;
        if (use_last && r0 + n == K) {
          gl = c == 1.0 ? last_g : last_g * c;
        } else {
          const torch::Tensor logits = torch::matmul(h, W.t()).to(dt);
          gl = ce_logit_grad(logits, lse.narrow(0, r0, n), targets.narrow(0, r0, n), a.narrow(0, r0, n));
        }
        gh.narrow(0, r0, n).copy_(torch::matmul(gl.to(W.scalar_type()), W));
        if (weight_grad) {
          if (r0 == 0) gw = torch::matmul(gl.t(), h.to(dt));
          else gw.addmm_(gl.t(), h.to(dt));
        }
      }
      if (weight_grad && K == 0) gw = torch::zeros({weight.size(0), hidden.size(1)}, weight.options().dtype(dt));
    }
    if (g_coord.defined()) {
      const torch::Tensor Wc = W.narrow(0, first, CoordIdRange::kNumBins);
      gh = gh + torch::matmul(g_coord.to(W.scalar_type()), Wc);
      if (weight_grad) gw.narrow(0, first, CoordIdRange::kNumBins).addmm_(g_coord.t().to(dt), hidden.to(dt));
    }
    return {gh.to(hidden.scalar_type()), weight_grad ? gw.to(weight.scalar_type()) : torch::Tensor(), {}, {}, {}, {}, {}, {}};
  }
};

}  // namespace

HeadCeResult chunked_head_ce(const torch::Tensor& hidden_KH, const torch::Tensor& weight_VH, const torch::Tensor& targets_K,
                             const torch::Tensor& term_K, const torch::Tensor& row_weight_K, int64_t coord_first_id,
                             const std::array<double, kNumHeadCeTerms>& grad_scale, int64_t chunk_rows) {
  COORDEXP_CHECK(hidden_KH.dim() == 2 && weight_VH.dim() == 2 && hidden_KH.size(1) == weight_VH.size(1),
                 "chunked head: hidden " << hidden_KH.sizes() << ", weight " << weight_VH.sizes());
  const int64_t K = hidden_KH.size(0);
  COORDEXP_CHECK(targets_K.numel() == K && term_K.numel() == K && row_weight_K.numel() == K,
                 "chunked head: " << K << " rows but targets " << targets_K.numel() << ", terms " << term_K.numel()
                                  << ", weights " << row_weight_K.numel());
  COORDEXP_CHECK(chunk_rows >= 1, "chunk_rows must be >= 1");
  COORDEXP_CHECK(coord_first_id >= 0 && coord_first_id + CoordIdRange::kNumBins <= weight_VH.size(0),
                 "coord rows " << coord_first_id << "+1000 outside the head's " << weight_VH.size(0) << " rows");
  const torch::Device d = hidden_KH.device();
  const torch::Tensor scale = torch::tensor({grad_scale[0], grad_scale[1], grad_scale[2]}, torch::kDouble).to(d);
  auto out = ChunkedHeadCeFn::apply(hidden_KH, weight_VH, targets_K.to(d).to(torch::kLong), term_K.to(d).to(torch::kLong),
                                    row_weight_K.to(d), scale, coord_first_id, chunk_rows);
  return {out[0], out[1]};
}

int64_t chunked_head_backward_passes() { return g_backward_passes.load(); }

}  // namespace coordexp::coord
