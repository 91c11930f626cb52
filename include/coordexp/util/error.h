// Error types shared by every module. User-fixable problems (config, data, file formats) carry
// what went wrong, where (file/line/key/tensor) and a hint; the CLI prints them as one line and maps
// them to exit codes (ConfigError/UsageError -> 2, everything else -> 1). Invariant violations use
// COORDEXP_CHECK, which reports the source file and line.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace coordexp {

// Base for errors a user can fix. `where` is e.g. "configs/a.yaml: key train.lr" or "data.jsonl:17".
class UserError : public std::runtime_error {
 public:
  UserError(std::string what, std::string where = {}, std::string hint = {})
      : std::runtime_error(compose(what, where, hint)),
        what_(std::move(what)), where_(std::move(where)), hint_(std::move(hint)) {}
  const std::string& message() const { return what_; }
  const std::string& where() const { return where_; }
  const std::string& hint() const { return hint_; }

 private:
  static std::string compose(const std::string& what, const std::string& where,
                             const std::string& hint) {
    std::string s;
    if (!where.empty()) s += where + ": ";
    s += what;
    if (!hint.empty()) s += " (hint: " + hint + ")";
    return s;
  }
  std::string what_, where_, hint_;
};

// Bad configuration or command line: exit code 2.
class ConfigError : public UserError {
 public:
  using UserError::UserError;
};

// Malformed input data (JSONL, images, tokenizer files, checkpoints): exit code 1.
class DataError : public UserError {
 public:
  using UserError::UserError;
};

// Malformed binary/text file format (safetensors, tokenizer.json, config.json): exit code 1.
class FormatError : public UserError {
 public:
  using UserError::UserError;
};

// Internal invariant broken (a bug, not a user error).
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {
[[noreturn]] inline void check_failed(const char* cond, const char* file, int line,
                                      const std::string& msg) {
  std::ostringstream os;
  os << "internal check failed: " << cond << " at " << file << ":" << line;
  if (!msg.empty()) os << ": " << msg;
  throw InternalError(os.str());
}
}  // namespace detail

}  // namespace coordexp

// COORDEXP_CHECK(cond, msg-stream-expression): throws InternalError with file:line when false.
#define COORDEXP_CHECK(cond, ...)                                                        \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::ostringstream coordexp_check_os_;                                             \
      coordexp_check_os_ << "" __VA_ARGS__;                                             \
      ::coordexp::detail::check_failed(#cond, __FILE__, __LINE__, coordexp_check_os_.str()); \
    }                                                                                    \
  } while (0)
