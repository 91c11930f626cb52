// The real coordexp-train binary under signals: SIGKILL in the middle of a checkpoint save leaves the
// previous checkpoint complete and loadable (and a resumed run cleans up and finishes); SIGINT
// finishes the step, saves and exits 0, and resuming reproduces the uninterrupted run's losses.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "coordexp/model/qwen3vl.h"
#include "coordexp/train/checkpoint.h"
#include "coordexp/train/trainer.h"
#include "coordexp/train/trainer_state.h"
#include "coordexp/util/fs.h"
#include "fixture.h"

namespace coordexp::train {
namespace {
using namespace testing;

// A child process running coordexp-train with its stdout+stderr on a pipe we read line by line.
class Child {
 public:
  Child(const std::vector<std::string>& args, const std::vector<std::string>& env) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], STDOUT_FILENO);
      ::dup2(fds[1], STDERR_FILENO);
      ::close(fds[0]);
      ::close(fds[1]);
      for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv;
      static const std::string bin = COORDEXP_TRAIN_BIN;
      argv.push_back(const_cast<char*>(bin.c_str()));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    fd_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
  }
  // Reads output until a line contains `needle` (true) or the stream ends / times out (false).
  bool wait_for(const std::string& needle, int timeout_s = 300) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      const size_t nl = buffer_.find('\n', scanned_);
      if (nl != std::string::npos) {
        const std::string line = buffer_.substr(scanned_, nl - scanned_);
        scanned_ = nl + 1;
        if (line.find(needle) != std::string::npos) return true;
        continue;
      }
      char buf[4096];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) return false;
      buffer_.append(buf, static_cast<size_t>(n));
    }
    return false;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // Drains the output and returns the exit code (128 + signal when killed).
  int wait() {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd_, buf, sizeof buf)) > 0) buffer_.append(buf, static_cast<size_t>(n));
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  const std::string& output() const { return buffer_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool reaped_ = false;
  std::string buffer_;
  size_t scanned_ = 0;
};

std::string write_config(const std::string& dir, int64_t max_steps, int64_t every) {
  const std::string path = dir + ".yaml";
  util::write_file_atomic(path, base_yaml(dir, max_steps, every));
  return path;
}

TEST(TrainProcess, SigkillDuringASaveLeavesThePreviousCheckpointIntact) {
  const std::string dir = fresh_dir("sigkill");
  const std::string cfg = write_config(dir, 4, 2);
  {
    Child child({"train", "--config", cfg}, {std::string(kPauseSaveEnv) + "=4"});
    ASSERT_TRUE(child.wait_for("test hook: checkpoint save paused")) << child.output();
    child.signal(SIGKILL);
    EXPECT_EQ(child.wait(), 128 + SIGKILL);
  }
  CheckpointManager mgr(dir, 0);
  const auto list = mgr.list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].step, 2);
  EXPECT_FALSE(fs::exists(mgr.path_for(4)));
  int hidden = 0;
  for (const auto& e : fs::directory_iterator(dir)) hidden += e.path().filename().string().rfind(".checkpoint-", 0) == 0;
  EXPECT_EQ(hidden, 1);  // the interrupted save's temp dir, never mistaken for a checkpoint
  // The previous checkpoint loads: model, trainer state.
  EXPECT_NO_THROW(model::Qwen3VL::load(list[0].path));
  const auto state = TrainerState::from_json(util::read_file(list[0].path + "/" + kCheckpointMarker), "state.json");
  EXPECT_EQ(state.step, 2);

  // A resumed run removes the leftover and finishes.
  const auto r = run_binary("train --config " + cfg + " --resume");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming from"), std::string::npos) << r.output;
  EXPECT_EQ(mgr.latest()->step, 4);
  hidden = 0;
  for (const auto& e : fs::directory_iterator(dir)) hidden += e.path().filename().string()[0] == '.';
  EXPECT_EQ(hidden, 0);
}

TEST(TrainProcess, SigintSavesExitsZeroAndResumeMatchesTheUninterruptedRun) {
  const std::string ref_dir = fresh_dir("sigint_ref");
  const auto ref = run_binary("train --config " + write_config(ref_dir, 6, 0));
  ASSERT_EQ(ref.code, 0) << ref.output;
  const auto ref_losses = metrics_with(ref_dir, "loss");
  ASSERT_EQ(ref_losses.size(), 6u);

  const std::string dir = fresh_dir("sigint");
  const std::string cfg = write_config(dir, 6, 0);
  int64_t stopped_at = 0;
  {
    Child child({"train", "--config", cfg}, {});
    ASSERT_TRUE(child.wait_for("step 2/6")) << child.output();
    child.signal(SIGINT);
    EXPECT_EQ(child.wait(), 0) << child.output();
    EXPECT_NE(child.output().find("saving a checkpoint"), std::string::npos) << child.output();
    CheckpointManager mgr(dir, 0);
    ASSERT_TRUE(mgr.latest().has_value()) << child.output();
    stopped_at = mgr.latest()->step;
  }
  ASSERT_GE(stopped_at, 2);
  if (stopped_at < 6) {
    const auto r = run_binary("train --config " + cfg + " --set log.progress=off --resume");
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("setting changed: log.progress: plain -> off"), std::string::npos) << r.output;
  }
  const auto losses = metrics_with(dir, "loss");
  ASSERT_EQ(losses.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(losses[i]["step"], ref_losses[i]["step"]);
    EXPECT_EQ(losses[i]["loss"].get<double>(), ref_losses[i]["loss"].get<double>()) << "step " << i + 1;
  }
}

}  // namespace
}  // namespace coordexp::train
