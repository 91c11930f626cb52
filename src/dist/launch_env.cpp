// Parsing of the torchrun environment (launch_env.h): strict integers, defaults for the optional
// local variables, and errors that name the variable and its value.
#include "coordexp/dist/launch_env.h"

#include <cerrno>
#include <cstdlib>
#include <optional>

#include "coordexp/util/error.h"

namespace coordexp::dist {
namespace {

const char* const kHint = "torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT; "
                          "a manual launch must set them consistently on every process";

// The variable as an integer in [lo, hi], or nullopt when unset/empty.
std::optional<long> read_int(const std::function<const char*(const char*)>& get, const char* name, long lo, long hi) {
  const char* text = get(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || end == text || v < lo || v > hi)
    throw ConfigError(std::string(name) + "='" + text + "' is not an integer in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "]",
                      std::string("environment ") + name, kHint);
  return v;
}

[[noreturn]] void inconsistent(const std::string& what, const char* name) {
  throw ConfigError(what, std::string("environment ") + name, kHint);
}

}  // namespace

LaunchEnv parse_launch_env(const std::function<const char*(const char*)>& get) {
  constexpr long kMaxRanks = 1 << 20;
  LaunchEnv e;
  const auto world = read_int(get, "WORLD_SIZE", 1, kMaxRanks);
  const auto rank = read_int(get, "RANK", 0, kMaxRanks - 1);
  if (!world) {
    if (rank && *rank != 0)
      inconsistent("RANK=" + std::to_string(*rank) + " but WORLD_SIZE is not set", "WORLD_SIZE");
    return e;  // a plain single-process run
  }
  e.world_size = static_cast<int>(*world);
  if (!rank) {
    if (e.world_size > 1) inconsistent("WORLD_SIZE=" + std::to_string(e.world_size) + " but RANK is not set", "RANK");
  } else {
    e.rank = static_cast<int>(*rank);
  }
  if (e.rank >= e.world_size)
    inconsistent("RANK=" + std::to_string(e.rank) + " is not below WORLD_SIZE=" + std::to_string(e.world_size), "RANK");

  const auto local_world = read_int(get, "LOCAL_WORLD_SIZE", 1, kMaxRanks);
  e.local_world_size = local_world ? static_cast<int>(*local_world) : e.world_size;
  if (e.local_world_size > e.world_size)
    inconsistent("LOCAL_WORLD_SIZE=" + std::to_string(e.local_world_size) + " exceeds WORLD_SIZE=" +
                     std::to_string(e.world_size), "LOCAL_WORLD_SIZE");
  const auto local_rank = read_int(get, "LOCAL_RANK", 0, kMaxRanks - 1);
  e.local_rank = local_rank ? static_cast<int>(*local_rank) : e.rank % e.local_world_size;
  if (e.local_rank >= e.local_world_size)
    inconsistent("LOCAL_RANK=" + std::to_string(e.local_rank) + " is not below LOCAL_WORLD_SIZE=" +
                     std::to_string(e.local_world_size), "LOCAL_RANK");
  if (e.local_rank > e.rank)
    inconsistent("LOCAL_RANK=" + std::to_string(e.local_rank) + " exceeds RANK=" + std::to_string(e.rank), "LOCAL_RANK");

  if (!e.distributed()) return e;
  const char* addr = get("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0')
    inconsistent("WORLD_SIZE=" + std::to_string(e.world_size) + " but MASTER_ADDR is not set", "MASTER_ADDR");
  e.master_addr = addr;
  const auto port = read_int(get, "MASTER_PORT", 1, 65535);
  if (!port) inconsistent("WORLD_SIZE=" + std::to_string(e.world_size) + " but MASTER_PORT is not set", "MASTER_PORT");
  e.master_port = static_cast<int>(*port);
  const char* agent = get("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent != nullptr && std::string(agent) == "True";
  if (e.agent_store) e.restart_count = static_cast<int>(read_int(get, "TORCHELASTIC_RESTART_COUNT", 0, 1 << 30).value_or(0));
  return e;
}

LaunchEnv launch_env_from_environment() {
  return parse_launch_env([](const char* name) { return static_cast<const char*>(std::getenv(name)); });
}

}  // namespace coordexp::dist
