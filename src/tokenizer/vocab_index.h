// Byte string -> token id lookup over strings the caller owns (the tokenizer's per-id bytes):
// open addressing with the hash kept in the slot, no per-entry allocation. Built once at load;
// read-only afterwards (safe for concurrent readers).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coordexp::tokenizer::detail {

class VocabIndex {
 public:
  // `strings[id]` is the key of id; the vector must outlive the index and not change.
  explicit VocabIndex(const std::vector<std::string>* strings = nullptr) : strings_(strings) {}
  void reserve(size_t n);
  // Adds id (its key is strings[id]); returns false if the key is already present.
  bool insert(int32_t id);
  // Id whose key equals s, or -1.
  int32_t find(std::string_view s) const;

  static uint64_t hash(std::string_view s);

 private:
  struct Slot {
    uint32_t hash_hi = 0;  // upper hash bits; compared before the string
    int32_t id = -1;       // -1 = empty
  };
  const std::vector<std::string>* strings_;
  std::vector<Slot> slots_;
  size_t mask_ = 0, used_ = 0;
};

}  // namespace coordexp::tokenizer::detail
