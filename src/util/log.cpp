// spdlog default-logger setup (see include/coordexp/util/log.h).
#include "coordexp/util/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <vector>

#include "coordexp/util/error.h"

namespace coordexp::util {

int rank_from_env() {
  const char* text = std::getenv("RANK");
  if (!text || !*text) return 0;
  char* end = nullptr;
  const long rank = std::strtol(text, &end, 10);
  if (*end != '\0' || rank < 0 || rank > 1'000'000)
    throw ConfigError(std::string("RANK='") + text + "' is not a valid process rank", "environment",
                      "RANK must be a non-negative integer (torchrun sets it)");
  return static_cast<int>(rank);
}

int parse_log_level(const std::string& name) {
  static const char* kNames[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  for (int i = 0; i < 7; ++i)
    if (name == kNames[i]) return i;
  throw ConfigError("unknown log level '" + name + "'", "--log-level",
                    "use one of trace, debug, info, warn, error, critical, off");
}

void init_logging(const LogSetup& setup) {
  const int level = setup.level.empty() ? (setup.rank == 0 ? spdlog::level::info : spdlog::level::warn)
                                        : parse_log_level(setup.level);
  std::vector<spdlog::sink_ptr> sinks;
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_level(static_cast<spdlog::level::level_enum>(level));
  sinks.push_back(console);
  if (!setup.log_file.empty()) {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(setup.log_file, /*truncate=*/false);
    file->set_level(static_cast<spdlog::level::level_enum>(level));
    sinks.push_back(file);
  }
  auto logger = std::make_shared<spdlog::logger>("coordexp", sinks.begin(), sinks.end());
  logger->set_level(static_cast<spdlog::level::level_enum>(level));
  const std::string rank_tag = setup.rank == 0 ? "" : " [rank " + std::to_string(setup.rank) + "]";
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$]" + rank_tag + " %v");
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

}  // namespace coordexp::util
