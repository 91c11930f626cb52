// Desc normalization and the category table for open-vocabulary evaluation (see category.h).
#include "coordexp/eval/category.h"

#include <utf8proc.h>

#include <algorithm>
#include <set>

namespace coordexp::eval {
namespace {

bool is_space(utf8proc_int32_t cp) {
  if (cp == ' ' || (cp >= '\t' && cp <= '\r')) return true;
  if (cp < 0x80) return false;
  return utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS || cp == 0x2028 || cp == 0x2029 || cp == 0x85;
}

}  // namespace

std::string normalize_desc(std::string_view desc) {
  std::string out;
  out.reserve(desc.size());
  bool pending_space = false;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(desc.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(desc.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {  // invalid byte: keep it (lowercasing only applies to decodable text)
      if (pending_space && !out.empty()) out += ' ';
      pending_space = false;
      out += static_cast<char>(*p);
      ++p, --left;
      continue;
    }
    p += n, left -= n;
    if (is_space(cp)) {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out += ' ';
    pending_space = false;
    utf8proc_uint8_t buf[4];
    const utf8proc_ssize_t w = utf8proc_encode_char(utf8proc_tolower(cp), buf);
    out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(w));
  }
  return out;
}

CategoryIndex::CategoryIndex(const std::vector<std::string>& raw_descs) {
  std::set<std::string> unique;
  for (const auto& d : raw_descs) {
    std::string n = normalize_desc(d);
    if (!n.empty()) unique.insert(std::move(n));
  }
  names_.assign(unique.begin(), unique.end());
  for (size_t i = 0; i < names_.size(); ++i) index_[names_[i]] = static_cast<int>(i);
}

int CategoryIndex::find(std::string_view raw_desc) const { return find_normalized(normalize_desc(raw_desc)); }

int CategoryIndex::find_normalized(const std::string& normalized) const {
  const auto it = index_.find(normalized);
  return it == index_.end() ? -1 : it->second;
}

}  // namespace coordexp::eval
