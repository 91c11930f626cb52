// VocabIndex: linear probing, power-of-two capacity, load factor <= 1/2; keys are compared only
// when the upper hash bits kept in the slot match.
#include "tokenizer/vocab_index.h"

#include <cstring>

namespace coordexp::tokenizer::detail {

uint64_t VocabIndex::hash(std::string_view s) {
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ULL;
  uint64_t h = s.size() * kMul;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * kMul;
  return h ^ (h >> 32);
}

void VocabIndex::reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (const Slot& s : old) {
    if (s.id < 0) continue;
    size_t i = hash((*strings_)[static_cast<size_t>(s.id)]) & mask_;
    while (slots_[i].id >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

bool VocabIndex::insert(int32_t id) {
  if (2 * (used_ + 1) > slots_.size()) reserve(2 * (used_ + 1));
  const std::string& key = (*strings_)[static_cast<size_t>(id)];
  const uint64_t h = hash(key);
  const auto hi = static_cast<uint32_t>(h >> 32);
  size_t i = h & mask_;
  for (; slots_[i].id >= 0; i = (i + 1) & mask_)
    if (slots_[i].hash_hi == hi && (*strings_)[static_cast<size_t>(slots_[i].id)] == key) return false;
  slots_[i] = {hi, id};
  ++used_;
  return true;
}

int32_t VocabIndex::find(std::string_view s) const {
  if (slots_.empty()) return -1;
  const uint64_t h = hash(s);
  const auto hi = static_cast<uint32_t>(h >> 32);
  for (size_t i = h & mask_; slots_[i].id >= 0; i = (i + 1) & mask_)
    if (slots_[i].hash_hi == hi && (*strings_)[static_cast<size_t>(slots_[i].id)] == s) return slots_[i].id;
  return -1;
}

}  // namespace coordexp::tokenizer::detail
