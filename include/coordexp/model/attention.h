// Attention kernels of the text decoder and the vision tower: eager (matmul + float32 softmax over a
// dense additive bias), the fused kernel (compat::scaled_dot_product_attention) and a memory-efficient
// chunked attention: a custom autograd function that walks query rows in chunks and keys in blocks
// with an online softmax, saves only q, k, v, the output and each row's logsumexp, and recomputes the
// probabilities block by block in backward. Its mask is described compactly (AttentionMask) and each
// block's part is built on the fly, so neither [B, H, T, K] scores nor a [B, 1, T, K] bias exist.
// Free functions, no module state; the decoder and the vision blocks choose one (modules.cpp).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace coordexp::model {

// model.attn_implementation: eager | sdpa | chunked.
enum class AttentionKind { kEager, kSdpa, kChunked };
// The kind for a config value; ConfigError naming `key` for anything else.
AttentionKind parse_attention_kind(const std::string& value, const std::string& key);
const char* attention_kind_name(AttentionKind kind);

// Which keys each query sees, without a dense tensor. Query j of batch row b sits at key slot
// query_offsets[b] + j (one entry = the same for every row). Causal: key s is visible iff
// key_valid[b, s] and s <= that slot, and a query always sees its own slot (padding queries then
// never produce NaN) -- exactly make_attention_bias (kv_cache.h). Not causal: every key is visible
// (the vision tower inside one image; key_valid and query_offsets must then be empty).
struct AttentionMask {
  bool causal = true;
  torch::Tensor key_valid;             // bool [B or 1, K] on the keys' device; undefined = all valid
  std::vector<int64_t> query_offsets;  // per row (size B) or one for all; empty = 0
  int64_t offset(int64_t row) const;   // query_offsets[row], [0] when one, 0 when empty
  int64_t max_offset() const;
  int64_t min_offset() const;
  static AttentionMask unmasked() {  // every query sees every key
    AttentionMask m;
    m.causal = false;
    return m;
  }
};

// The mask as the eager/sdpa paths take it: additive [B or 1, 1, T, K] of `dtype` (0 = attend, -inf =
// masked), undefined when nothing is masked (not causal).
torch::Tensor dense_attention_bias(const AttentionMask& mask, int64_t num_queries, int64_t num_keys,
                                   torch::ScalarType dtype, const torch::Device& device);

// softmax(q k^T * scale + bias) v with grouped-query heads: query head j uses kv head j / (nh / nkv).
// q [B, nh, T, hd], k/v [B, nkv, K, hd], bias [B or 1, 1, T, K] (or undefined). Returns [B, nh, T, hd].
// Materializes the [B, nh, T, K] scores (softmax in float32, float64 for float64 inputs).
torch::Tensor eager_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& bias, double scale);

// The same through compat::scaled_dot_product_attention (scale 1/sqrt(hd)); kv heads are repeated to
// the query heads. With `causal_only` (a plain causal mask, T == K, nothing padded) a LibTorch 2.x
// build passes is_causal instead of the bias so its fused kernels apply; 1.13 always uses `bias`.
torch::Tensor sdpa_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& bias, bool causal_only);

// Query rows per chunk and key columns per block of the chunked attention.
struct AttentionChunks {
  int64_t query_rows = 0;  // 0 = choose (plan_attention_chunks)
  int64_t key_cols = 0;    // 0 = choose; >= K = one block per chunk (no online rescaling)
};
// One block's scores are float [B, nh, query_rows, key_cols]; pick the sizes so that block stays within
// `budget_bytes`: whole key rows when at least kMinChunkRows of them fit, else kMinChunkRows rows and
// key blocks that fit. Query chunks are evened out (no tiny last chunk). batch_heads = B * nh.
inline constexpr int64_t kDefaultScoreBudgetBytes = int64_t(32) << 20;
inline constexpr int64_t kMinChunkRows = 16;
AttentionChunks plan_attention_chunks(int64_t batch_heads, int64_t num_queries, int64_t num_keys,
                                      int64_t score_elem_bytes, int64_t budget_bytes = kDefaultScoreBudgetBytes);

// eager_attention's result (same shapes and grouped heads) for `mask`, with gradients for q, k and v,
// in O(chunk) extra memory. Returns [B, nh, T, hd] as a transposed view of a [B, T, nh, hd] tensor
// (the decoder's o_proj reads that layout without a copy). Matmuls run in q's dtype (the autocast
// dtype under autocast), softmax statistics in float32 (float64 for float64 inputs).
torch::Tensor chunked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const AttentionMask& mask, double scale, AttentionChunks chunks = {});

}  // namespace coordexp::model
