// Keeps the layering of docs/architecture.md honest: scans every #include "coordexp/<module>/..."
// in src/ and include/ and fails when a module includes a module of its own or a higher layer
// (modules of the same layer stay independent), or when a LibTorch-free module includes LibTorch.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

namespace fs = std::filesystem;

namespace {

const std::map<std::string, int> kLayer = {
    {"util", 0},     {"config", 1},   {"tokenizer", 1}, {"dist", 1},
    {"protocol", 2}, {"coord", 3},    {"model", 3},     {"matching", 3},
    {"data", 4},     {"rollout", 4},  {"eval", 5},      {"train", 6},
    {"apps", 7},
};
const std::set<std::string> kNoTorch = {"tokenizer", "protocol", "matching"};

// Module of a file: src/<module>/... or include/coordexp/<module>/...
std::string module_of(const fs::path& root, const fs::path& file) {
  const auto rel = fs::relative(file, root);
  auto it = rel.begin();
  if (it == rel.end()) return {};
  if (it->string() == "src") return (++it) != rel.end() ? it->string() : "";
  if (it->string() == "include" && ++it != rel.end() && it->string() == "coordexp")
    return (++it) != rel.end() ? it->string() : "";
  return {};
}

TEST(Layering, IncludesPointDownward) {
  const fs::path root = COORDEXP_SOURCE_DIR;
  const std::regex inc_re(R"(^\s*#\s*include\s*[<"](coordexp/([a-z_]+)/[^>"]+|apps/[^>"]+|torch/[^>"]+|ATen/[^>"]+)[>"])");
  std::vector<std::string> violations;
  int files = 0;
  for (const char* top : {"src", "include"}) {
    for (const auto& entry : fs::recursive_directory_iterator(root / top)) {
      if (!entry.is_regular_file()) continue;
      const auto ext = entry.path().extension().string();
      if (ext != ".h" && ext != ".cpp" && ext != ".hpp") continue;
      const std::string mod = module_of(root, entry.path());
      if (!kLayer.count(mod)) {
        violations.push_back(entry.path().string() + ": module '" + mod + "' is not in the layer table");
        continue;
      }
      ++files;
      std::ifstream in(entry.path());
      std::string line;
      int lineno = 0;
      while (std::getline(in, line)) {
        ++lineno;
        std::smatch m;
        if (!std::regex_search(line, m, inc_re)) continue;
        const std::string target = m[1];
        const std::string where = fs::relative(entry.path(), root).string() + ":" + std::to_string(lineno);
        if (target.rfind("torch/", 0) == 0 || target.rfind("ATen/", 0) == 0) {
          if (kNoTorch.count(mod)) violations.push_back(where + ": " + mod + " must not include LibTorch (" + target + ")");
          continue;
        }
        const std::string dep = target.rfind("apps/", 0) == 0 ? "apps" : std::string(m[2]);
        if (dep == mod) continue;
        auto it = kLayer.find(dep);
        if (it == kLayer.end()) {
          violations.push_back(where + ": includes unknown module '" + dep + "'");
        } else if (it->second >= kLayer.at(mod)) {
          violations.push_back(where + ": " + mod + " (layer " + std::to_string(kLayer.at(mod)) +
                               ") includes " + dep + " (layer " + std::to_string(it->second) + ")");
        }
      }
    }
  }
  EXPECT_GT(files, 0);
  for (const auto& v : violations) ADD_FAILURE() << v;
}

}  // namespace
