// The real Qwen3 tokenizer for protocol tests, with the 1001 coord tokens added. Found via
// $COORDEXP_TOKENIZER_DIR, else <source>/.cache/tokenizer-qwen3 (scripts/fetch-tokenizer.sh).
// Missing files make the calling test FAIL (never skip).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "coordexp/tokenizer/tokenizer.h"

namespace coordexp::protocol::testing {

inline const tokenizer::Tokenizer& qwen_tokenizer() {
  static const std::shared_ptr<tokenizer::Tokenizer> tok = [] {
    const char* env = std::getenv("COORDEXP_TOKENIZER_DIR");
    const std::string dir =
        env && *env ? std::string(env) : std::string(COORDEXP_SOURCE_DIR) + "/.cache/tokenizer-qwen3";
    if (!std::filesystem::exists(dir + "/tokenizer.json"))
      throw std::runtime_error("Qwen3 tokenizer not found in " + dir +
                               " (run scripts/fetch-tokenizer.sh " + dir +
                               " or set COORDEXP_TOKENIZER_DIR)");
    auto t = tokenizer::Tokenizer::from_dir(dir);
    t->ensure_coord_tokens();
    return t;
  }();
  return *tok;
}

}  // namespace coordexp::protocol::testing
