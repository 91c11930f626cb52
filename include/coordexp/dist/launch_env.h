// The process layout a torchrun-style launcher puts in the environment: RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (and torchrun's agent-store variables).
// Parsing and consistency checks only; no process group is created here (process_group.h).
#pragma once

#include <functional>
#include <string>

namespace coordexp::dist {

struct LaunchEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        // rank on this machine (picks the CUDA device)
  int local_world_size = 1;  // processes on this machine
  std::string master_addr;   // host of the rendezvous TCPStore ("" when world_size == 1)
  int master_port = 0;
  // torchrun's elastic agent already hosts the store (TORCHELASTIC_USE_AGENT_STORE=True): every rank
  // connects as a client under the prefix "/worker/attempt_<TORCHELASTIC_RESTART_COUNT>".
  bool agent_store = false;
  int restart_count = 0;

  bool distributed() const { return world_size > 1; }
};

// Reads the variables through `getenv_fn` (nullptr = unset). Unset WORLD_SIZE means one process
// (then RANK, if set, must be 0). Throws ConfigError naming the variable when a value is not an
// integer, out of range (RANK >= WORLD_SIZE, LOCAL_RANK >= LOCAL_WORLD_SIZE, ...) or missing
// (RANK, MASTER_ADDR, MASTER_PORT when WORLD_SIZE > 1).
LaunchEnv parse_launch_env(const std::function<const char*(const char*)>& getenv_fn);

// parse_launch_env over this process's environment.
LaunchEnv launch_env_from_environment();

}  // namespace coordexp::dist
