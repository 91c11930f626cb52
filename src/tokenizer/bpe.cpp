// BPE merging. Words up to kSmallWord bytes keep the rank of every adjacent pair in an array and
// scan it; longer ones use a heap with lazy invalidation. Both merge the globally lowest
// (rank, position) pair at every step, so they give identical results.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <queue>

#include "coordexp/util/error.h"
#include "tokenizer/vocab_index.h"

namespace coordexp::tokenizer::detail {

void MergeTable::reserve(size_t num_merges) {
  merged_by_rank_.reserve(num_merges);
  size_t cap = 16;
  while (cap < num_merges + num_merges / 2) cap <<= 1;  // load factor <= 2/3
  if (cap <= slots_.size()) return;
  std::vector<uint64_t> old = std::move(slots_);
  slots_.assign(cap, 0);
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
  for (const uint64_t e : old) {
    if (e == 0) continue;
    size_t i = slot(e & kKeyMask);
    while (slots_[i] != 0) i = (i + 1) & mask_;
    slots_[i] = e;
  }
}

void MergeTable::grow() { reserve(std::max<size_t>(16, used_ * 2)); }

void MergeTable::add(Id left, Id right, Id merged) {
  const auto rank = static_cast<uint32_t>(merged_by_rank_.size());
  COORDEXP_CHECK(static_cast<uint32_t>(left) <= kMaxValue && static_cast<uint32_t>(right) <= kMaxValue &&
                     static_cast<uint32_t>(merged) <= kMaxValue && rank < kMaxValue,
                 "token ids and merge ranks must be below 2^21");
  merged_by_rank_.push_back(merged);
  if (static_cast<uint32_t>(left) < 256 && static_cast<uint32_t>(right) < 256) {
    dense_[static_cast<size_t>(left) << 8 | static_cast<size_t>(right)] = rank;
    return;
  }
  if ((used_ + 1) * 3 > slots_.size() * 2) grow();
  const uint64_t key = pack(left, right);
  const auto bit = static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> 42);
  filter_[bit >> 6] |= 1ULL << (bit & 63);
  size_t i = slot(key);
  while (slots_[i] != 0 && (slots_[i] & kKeyMask) != key) i = (i + 1) & mask_;
  if (slots_[i] == 0) ++used_;
  slots_[i] = key | rank;
}

BpeModel::BpeModel(std::array<Id, 256> byte_ids, MergeTable merges, size_t cache_capacity)
    : byte_ids_(byte_ids), merges_(std::move(merges)), shards_(new Shard[kShards]) {
  size_t slots = 16;
  while (slots < 2 * cache_capacity / kShards) slots <<= 1;  // at most half full
  shard_slots_ = cache_capacity ? slots : 0;
}

bool BpeModel::cache_lookup(Shard& shard, uint64_t hash, std::string_view word, std::vector<Id>& out) const {
  if (shard.slots.empty()) return false;
  const size_t mask = shard_slots_ - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = shard.slots[i];
    if (s.key_length == 0) return false;
    if (s.hash == hash && s.key_length == word.size() &&
        std::memcmp(shard.keys.data() + s.key_offset, word.data(), word.size()) == 0) {
      out.insert(out.end(), shard.ids.begin() + s.ids_offset, shard.ids.begin() + s.ids_offset + s.num_ids);
      return true;
    }
  }
}

void BpeModel::cache_insert(Shard& shard, uint64_t hash, std::string_view word, const Id* ids, size_t n) const {
  if (shard.used * 2 >= shard_slots_ || shard.slots.empty()) {  // full (or first use): start over
    shard.slots.assign(shard_slots_, Slot{});
    shard.keys.clear();
    shard.ids.clear();
    shard.used = 0;
  }
  const size_t mask = shard_slots_ - 1;
  size_t i = hash & mask;
  while (shard.slots[i].key_length != 0) {
    if (shard.slots[i].hash == hash && shard.slots[i].key_length == word.size() &&
        std::memcmp(shard.keys.data() + shard.slots[i].key_offset, word.data(), word.size()) == 0)
      return;  // another thread got here first
    i = (i + 1) & mask;
  }
  Slot& s = shard.slots[i];
  s.hash = hash;
  s.key_offset = static_cast<uint32_t>(shard.keys.size());
  s.key_length = static_cast<uint16_t>(word.size());
  s.ids_offset = static_cast<uint32_t>(shard.ids.size());
  s.num_ids = static_cast<uint16_t>(n);
  shard.keys.append(word);
  shard.ids.insert(shard.ids.end(), ids, ids + n);
  ++shard.used;
}

void BpeModel::merge_small(std::vector<Id>& ids) const {
  // ranks[i] / merged[i]: the merge of the pair (ids[i], ids[i+1]), kept up to date so each step
  // is a scan over integers plus two table lookups next to the merged position.
  const size_t n0 = ids.size();
  uint32_t ranks[kSmallWord];
  Id merged[kSmallWord];
  const auto update = [&](size_t i) {
    ranks[i] = merges_.rank(ids[i], ids[i + 1]);
    merged[i] = ranks[i] == MergeTable::kNone ? -1 : merges_.merged(ranks[i]);
  };
  for (size_t i = 0; i + 1 < n0; ++i) update(i);
  size_t n = n0;
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i)
      if (ranks[i] < ranks[best]) best = i;
    if (ranks[best] == MergeTable::kNone) break;
    ids[best] = merged[best];
    // Remove position best + 1.
    for (size_t i = best + 1; i + 1 < n; ++i) {
      ids[i] = ids[i + 1];
      ranks[i] = ranks[i + 1];
      merged[i] = merged[i + 1];
    }
    --n;
    if (best > 0) update(best - 1);
    if (best + 1 < n) update(best);
  }
  ids.resize(n);
}

void BpeModel::merge_large(std::vector<Id>& ids) const {
  const size_t n = ids.size();
  std::vector<int32_t> prev(n), next(n);
  std::vector<uint8_t> alive(n, 1);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    Id left, right, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Candidate> storage;
  storage.reserve(2 * n);
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap(std::greater<Candidate>(),
                                                                                      std::move(storage));
  const auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    const uint32_t rank = merges_.rank(ids[i], ids[next[i]]);
    if (rank != MergeTable::kNone) heap.push({rank, i, ids[i], ids[next[i]], merges_.merged(rank)});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t i = c.pos;
    // Stale if either side has been merged away or changed since the candidate was pushed.
    if (!alive[i] || next[i] < 0 || ids[i] != c.left || ids[next[i]] != c.right) continue;
    const int32_t j = next[i];
    ids[i] = c.merged;
    alive[j] = 0;
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
  if (ids.size() <= kSmallWord) merge_small(ids);
  else merge_large(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

void BpeModel::encode_word(std::string_view word, std::vector<Id>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_ids_[static_cast<uint8_t>(word[0])]);
    return;
  }
  // Long words (CJK runs, long identifiers) rarely repeat; caching them would only evict others.
  if (word.size() > kMaxCachedWordBytes || shard_slots_ == 0) {
    merge_word(word, out);
    return;
  }
  const uint64_t h = VocabIndex::hash(word);  // same string hash as the vocab index
  Shard& shard = shards_[(h >> 58) % kShards];
  {
    std::lock_guard<std::mutex> lock(shard.mutex);
    if (cache_lookup(shard, h, word, out)) return;
  }
  const size_t start = out.size();
  merge_word(word, out);
  std::lock_guard<std::mutex> lock(shard.mutex);
  cache_insert(shard, h, word, out.data() + start, out.size() - start);
}

}  // namespace coordexp::tokenizer::detail
