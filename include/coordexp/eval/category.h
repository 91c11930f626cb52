// Open-vocabulary categories for evaluation: every distinct normalized GT desc is one category,
// and a predicted desc belongs to the category with the identical normalized string (no fuzzy
// matching, no synonyms). Normalization: Unicode lowercase, trim, collapse whitespace runs.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace coordexp::eval {

// Lowercases (Unicode simple lowercase; invalid UTF-8 bytes are kept, ASCII is lowercased),
// removes leading/trailing whitespace and turns every run of whitespace into one space.
// Whitespace: ASCII space, \t, \n, \v, \f, \r and the Unicode space separators.
std::string normalize_desc(std::string_view desc);

// Sorted category names and the name -> index lookup.
class CategoryIndex {
 public:
  CategoryIndex() = default;
  // From raw GT descs (normalized here; duplicates collapse).
  explicit CategoryIndex(const std::vector<std::string>& raw_descs);
  // Index of a raw desc's normalized form, or -1 when it is not a GT category.
  int find(std::string_view raw_desc) const;
  int find_normalized(const std::string& normalized) const;
  const std::vector<std::string>& names() const { return names_; }
  int size() const { return static_cast<int>(names_.size()); }

 private:
  std::vector<std::string> names_;
  std::map<std::string, int> index_;
};

}  // namespace coordexp::eval
