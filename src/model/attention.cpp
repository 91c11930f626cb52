// Eager, fused and chunked attention (see attention.h). The chunked kernel is flash-attention's
// algorithm written with LibTorch ops: per query chunk and key block it computes the scores, applies
// that block's mask, and keeps a running row max / row sum / weighted value sum (rescaled when a
// later block raises the max); backward recomputes each block's probabilities from the saved
// logsumexp and uses rowsum(dO * O) for the softmax gradient. Grouped-query heads are handled by
// viewing a chunk's g query heads of one kv head as g * rows rows of one matrix (no key copies).
#include "coordexp/model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "coordexp/model/autocast.h"
#include "coordexp/model/kv_cache.h"
#include "coordexp/util/error.h"
#include "coordexp/util/torch_compat.h"

namespace coordexp::model {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Softmax statistics: float32 for float32/bf16/fp16 activations, float64 for float64 ones.
torch::ScalarType stat_type(torch::ScalarType t) { return t == torch::kDouble ? torch::kDouble : torch::kFloat; }

// The dtype the matmuls run in: what autocast would cast q to (CPU or CUDA), else q's own dtype. The
// backward may run on a thread without autocast, so both directions cast explicitly to this.
torch::ScalarType matmul_type(const torch::Tensor& q) {
  const auto t = q.scalar_type();
  if (t == torch::kDouble || !autocast_active()) return t;
  const auto dev = q.device().type();
  return compat::autocast_enabled(dev) ? compat::autocast_dtype(dev) : t;
}

// The mask as the autograd function carries it: offsets as a device tensor for building blocks.
struct MaskParts {
  bool causal = false;
  torch::Tensor key_valid;  // bool [Bv, K] or undefined
  torch::Tensor offsets;    // int64 [Bo] on the keys' device
  int64_t min_offset = 0, max_offset = 0;
};

MaskParts mask_parts(bool causal, const torch::Tensor& key_valid, const std::vector<int64_t>& offsets,
                     const torch::Device& device) {
  MaskParts m;
  m.causal = causal;
  if (key_valid.defined() && key_valid.numel() > 0) m.key_valid = key_valid;  // empty = every key valid
  const std::vector<int64_t> off = offsets.empty() ? std::vector<int64_t>{0} : offsets;
  m.offsets = torch::tensor(off, torch::kLong).to(device);
  m.min_offset = *std::min_element(off.begin(), off.end());
  m.max_offset = *std::max_element(off.begin(), off.end());
  return m;
}

// Masked entries of queries [t0, t0 + c) x keys [s0, s0 + kb) as bool [Bo, 1, 1, c, kb] (broadcast
// over kv heads and the g query heads of each), or undefined when the whole block is visible.
torch::Tensor blocked_entries(const MaskParts& m, int64_t t0, int64_t c, int64_t s0, int64_t kb) {
  if (!m.causal) return {};
  if (!m.key_valid.defined() && s0 + kb - 1 <= m.min_offset + t0) return {};  // below every diagonal
  const auto opts = torch::TensorOptions(torch::kLong).device(m.offsets.device());
  auto qslot = m.offsets.view({-1, 1, 1}) + torch::arange(t0, t0 + c, opts).view({1, -1, 1});  // [Bo, c, 1]
  auto kslot = torch::arange(s0, s0 + kb, opts).view({1, 1, -1});
  auto blocked = kslot.gt(qslot);
  if (m.key_valid.defined()) blocked = blocked.logical_or(m.key_valid.narrow(1, s0, kb).logical_not().unsqueeze(1));
  blocked = blocked.logical_and(kslot.ne(qslot));  // a query always sees its own slot
  return blocked.view({blocked.size(0), 1, 1, c, kb});
}

// Keys a query chunk can see at all: under the causal mask none past the chunk's last slot.
int64_t chunk_key_end(const MaskParts& m, int64_t t0, int64_t c, int64_t K) {
  return m.causal ? std::min(K, m.max_offset + t0 + c) : K;
}

// Scores of one block as [B, nkv, g * c, kb] in the statistics dtype, masked entries -inf.
torch::Tensor block_scores(const torch::Tensor& qs, const torch::Tensor& kb_, const MaskParts& m, int64_t g,
                           int64_t t0, int64_t c, int64_t s0, torch::ScalarType st) {
  auto S = torch::matmul(qs, kb_.transpose(-1, -2)).to(st);
  const auto blocked = blocked_entries(m, t0, c, s0, kb_.size(2));
  if (blocked.defined()) S.view({S.size(0), S.size(1), g, c, S.size(3)}).masked_fill_(blocked, kNegInf);
  return S;
}

// A query chunk's rows [t0, t0 + c) of x [B, nh, T, hd] as [B, nkv, g * c, hd] (the layout whose
// matmul with [B, nkv, hd, K] serves all g heads of a kv head at once).
torch::Tensor chunk_rows(const torch::Tensor& x_BHTD, int64_t nkv, int64_t t0, int64_t c) {
  const int64_t B = x_BHTD.size(0), nh = x_BHTD.size(1), hd = x_BHTD.size(3);
  return x_BHTD.narrow(2, t0, c).reshape({B, nkv, (nh / nkv) * c, hd});
}

class ChunkedAttentionFn : public torch::autograd::Function<ChunkedAttentionFn> {
 public:
  // q [B, nh, T, hd], k/v [B, nkv, K, hd] -> [B, T, nh, hd].
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& key_valid, std::vector<int64_t> offsets,
                               bool causal, double scale, int64_t rows, int64_t cols) {
    const int64_t B = q.size(0), nh = q.size(1), T = q.size(2), hd = q.size(3);
    const int64_t nkv = k.size(1), g = nh / nkv, K = k.size(2);
    const auto mt = matmul_type(q), st = stat_type(q.scalar_type());
    const auto m = mask_parts(causal, key_valid, offsets, k.device());
    // Contiguous once: every chunk reads key blocks as plain batched matrices.
    const auto kc = k.to(mt).contiguous(), vc = v.to(mt).contiguous();
    auto out = torch::empty({B, T, nh, hd}, q.options().dtype(mt));
    auto lse = torch::empty({B, nh, T}, q.options().dtype(st));
    for (int64_t t0 = 0; t0 < T; t0 += rows) {
      const int64_t c = std::min(rows, T - t0);
      const auto qs = chunk_rows(q, nkv, t0, c).to(mt) * scale;
      const int64_t kend = chunk_key_end(m, t0, c, K);
      torch::Tensor row_max, row_sum, acc;  // [B, nkv, R, 1], [B, nkv, R, 1], [B, nkv, R, hd]
      for (int64_t s0 = 0; s0 < kend; s0 += cols) {
        const int64_t kb = std::min(cols, kend - s0);
        auto S = block_scores(qs, kc.narrow(2, s0, kb), m, g, t0, c, s0, st);
        auto block_max = S.amax(-1, /*keepdim=*/true);
        auto new_max = row_max.defined() ? torch::maximum(row_max, block_max) : block_max;
        // A row with every key of the blocks so far masked keeps max -inf; exp against 0 gives 0s.
        auto safe_max = new_max.masked_fill(new_max.eq(kNegInf), 0.0);
        S.sub_(safe_max).exp_();
        auto pv = torch::matmul(S.to(mt), vc.narrow(2, s0, kb)).to(st);
        auto psum = S.sum(-1, /*keepdim=*/true);
        if (!acc.defined()) {
          acc = pv;
          row_sum = psum;
        } else {  // rescale what earlier blocks summed against the old max
          auto alpha = (row_max - safe_max).exp_();
          acc = acc * alpha + pv;
          row_sum = row_sum * alpha + psum;
        }
        row_max = new_max;
      }
      // Every query sees at least its own slot (or, unmasked, every key), so row_sum > 0.
      auto oc = acc / row_sum;  // [B, nkv, R, hd]
      out.narrow(1, t0, c).copy_(oc.view({B, nh, c, hd}).permute({0, 2, 1, 3}));
      lse.narrow(2, t0, c).copy_((row_max + row_sum.log()).view({B, nh, c}));
    }
    ctx->save_for_backward({q, kc, vc, out, lse});
    ctx->saved_data["key_valid"] = key_valid;
    ctx->saved_data["offsets"] = offsets;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["rows"] = rows;
    ctx->saved_data["cols"] = cols;
    ctx->saved_data["q_dtype"] = static_cast<int64_t>(q.scalar_type());
    ctx->saved_data["k_dtype"] = static_cast<int64_t>(k.scalar_type());
    ctx->saved_data["v_dtype"] = static_cast<int64_t>(v.scalar_type());
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &kc = saved[1], &vc = saved[2], &out = saved[3], &lse = saved[4];
    const auto dout = grads[0];  // [B, T, nh, hd]
    const auto key_valid = ctx->saved_data["key_valid"].toTensor();
    const auto offsets = ctx->saved_data["offsets"].toIntVector();
    const bool causal = ctx->saved_data["causal"].toBool();
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t rows = ctx->saved_data["rows"].toInt(), cols = ctx->saved_data["cols"].toInt();
    const int64_t B = q.size(0), nh = q.size(1), T = q.size(2), hd = q.size(3);
    const int64_t nkv = kc.size(1), g = nh / nkv, K = kc.size(2);
    const auto mt = kc.scalar_type(), st = lse.scalar_type();
    const auto m = mask_parts(causal, key_valid, offsets, kc.device());
    auto dq = torch::empty({B, nh, T, hd}, q.options().dtype(st));
    auto dk = torch::zeros({B, nkv, K, hd}, kc.options().dtype(st));
    auto dv = torch::zeros({B, nkv, K, hd}, kc.options().dtype(st));
    // [B, T, nh, hd] rows [t0, t0 + c) in chunk_rows' layout.
    auto rows_of = [&](const torch::Tensor& x_BTHD, int64_t t0, int64_t c) {
      return chunk_rows(x_BTHD.narrow(1, t0, c).permute({0, 2, 1, 3}), nkv, 0, c);
    };
    for (int64_t t0 = 0; t0 < T; t0 += rows) {
      const int64_t c = std::min(rows, T - t0), R = g * c;
      const auto qs = chunk_rows(q, nkv, t0, c).to(mt) * scale;
      const auto dO = rows_of(dout, t0, c).to(mt);
      // rowsum(dO * O): the softmax gradient's subtracted term, sum_s P_s (dO . v_s).
      const auto D = (dO.to(st) * rows_of(out, t0, c).to(st)).sum(-1, /*keepdim=*/true);
      const auto row_lse = lse.narrow(2, t0, c).reshape({B, nkv, R, 1});
      torch::Tensor dq_acc;
      const int64_t kend = chunk_key_end(m, t0, c, K);
      for (int64_t s0 = 0; s0 < kend; s0 += cols) {
        const int64_t kb = std::min(cols, kend - s0);
        const auto kblk = kc.narrow(2, s0, kb), vblk = vc.narrow(2, s0, kb);
        auto P = block_scores(qs, kblk, m, g, t0, c, s0, st).sub_(row_lse).exp_();
        const auto Pm = P.to(mt);
        dv.narrow(2, s0, kb).add_(torch::matmul(Pm.transpose(-1, -2), dO).to(st));
        auto dS = torch::matmul(dO, vblk.transpose(-1, -2)).to(st).sub_(D).mul_(P);  // dL/dscores
        P = torch::Tensor();
        const auto dSm = dS.to(mt);
        auto dqb = torch::matmul(dSm, kblk).to(st);
        dq_acc = dq_acc.defined() ? dq_acc.add_(dqb) : dqb;
        dk.narrow(2, s0, kb).add_(torch::matmul(dSm.transpose(-1, -2), qs).to(st));  // qs carries the scale
      }
      dq.narrow(2, t0, c).copy_(dq_acc.mul_(scale).view({B, nh, c, hd}));
    }
    auto as = [&](const torch::Tensor& x, const char* key) {
      return x.to(static_cast<torch::ScalarType>(ctx->saved_data[key].toInt()));
    };
    return {as(dq, "q_dtype"), as(dk, "k_dtype"), as(dv, "v_dtype"), torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

AttentionKind parse_attention_kind(const std::string& value, const std::string& key) {
  if (value == "eager") return AttentionKind::kEager;
  if (value == "sdpa") return AttentionKind::kSdpa;
  if (value == "chunked") return AttentionKind::kChunked;
  throw ConfigError("invalid value '" + value + "'", "key " + key, "allowed: eager | sdpa | chunked");
}

const char* attention_kind_name(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kEager: return "eager";
    case AttentionKind::kSdpa: return "sdpa";
    case AttentionKind::kChunked: return "chunked";
  }
  return "?";
}

int64_t AttentionMask::offset(int64_t row) const {
  if (query_offsets.empty()) return 0;
  return query_offsets.size() == 1 ? query_offsets[0] : query_offsets.at(row);
}

int64_t AttentionMask::max_offset() const {
  return query_offsets.empty() ? 0 : *std::max_element(query_offsets.begin(), query_offsets.end());
}

int64_t AttentionMask::min_offset() const {
  return query_offsets.empty() ? 0 : *std::min_element(query_offsets.begin(), query_offsets.end());
}

torch::Tensor dense_attention_bias(const AttentionMask& mask, int64_t num_queries, int64_t num_keys,
                                   torch::ScalarType dtype, const torch::Device& device) {
  if (!mask.causal) return {};
  auto valid = mask.key_valid.defined() ? mask.key_valid
                                        : torch::ones({1, num_keys}, torch::TensorOptions(torch::kBool).device(device));
  std::vector<int64_t> offsets(valid.size(0), mask.offset(0));
  if (mask.query_offsets.size() > 1) {
    COORDEXP_CHECK(valid.size(0) == static_cast<int64_t>(mask.query_offsets.size()),
                   "AttentionMask: " << mask.query_offsets.size() << " offsets for " << valid.size(0) << " key rows");
    offsets = mask.query_offsets;
  }
  return make_attention_bias(valid, offsets, num_queries, dtype);
}

torch::Tensor eager_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& bias, double scale) {
  const int64_t B = q.size(0), nh = q.size(1), T = q.size(2), hd = q.size(3);
  const int64_t nkv = k.size(1), g = nh / nkv, K = k.size(2);
  auto qg = q.reshape({B, nkv, g * T, hd});
  auto scores = torch::matmul(qg, k.transpose(-1, -2)) * scale;  // [B, nkv, g*T, K]
  if (bias.defined()) scores = (scores.view({B, nkv, g, T, K}) + bias.unsqueeze(1)).view({B, nkv, g * T, K});
  auto probs = torch::softmax(scores, -1, stat_type(q.scalar_type())).to(q.scalar_type());
  return torch::matmul(probs, v).view({B, nh, T, hd});
}

torch::Tensor sdpa_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& bias, bool causal_only) {
  const int64_t g = q.size(1) / k.size(1);
  auto kr = g == 1 ? k : k.repeat_interleave(g, 1);
  auto vr = g == 1 ? v : v.repeat_interleave(g, 1);
#if COORDEXP_TORCH_AT_LEAST(2, 0)
  // The fused (flash / memory-efficient) kernels take is_causal but not an arbitrary float mask.
  if (causal_only) return compat::scaled_dot_product_attention(q, kr, vr, torch::Tensor(), /*is_causal=*/true);
#else
  (void)causal_only;  // 1.13 only has the math kernel: the bias costs nothing extra there
#endif
  return compat::scaled_dot_product_attention(q, kr, vr, bias.defined() ? bias.to(q.scalar_type()) : torch::Tensor());
}

