// BPE merging. Short words (the vast majority) use a quadratic scan over a flat id array, long
// ones a heap with lazy invalidation; both pick the globally lowest (rank, position) pair at
// every step, so they give identical results.
#include "tokenizer/bpe.h"

#include <functional>
#include <queue>

namespace coordexp::tokenizer::detail {

void MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  std::vector<Entry> old = std::move(entries_);
  entries_.assign(cap, Entry{});
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
  size_ = 0;
  for (const Entry& e : old)
    if (e.key != kEmpty) insert(static_cast<Id>(e.key >> 32), static_cast<Id>(e.key & 0xFFFFFFFFu), e.merge);
}

void MergeTable::grow() { reserve(entries_.empty() ? 8 : entries_.size()); }

bool MergeTable::insert(Id left, Id right, Merge m) {
  if ((size_ + 1) * 2 > entries_.size()) grow();
  const uint64_t key = pack(left, right);
  for (size_t i = slot(key);; i = (i + 1) & mask_) {
    Entry& e = entries_[i];
    if (e.key == key) return false;
    if (e.key == kEmpty) {
      e.key = key;
      e.merge = m;
      ++size_;
      return true;
    }
  }
}

BpeModel::BpeModel(std::array<Id, 256> byte_ids, MergeTable merges, size_t cache_capacity)
    : byte_ids_(byte_ids),
      merges_(std::move(merges)),
      shard_capacity_((cache_capacity + kShards - 1) / kShards),
      shards_(new Shard[kShards]) {}

void BpeModel::merge_small(std::vector<Id>& ids) const {
  while (ids.size() > 1) {
    uint32_t best_rank = UINT32_MAX;
    size_t best = 0;
    Id best_id = -1;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const MergeTable::Merge* m = merges_.find(ids[i], ids[i + 1]);
      if (m && m->rank < best_rank) {
        best_rank = m->rank;
        best = i;
        best_id = m->merged;
      }
    }
    if (best_id < 0) return;
    ids[best] = best_id;
    ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
}

void BpeModel::merge_large(std::vector<Id>& ids) const {
  const size_t n = ids.size();
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    Id left, right;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    if (const MergeTable::Merge* m = merges_.find(ids[i], ids[next[i]]))
      heap.push({m->rank, i, ids[i], ids[next[i]]});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t i = c.pos;
    // Stale if either side has been merged away or changed since the candidate was pushed.
    if (!alive[i] || next[i] < 0 || ids[i] != c.left || ids[next[i]] != c.right) continue;
    const int32_t j = next[i];
    ids[i] = merges_.find(c.left, c.right)->merged;
    alive[j] = false;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    push(prev[i]);
    push(i);
  }
  size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) ids[w++] = ids[i];
  ids.resize(w);
}

void BpeModel::merge_word(std::string_view word, std::vector<Id>& out) const {
  std::vector<Id> ids(word.size());
  for (size_t i = 0; i < word.size(); ++i) ids[i] = byte_ids_[static_cast<uint8_t>(word[i])];
  if (ids.size() <= 48) merge_small(ids);
  else merge_large(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

void BpeModel::encode_word(std::string_view word, std::vector<Id>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_ids_[static_cast<uint8_t>(word[0])]);
    return;
  }
  if (word.size() > kMaxCachedWordBytes || shard_capacity_ == 0) {
    merge_word(word, out);
    return;
  }
  const size_t h = std::hash<std::string_view>{}(word);
  Shard& shard = shards_[h % kShards];
  std::string key(word);
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    const auto it = shard.map.find(key);
    if (it != shard.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  merge_word(word, out);
  std::vector<Id> result(out.begin() + static_cast<std::ptrdiff_t>(start), out.end());
  std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.map.size() >= shard_capacity_) shard.map.clear();  // bounded memory; refills quickly
  shard.map.emplace(std::move(key), std::move(result));
}

}  // namespace coordexp::tokenizer::detail
