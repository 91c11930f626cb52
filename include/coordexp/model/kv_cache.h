// Key/value cache for incremental decoding (spec section 8): preallocated [B, nkv, capacity, hd]
// keys (after k_norm and rotary) and values per decoder layer, with per-row lengths, per-slot
// validity (padding slots stay masked forever) and per-row rope positions, so rows of different
// lengths append without holes and can be truncated independently. Owns no model weights; the
// decoder calls append()/write()/keys()/values() once per forward. Also PrefixKv: one forward's
// per-layer keys/values of a sequence prefix, with autograd graph, for a later training forward.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace coordexp::model {

class KvCache {
 public:
  KvCache(int64_t num_layers, int64_t batch_size, int64_t num_kv_heads, int64_t head_dim,
          int64_t capacity, torch::TensorOptions options);

  int64_t num_layers() const { return static_cast<int64_t>(keys_.size()); }
  int64_t batch_size() const { return batch_size_; }
  int64_t capacity() const { return capacity_; }
  // Slots in use by `row` (leading padding included; trailing padding of a block is not).
  int64_t length(int64_t row) const;
  // Rope position (all three axes) that the next real token of `row` gets.
  int64_t next_position(int64_t row) const;
  bool empty() const;  // no row holds anything

  // Forgets slots >= new_length of `row` (new_length <= length(row)); the next position becomes
  // (largest position among the kept real slots) + 1, as a full forward over the kept prefix gives.
  void truncate(int64_t row, int64_t new_length);
  void reset();
  // Keeps only the given rows, in the given order: row i of the result is old row rows[i] (a row
  // may repeat, e.g. beams of one prompt that share a prefix; an empty list is not allowed). The
  // batch size becomes rows.size(); capacity, lengths and positions travel with the rows. Copies
  // the kept rows (the old storage is released), so later forwards cost only the kept rows.
  void select_rows(const std::vector<int64_t>& rows);

  // --- used by the decoder: one append() per forward, then write() per layer ---
  struct Append {
    std::vector<int64_t> offsets;  // slot of the block's first token, per row
    int64_t key_len = 0;           // keys [0, key_len) are attended by this block
    torch::Tensor key_valid;       // bool [B, key_len] on the keys' device: slot holds a real token
    torch::Tensor attn_bias;       // float [B, 1, T, key_len]: 0 = attend, -inf = masked (if asked for)
    // Rows with different offsets only: int64 [B * T] on the keys' device, the (row, slot) of every
    // token of the block, so write() stores all rows with one scatter per layer and tensor.
    torch::Tensor write_rows, write_slots;
  };
  // Reserves slots for a block of T tokens per row. mask: [B, T] (nonzero = real token; undefined =
  // all real); position_ids: int64 [3, B, T] of the block. Both are read on the host: pass host
  // tensors (Qwen3VL::forward does) and nothing is read back from the device. Throws DataError when a row would
  // exceed the capacity. A failed forward after append() leaves the cache unusable (reset()).
  // dense_bias = false leaves attn_bias undefined (a chunked-attention prefill needs only key_valid).
  Append append(const torch::Tensor& mask, const torch::Tensor& position_ids, torch::ScalarType bias_dtype,
                bool dense_bias = true);
  // Stores the block's k, v ([B, nkv, T, hd]) of `layer` at the planned slots.
  void write(int64_t layer, const Append& plan, const torch::Tensor& k, const torch::Tensor& v);
  torch::Tensor keys(int64_t layer, int64_t len) const;    // [B, nkv, len, hd] view
  torch::Tensor values(int64_t layer, int64_t len) const;  // [B, nkv, len, hd] view

 private:
  int64_t batch_size_, capacity_;
  std::vector<torch::Tensor> keys_, values_;  // per layer [B, nkv, capacity, hd]
  std::vector<int64_t> length_;               // per row
  std::vector<int64_t> next_position_;        // per row
  torch::Tensor slot_valid_;                  // bool [B, capacity] (CPU): slot holds a real token
  torch::Tensor slot_position_;               // int64 [B, capacity] (CPU): max rope position of the slot
};

// Per-layer keys/values of the first `length` positions of every row, captured by one forward
// (ForwardInputs::capture_prefix) and reused by a later forward over the same batch whose inputs agree
// on those positions (ForwardInputs::prefix; Channel-A's self-context forwards). The tensors are
// views of the capturing forward's own K/V (no copy) and keep its autograd graph, so gradients
// reaching them flow into that forward. Under the causal mask the hidden states of positions
// [0, length) depend only on the inputs there, which is what makes the reuse exact.
struct PrefixKv {
  int64_t length = 0;                       // positions [0, length) of every row; the same for all rows
  std::vector<torch::Tensor> keys, values;  // per decoder layer [B, nkv, length, hd] (after k_norm, rotary)
};

// Additive attention bias for a block of T queries per row whose query j of row b sits at slot
// offsets[b] + j among keys [0, key_valid.size(1)): key s is attended iff key_valid[b, s] and
// s <= that slot; a query always attends to its own slot (so padding queries never produce NaN).
// key_valid: bool [B, K]. Returns [B, 1, T, K] of `dtype` on key_valid's device.
torch::Tensor make_attention_bias(const torch::Tensor& key_valid, const std::vector<int64_t>& offsets,
                                  int64_t num_queries, torch::ScalarType dtype);

}  // namespace coordexp::model
