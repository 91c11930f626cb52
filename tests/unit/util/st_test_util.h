// Helpers shared by the safetensors/fs unit tests: a self-deleting temp directory, a raw file
// builder for hand-made (often corrupt) safetensors files, and error-message capture.
// Test-only; nothing here validates anything.
#pragma once

#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "coordexp/util/error.h"

namespace coordexp::test {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "coordexp_st_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path path_;
};

inline std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// 8-byte length (the header's size unless overridden) + header + data, written to `path`.
inline void write_raw_safetensors(const std::string& path, const std::string& header,
                                  const std::string& data,
                                  std::optional<uint64_t> length_override = std::nullopt) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << le64(length_override.value_or(header.size())) << header << data;
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// The FormatError message `f` throws; "NO ERROR" or "OTHER: ..." when it does something else.
template <class F>
std::string format_error_of(F&& f) {
  try {
    f();
  } catch (const FormatError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("OTHER: ") + e.what();
  }
  return "NO ERROR";
}

}  // namespace coordexp::test
