// Shared by the protocol tests: random object sets (unicode descs with quotes, backslashes, braces,
// newlines; bbox and poly) and the seed's black cat / yellow dog objects.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "coordexp/protocol/coordjson.h"

namespace coordexp::protocol::testing {

inline std::string random_desc(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {
      "a", "b", "cat", "Dog", " ", " ", "\"", "\\", "{", "}", "[", "]", "\n", "\t", "\x01", ",",
      ":", "é", "中文", "😀", "<", "|", ">", "'s", "(", ")", ".", "0", "42", "\\u", "/", "\r"};
  while (true) {
    std::string d;
    const int n = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < n; ++i) d += pieces[rng() % pieces.size()];
    const bool blank = d.find_first_not_of(" \t\n\r") == std::string::npos;
    if (!blank && !contains_special_token_text(d)) return d;
  }
}

inline Object random_object(std::mt19937& rng) {
  Object o;
  o.desc = random_desc(rng);
  o.kind = rng() % 4 == 0 ? GeometryKind::kPoly : GeometryKind::kBbox;
  const int n = o.kind == GeometryKind::kBbox ? 4 : 2 * (3 + static_cast<int>(rng() % 5));
  for (int i = 0; i < n; ++i) o.bins.push_back(static_cast<int>(rng() % 1000));
  return o;
}

inline std::vector<Object> random_objects(std::mt19937& rng, int max_objects) {
  std::vector<Object> v(rng() % (max_objects + 1));
  for (auto& o : v) o = random_object(rng);
  return v;
}

inline Object make_box(const std::string& desc, std::vector<int> bins) {
  Object o;
  o.desc = desc;
  o.kind = GeometryKind::kBbox;
  o.bins = std::move(bins);
  return o;
}

inline Object black_cat_gt() { return make_box("black cat", {110, 310, 410, 705}); }
inline Object yellow_dog_gt() { return make_box("yellow dog", {520, 285, 890, 660}); }
inline Object black_cat_rollout() { return make_box("black cat", {120, 300, 420, 700}); }
inline Object yellow_dog_rollout() { return make_box("yellow dog", {500, 280, 880, 650}); }

}  // namespace coordexp::protocol::testing
