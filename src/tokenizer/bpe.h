// Byte-level BPE over raw bytes: a word's bytes start as single-byte tokens and the adjacent pair
// with the lowest merge rank is merged (leftmost first on ties) until no ranked pair is left,
// which is what HF's BPE model does. Results are cached per word (sharded, thread-safe). Knows
// nothing about JSON, regexes or added tokens.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace coordexp::tokenizer::detail {

using Id = int32_t;

// Open-addressing map from a token pair to its merge (rank and the merged token's id).
class MergeTable {
 public:
  struct Merge {
    uint32_t rank;
    Id merged;
  };
  void reserve(size_t n);
  // Returns false if the pair is already present (the first rank wins, as in HF).
  bool insert(Id left, Id right, Merge m);
  const Merge* find(Id left, Id right) const {
    const uint64_t key = pack(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (e.key == key) return &e.merge;
      if (e.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~0ULL;
  struct Entry {
    uint64_t key = kEmpty;
    Merge merge{};
  };
  static uint64_t pack(Id a, Id b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
  size_t slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_) & mask_; }
  void grow();
  std::vector<Entry> entries_;
  size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
};

class BpeModel {
 public:
  // byte_ids[b] = id of the single-byte token for byte b (all 256 must exist).
  BpeModel(std::array<Id, 256> byte_ids, MergeTable merges, size_t cache_capacity);

  // Appends the ids of `word` (raw bytes, non-empty).
  void encode_word(std::string_view word, std::vector<Id>& out) const;
  // The same without the cache (exposed for tests and for words too long to cache).
  void merge_word(std::string_view word, std::vector<Id>& out) const;

  const MergeTable& merges() const { return merges_; }

 private:
  void merge_small(std::vector<Id>& ids) const;
  void merge_large(std::vector<Id>& ids) const;

  std::array<Id, 256> byte_ids_;
  MergeTable merges_;

  static constexpr size_t kShards = 32;
  static constexpr size_t kMaxCachedWordBytes = 256;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<Id>> map;
  };
  size_t shard_capacity_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace coordexp::tokenizer::detail