AttentionChunks plan_attention_chunks(int64_t batch_heads, int64_t num_queries, int64_t num_keys,
                                      int64_t score_elem_bytes, int64_t budget_bytes) {
  COORDEXP_CHECK(batch_heads > 0 && num_keys > 0 && score_elem_bytes > 0 && budget_bytes > 0,
                 "plan_attention_chunks(" << batch_heads << ", " << num_queries << ", " << num_keys << ")");
  const int64_t T = std::max<int64_t>(num_queries, 1);
  const int64_t per_row = batch_heads * num_keys * score_elem_bytes;  // one query row against every key
  AttentionChunks ch;
  const int64_t rows_fit = budget_bytes / per_row;
  if (rows_fit >= std::min(kMinChunkRows, T)) {
    ch.query_rows = std::min(T, rows_fit);
    ch.key_cols = num_keys;
  } else {
    ch.query_rows = std::min(T, kMinChunkRows);
    ch.key_cols = std::clamp<int64_t>(budget_bytes / (batch_heads * ch.query_rows * score_elem_bytes), 1, num_keys);
  }
  const int64_t n = (T + ch.query_rows - 1) / ch.query_rows;  // even chunks: no tiny last one
  ch.query_rows = (T + n - 1) / n;
  return ch;
}

torch::Tensor chunked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const AttentionMask& mask, double scale, AttentionChunks chunks) {
  COORDEXP_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.sizes() == v.sizes() && q.size(0) == k.size(0) &&
                     q.size(3) == k.size(3) && k.size(1) > 0 && q.size(1) % k.size(1) == 0,
                 "chunked_attention: q " << q.sizes() << ", k " << k.sizes() << ", v " << v.sizes());
  const int64_t B = q.size(0), K = k.size(2);
  if (mask.causal) {
    if (mask.key_valid.defined())
      COORDEXP_CHECK(mask.key_valid.dim() == 2 && mask.key_valid.size(1) == K &&
                         (mask.key_valid.size(0) == 1 || mask.key_valid.size(0) == B) &&
                         mask.key_valid.scalar_type() == torch::kBool,
                     "chunked_attention: key_valid " << mask.key_valid.sizes() << " for " << K << " keys, batch " << B);
    COORDEXP_CHECK(mask.query_offsets.size() <= 1 || static_cast<int64_t>(mask.query_offsets.size()) == B,
                   "chunked_attention: " << mask.query_offsets.size() << " query offsets for batch " << B);
    // The last query's slot must be a key (its own slot is always attended).
    COORDEXP_CHECK(mask.max_offset() + q.size(2) <= K && mask.min_offset() >= 0,
                   "chunked_attention: queries at slots [" << mask.min_offset() << ", " << mask.max_offset() + q.size(2)
                                                           << ") but " << K << " keys");
  } else {
    COORDEXP_CHECK(!mask.key_valid.defined() && mask.query_offsets.empty(),
                   "chunked_attention: an unmasked (not causal) attention takes no key_valid or offsets");
  }
  const auto st = stat_type(q.scalar_type());
  const auto planned = plan_attention_chunks(B * q.size(1), q.size(2), K, c10::elementSize(st));
  if (chunks.query_rows <= 0) chunks.query_rows = planned.query_rows;
  if (chunks.key_cols <= 0) chunks.key_cols = chunks.query_rows == planned.query_rows ? planned.key_cols : K;
  // LibTorch 1.13's autograd Function records device info of every tensor argument and throws on an
  // undefined one: "every key valid" travels as an empty tensor (mask_parts reads it back as none).
  auto key_valid = mask.causal && mask.key_valid.defined()
                       ? mask.key_valid.to(k.device())
                       : torch::empty({0}, torch::TensorOptions(torch::kBool).device(k.device()));
  auto out = ChunkedAttentionFn::apply(q, k, v, key_valid, mask.causal ? mask.query_offsets : std::vector<int64_t>{},
                                       mask.causal, scale, chunks.query_rows, chunks.key_cols);
  return out.transpose(1, 2);  // [B, nh, T, hd] view of [B, T, nh, hd]
}

}  // namespace coordexp::model
