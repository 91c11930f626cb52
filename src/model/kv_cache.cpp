// KV cache bookkeeping and the shared attention-bias builder (see kv_cache.h).
#include "coordexp/model/kv_cache.h"

#include <algorithm>
#include <limits>
#include <string>

#include "coordexp/util/device_copy.h"
#include "coordexp/util/error.h"

namespace coordexp::model {

using torch::indexing::Slice;

KvCache::KvCache(int64_t num_layers, int64_t batch_size, int64_t num_kv_heads, int64_t head_dim,
                 int64_t capacity, torch::TensorOptions options)
    : batch_size_(batch_size), capacity_(capacity) {
  COORDEXP_CHECK(num_layers > 0 && batch_size > 0 && capacity > 0, "bad KvCache geometry");
  for (int64_t l = 0; l < num_layers; ++l) {
    keys_.push_back(torch::zeros({batch_size, num_kv_heads, capacity, head_dim}, options));
    values_.push_back(torch::zeros({batch_size, num_kv_heads, capacity, head_dim}, options));
  }
  reset();
}

int64_t KvCache::length(int64_t row) const { return length_.at(row); }
int64_t KvCache::next_position(int64_t row) const { return next_position_.at(row); }

bool KvCache::empty() const {
  return std::all_of(length_.begin(), length_.end(), [](int64_t l) { return l == 0; });
}

void KvCache::reset() {
  length_.assign(batch_size_, 0);
  next_position_.assign(batch_size_, 0);
  slot_valid_ = torch::zeros({batch_size_, capacity_}, torch::kBool);
  slot_position_ = torch::zeros({batch_size_, capacity_}, torch::kLong);
}

void KvCache::select_rows(const std::vector<int64_t>& rows) {
  COORDEXP_CHECK(!rows.empty(), "select_rows needs at least one row");
  for (int64_t r : rows) COORDEXP_CHECK(r >= 0 && r < batch_size_, "select_rows: row " << r << " of " << batch_size_);
  const auto index_cpu = torch::tensor(rows, torch::kLong);
  const auto index = index_cpu.to(keys_[0].device());
  for (auto& k : keys_) k = k.index_select(0, index);
  for (auto& v : values_) v = v.index_select(0, index);
  slot_valid_ = slot_valid_.index_select(0, index_cpu);
  slot_position_ = slot_position_.index_select(0, index_cpu);
  std::vector<int64_t> length, next_position;
  for (int64_t r : rows) {
    length.push_back(length_[r]);
    next_position.push_back(next_position_[r]);
  }
  length_ = std::move(length);
  next_position_ = std::move(next_position);
  batch_size_ = static_cast<int64_t>(rows.size());
}

void KvCache::truncate(int64_t row, int64_t new_length) {
  COORDEXP_CHECK(row >= 0 && row < batch_size_, "row " << row);
  COORDEXP_CHECK(new_length >= 0 && new_length <= length_[row],
                 "truncate to " << new_length << " but row " << row << " holds " << length_[row]);
  slot_valid_[row].index_put_({Slice(new_length, torch::indexing::None)}, false);
  length_[row] = new_length;
  auto kept = slot_position_[row].index({Slice(0, new_length)});
  auto valid = slot_valid_[row].index({Slice(0, new_length)});
  next_position_[row] = valid.any().item<bool>() ? kept.masked_select(valid).max().item<int64_t>() + 1 : 0;
}

KvCache::Append KvCache::append(const torch::Tensor& mask, const torch::Tensor& position_ids,
                                torch::ScalarType bias_dtype, bool dense_bias) {
  COORDEXP_CHECK(position_ids.dim() == 3 && position_ids.size(1) == batch_size_,
                 "position_ids must be [3, " << batch_size_ << ", T]");
  const int64_t T = position_ids.size(2);
  // Host bookkeeping with element accessors instead of a per-row loop of tensor ops (index_put,
  // nonzero, masked_select, two .item reads: about six per row and step); the
  // tiny model's batch-8 decode measured 9-19% faster without them (docs/performance.md).
  const auto real = (mask.defined() ? mask.to(torch::kCPU).ne(0) : torch::ones({batch_size_, T}, torch::kBool)).contiguous();
  const auto pos_max = std::get<0>(position_ids.to(torch::kCPU).max(0)).contiguous();  // [B, T]
  const auto real_at = real.accessor<bool, 2>();
  const auto pos_at = pos_max.accessor<int64_t, 2>();
  if (!slot_valid_.is_contiguous()) slot_valid_ = slot_valid_.contiguous();
  if (!slot_position_.is_contiguous()) slot_position_ = slot_position_.contiguous();
  auto valid_at = slot_valid_.accessor<bool, 2>();
  auto position_at = slot_position_.accessor<int64_t, 2>();
  Append plan;
  for (int64_t b = 0; b < batch_size_; ++b) {
    const int64_t off = length_[b];
    if (off + T > capacity_)
      throw DataError("KV cache row " + std::to_string(b) + " holds " + std::to_string(off) +
                          " tokens; appending " + std::to_string(T) + " exceeds the capacity " +
                          std::to_string(capacity_), "kv_cache", "create the cache with a larger capacity");
    plan.offsets.push_back(off);
    plan.key_len = std::max(plan.key_len, off + T);
    int64_t last_real = -1, max_position = -1;
    for (int64_t t = 0; t < T; ++t) {
      valid_at[b][off + t] = real_at[b][t];
      position_at[b][off + t] = pos_at[b][t];
      if (real_at[b][t]) last_real = t, max_position = std::max(max_position, pos_at[b][t]);
    }
    if (last_real >= 0) {
      length_[b] = off + last_real + 1;
      next_position_[b] = std::max(next_position_[b], max_position + 1);
    }
  }
  const auto dev = keys_[0].device();
  // A copy, not a view of slot_valid_: the next append() rewrites those slots in place (on CUDA the
  // pinned staging buffer is that copy).
  const auto valid_host = slot_valid_.index({Slice(), Slice(0, plan.key_len)});
  plan.key_valid = dev.is_cpu() ? valid_host.clone() : util::host_to_device(valid_host, dev);
  if (dense_bias) plan.attn_bias = make_attention_bias(plan.key_valid, plan.offsets, T, bias_dtype);
  if (!std::all_of(plan.offsets.begin(), plan.offsets.end(), [&](int64_t o) { return o == plan.offsets[0]; })) {
    std::vector<int64_t> rows, slots;
    for (int64_t b = 0; b < batch_size_; ++b)
      for (int64_t t = 0; t < T; ++t) {
        rows.push_back(b);
        slots.push_back(plan.offsets[b] + t);
      }
    plan.write_rows = util::host_to_device(torch::tensor(rows, torch::kLong), dev);
    plan.write_slots = util::host_to_device(torch::tensor(slots, torch::kLong), dev);
  }
  return plan;
}

void KvCache::write(int64_t layer, const Append& plan, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t T = k.size(2);
  auto& K = keys_.at(layer);
  auto& V = values_.at(layer);
  if (!plan.write_rows.defined()) {  // every row at the same offset: one slice
    const int64_t off = plan.offsets[0];
    K.index({Slice(), Slice(), Slice(off, off + T)}).copy_(k);
    V.index({Slice(), Slice(), Slice(off, off + T)}).copy_(v);
    return;
  }
  // One scatter for all rows: K[row, :, slot] = k[b, :, t] with (row, slot) of token (b, t), the
  // indexed result laid out [B * T, nkv, hd].
  const auto rows_first = [&](const torch::Tensor& x, const torch::Tensor& into) {
    return x.permute({0, 2, 1, 3}).reshape({-1, x.size(1), x.size(3)}).to(into.scalar_type());
  };
  K.index_put_({plan.write_rows, Slice(), plan.write_slots}, rows_first(k, K));
  V.index_put_({plan.write_rows, Slice(), plan.write_slots}, rows_first(v, V));
}

torch::Tensor KvCache::keys(int64_t layer, int64_t len) const {
  return keys_.at(layer).index({Slice(), Slice(), Slice(0, len)});
}

torch::Tensor KvCache::values(int64_t layer, int64_t len) const {
  return values_.at(layer).index({Slice(), Slice(), Slice(0, len)});
}

torch::Tensor make_attention_bias(const torch::Tensor& key_valid, const std::vector<int64_t>& offsets,
                                  int64_t num_queries, torch::ScalarType dtype) {
  const auto dev = key_valid.device();
  const int64_t K = key_valid.size(1);
  auto off = torch::tensor(offsets, torch::kLong).to(dev).view({-1, 1, 1});
  auto qslot = off + torch::arange(num_queries, torch::TensorOptions(torch::kLong).device(dev)).view({1, -1, 1});
  auto kslot = torch::arange(K, torch::TensorOptions(torch::kLong).device(dev)).view({1, 1, -1});
  auto allowed = (key_valid.unsqueeze(1) & (kslot <= qslot)) | (kslot == qslot);  // [B, T, K]
  auto bias = torch::zeros(allowed.sizes(), torch::TensorOptions(dtype).device(dev));
  bias.masked_fill_(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  return bias.unsqueeze(1);
}

}  // namespace coordexp::model
