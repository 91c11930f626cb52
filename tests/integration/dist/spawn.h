// Helpers of the multi-process tests: a free localhost port, spawning `argv` as ranks 0..world-1
// with torchrun's variables (each rank's output in <log_prefix>.rank<k>.log), waiting for them
// with a deadline, timing one exit, and reading a process's output while it runs.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace coordexp::dist::testing {

// A TCP port on localhost that was free a moment ago.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot get a free port");
  ::close(fd);
  return ntohs(a.sin_port);
}

// Forks and execs `argv` with stdout + stderr into `log` and the extra NAME=VALUE variables.
inline pid_t spawn(const std::vector<std::string>& argv, const std::string& log,
                   const std::vector<std::string>& env = {}) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);  // its own process group: a test's signal to it reaches nothing else
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    for (const auto& e : env) ::putenv(::strdup(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

// The exit code (128 + signal for a signal), or -1 when it did not exit within timeout_s (then it
// is still running).
inline int wait_for(pid_t pid, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

inline void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

// Starts `argv` as ranks 0..world-1 (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT set; output to log_prefix.rank<k>.log).
inline std::vector<pid_t> spawn_ranks(int world, const std::vector<std::string>& argv, const std::string& log_prefix,
                                      const std::vector<std::string>& extra_env = {}) {
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> env = {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r),
                                    "WORLD_SIZE=" + std::to_string(world), "LOCAL_WORLD_SIZE=" + std::to_string(world),
                                    "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)};
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    pids.push_back(spawn(argv, log_prefix + ".rank" + std::to_string(r) + ".log", env));
  }
  return pids;
}

// Waits for all; kills those still running after timeout_s (their code: 200).
inline std::vector<int> wait_ranks(const std::vector<pid_t>& pids, int timeout_s) {
  std::vector<int> codes(pids.size(), -1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (size_t i = 0; i < pids.size(); ++i) {
    const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
    codes[i] = wait_for(pids[i], std::max(left, 0.0));
    if (codes[i] == -1) {
      kill_and_reap(pids[i]);
      codes[i] = 200;  // timed out
    }
  }
  return codes;
}

// Runs `argv` as ranks 0..world-1 and returns their exit codes; kills them all after timeout_s.
inline std::vector<int> run_ranks(int world, const std::vector<std::string>& argv, const std::string& log_prefix,
                                  int timeout_s, const std::vector<std::string>& extra_env = {}) {
  return wait_ranks(spawn_ranks(world, argv, log_prefix, extra_env), timeout_s);
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string logs_of(const std::string& log_prefix, int world) {
  std::string out;
  for (int r = 0; r < world; ++r) {
    const std::string p = log_prefix + ".rank" + std::to_string(r) + ".log";
    out += "---- " + p + "\n" + (std::filesystem::exists(p) ? read_text(p) : std::string("(missing)\n"));
  }
  return out;
}

// Polls `done` every 50 ms; false when timeout_s passed first.
inline bool poll_until(const std::function<bool()>& done, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace coordexp::dist::testing
