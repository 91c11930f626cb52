// Top-level key scanning for replace_top_level_value: skips strings (with escapes) and nested
// containers by bracket depth.
#include "tokenizer/json_splice.h"

#include "coordexp/util/error.h"

namespace coordexp::tokenizer::detail {
namespace {

struct Scanner {
  std::string_view s;
  size_t i = 0;
  const std::string& path;

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(what + " at byte " + std::to_string(i), path, "the file must be a JSON object");
  }
  void skip_ws() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  }
  // At an opening quote: returns the raw string body and moves past the closing quote.
  std::string_view string() {
    if (i >= s.size() || s[i] != '"') fail("expected a string");
    const size_t begin = ++i;
    while (i < s.size() && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
    if (i >= s.size()) fail("unterminated string");
    return s.substr(begin, i++ - begin);
  }
  void value() {
    skip_ws();
    if (i >= s.size()) fail("expected a value");
    if (s[i] == '"') { string(); return; }
    if (s[i] != '{' && s[i] != '[') {  // number, true, false, null
      while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\n' &&
             s[i] != '\r' && s[i] != '\t')
        ++i;
      return;
    }
    int depth = 0;
    do {
      if (s[i] == '"') { string(); continue; }
      if (s[i] == '{' || s[i] == '[') ++depth;
      else if (s[i] == '}' || s[i] == ']') --depth;
      ++i;
    } while (depth > 0 && i < s.size());
    if (depth != 0) fail("unbalanced brackets");
  }
};

}  // namespace

std::string replace_top_level_value(std::string_view document, std::string_view key, std::string_view replacement,
                                    const std::string& path) {
  Scanner sc{document, 0, path};
  sc.skip_ws();
  if (sc.i >= document.size() || document[sc.i] != '{') sc.fail("expected '{'");
  ++sc.i;
  while (true) {
    sc.skip_ws();
    if (sc.i < document.size() && document[sc.i] == '}') break;
    const std::string_view k = sc.string();
    sc.skip_ws();
    if (sc.i >= document.size() || document[sc.i] != ':') sc.fail("expected ':'");
    ++sc.i;
    sc.skip_ws();
    const size_t begin = sc.i;
    sc.value();
    if (k == key) {
      std::string out;
      out.reserve(document.size() + replacement.size());
      out.append(document.substr(0, begin)).append(replacement).append(document.substr(sc.i));
      return out;
    }
    sc.skip_ws();
    if (sc.i < document.size() && document[sc.i] == ',') { ++sc.i; continue; }
    break;
  }
  throw FormatError("no top-level \"" + std::string(key) + "\" key", path, "the file must be a tokenizer.json");
}

}  // namespace coordexp::tokenizer::detail
