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
#include <vector>

namespace coordexp::tokenizer::detail {

using Id = int32_t;

// Merge ranks by token pair, laid out for the cache: pairs of single-byte tokens (ids < 256, the
// most frequent lookups) index a dense table; other pairs live in an open-addressing table of
// 8-byte slots (left, right and rank packed, 21 bits each) behind a one-hash bit filter. The
// merged token of each rank is in a separate array. Ids and ranks must be < 2^21.
class MergeTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr uint32_t kMaxValue = (1u << 21) - 1;

  void reserve(size_t num_merges);
  // Adds the merge with the next rank (file order). A pair listed twice keeps its last rank, as
  // Hugging Face's and transformers.js's merge maps do.
  void add(Id left, Id right, Id merged);
  // Rank of merging (left, right), or kNone.
  uint32_t rank(Id left, Id right) const {
    if (static_cast<uint32_t>(left) < 256 && static_cast<uint32_t>(right) < 256)
      return dense_[static_cast<size_t>(left) << 8 | static_cast<size_t>(right)];
    const uint64_t key = pack(left, right);
    const uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    // Most pairs of a word have no merge; the filter answers those from L2 instead of DRAM.
    const size_t bit = static_cast<size_t>(h >> 42);
    if (!(filter_[bit >> 6] >> (bit & 63) & 1)) return kNone;
    for (size_t i = static_cast<size_t>(h >> shift_) & mask_;; i = (i + 1) & mask_) {
      const uint64_t e = slots_[i];
      if (e == 0) return kNone;
      if ((e & kKeyMask) == key) return static_cast<uint32_t>(e & kMaxValue);
    }
  }
  Id merged(uint32_t rank) const { return merged_by_rank_[rank]; }

 private:
  static constexpr uint64_t kKeyMask = ~static_cast<uint64_t>(kMaxValue);
  // Bit 63 marks a used slot; left in bits 42..62, right in 21..41, rank in 0..20.
  static uint64_t pack(Id a, Id b) {
    return (1ULL << 63) | (static_cast<uint64_t>(a) << 42) | (static_cast<uint64_t>(b) << 21);
  }
  size_t slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_) & mask_; }
  void grow();

  std::vector<uint32_t> dense_ = std::vector<uint32_t>(256 * 256, kNone);
  std::vector<uint64_t> filter_ = std::vector<uint64_t>((1u << 22) / 64, 0);  // 2^22 bits (512 KiB)
  std::vector<uint64_t> slots_;
  std::vector<Id> merged_by_rank_;
  size_t mask_ = 0, used_ = 0;
  int shift_ = 64;
};

class BpeModel {
 public:
  // byte_ids[b] = id of the single-byte token for byte b (all 256 must exist).
  BpeModel(std::array<Id, 256> byte_ids, MergeTable merges, size_t cache_capacity);

  // Appends the ids of `word` (raw bytes, non-empty).
  void encode_word(std::string_view word, std::vector<Id>& out) const;

 private:
  static constexpr size_t kSmallWord = 64;  // bytes; longer words use the heap
  // encode_word without the cache.
  void merge_word(std::string_view word, std::vector<Id>& out) const;
  void merge_small(std::vector<Id>& ids) const;
  void merge_large(std::vector<Id>& ids) const;

  std::array<Id, 256> byte_ids_;
  MergeTable merges_;

  // Word cache: sharded open-addressing tables whose keys and ids live in flat arenas, so a hit
  // costs one hash, one or two cache lines and a short memcmp. A full shard is cleared.
  static constexpr size_t kShards = 32;
  static constexpr size_t kMaxCachedWordBytes = 64;
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_offset = 0, ids_offset = 0;
    uint16_t key_length = 0, num_ids = 0;  // key_length 0 = empty slot
  };
  struct Shard {
    std::mutex mutex;
    std::vector<Slot> slots;
    std::string keys;
    std::vector<Id> ids;
    size_t used = 0;
  };
  bool cache_lookup(Shard& shard, uint64_t hash, std::string_view word, std::vector<Id>& out) const;
  void cache_insert(Shard& shard, uint64_t hash, std::string_view word, const Id* ids, size_t n) const;

  size_t shard_slots_;  // power of two
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace coordexp::tokenizer::detail
