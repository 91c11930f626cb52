// The real coordexp-train binary under signals and a full disk: SIGKILL or a second SIGTERM in the
// middle of a checkpoint save leaves the previous checkpoint complete and loadable (and a resumed run
// cleans up and finishes); one SIGTERM during a save lets it complete, then stops with exit 0; SIGINT
// finishes the step, saves and exits 0, and resuming reproduces the uninterrupted run's losses; a
// file size limit hit while saving (RLIMIT_FSIZE in the child: the disk-full path, EFBIG) is one
// clear error, the partial checkpoint removed and the previous one intact.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
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
  // file_size_limit > 0: RLIMIT_FSIZE of the child in bytes, SIGXFSZ ignored, so a write past it
  // fails with EFBIG as a write to a full disk fails with ENOSPC (and the limit ends with the child).
  Child(const std::vector<std::string>& args, const std::vector<std::string>& env, rlim_t file_size_limit = 0) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      if (file_size_limit > 0) {
        ::signal(SIGXFSZ, SIG_IGN);  // kept across execv
        const struct rlimit lim {file_size_limit, file_size_limit};
        if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(126);
      }
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

int hidden_entries(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string()[0] == '.';
  return n;
}

// Loads the checkpoint as a resume would read it: model weights and trainer state.
void expect_loadable(const CheckpointInfo& c, int64_t step) {
  EXPECT_EQ(c.step, step);
  EXPECT_NO_THROW(model::Qwen3VL::load(c.path)) << c.path;
  const auto state = TrainerState::from_json(util::read_file(c.path + "/" + kCheckpointMarker), "state.json");
  EXPECT_EQ(state.step, step);
}

TEST(TrainProcess, DiskFullDuringASaveIsOneClearErrorAndThePreviousCheckpointStaysLoadable) {
  const std::string dir = fresh_dir("disk_full");
  const std::string cfg = write_config(dir, 4, 2);
  const auto first = run_binary("train --config " + cfg + " --set train.stop_at_step=2");
  ASSERT_EQ(first.code, 0) << first.output;
  CheckpointManager mgr(dir, 0);
  ASSERT_EQ(mgr.latest()->step, 2);
  const auto model_bytes = fs::file_size(mgr.path_for(2) + "/model.safetensors");
  ASSERT_GT(model_bytes, 4u << 20);  // the limit below lets logs and metrics through, not the weights
  {
    Child child({"train", "--config", cfg, "--resume"}, {}, /*file_size_limit=*/4u << 20);
    const int code = child.wait();
    const std::string& out = child.output();
    EXPECT_EQ(code, 1) << out;
    EXPECT_NE(out.find("checkpoint save at step 4 failed"), std::string::npos) << out;
    EXPECT_NE(out.find("File too large"), std::string::npos) << out;  // strerror(EFBIG)
    EXPECT_NE(out.find("the latest complete checkpoint " + mgr.path_for(2) + " is intact"), std::string::npos) << out;
  }
  const auto list = mgr.list();
  ASSERT_EQ(list.size(), 1u);
  expect_loadable(list[0], 2);
  EXPECT_FALSE(fs::exists(mgr.path_for(4)));
  EXPECT_EQ(hidden_entries(dir), 0);  // the partial checkpoint was removed, not left for the next start
  // Space back: the resumed run finishes.
  const auto r = run_binary("train --config " + cfg + " --resume");
  ASSERT_EQ(r.code, 0) << r.output;
  expect_loadable(*mgr.latest(), 4);
}

TEST(TrainProcess, SigtermDuringASaveLetsItCompleteThenStopsWithExitZero) {
  const std::string dir = fresh_dir("sigterm_save");
  const std::string cfg = write_config(dir, 4, 2);
  {
    Child child({"train", "--config", cfg}, {std::string(kPauseSaveEnv) + "=2:2"});
    ASSERT_TRUE(child.wait_for("test hook: checkpoint save paused")) << child.output();
    child.signal(SIGTERM);
    EXPECT_EQ(child.wait(), 0) << child.output();
    EXPECT_NE(child.output().find("signal 15 received: saving a checkpoint at step 2 and stopping"), std::string::npos)
        << child.output();
  }
  CheckpointManager mgr(dir, 0);
  const auto list = mgr.list();
  ASSERT_EQ(list.size(), 1u);
  expect_loadable(list[0], 2);  // the save in progress completed
  EXPECT_EQ(hidden_entries(dir), 0);
  const auto r = run_binary("train --config " + cfg + " --resume");
  ASSERT_EQ(r.code, 0) << r.output;
  expect_loadable(*mgr.latest(), 4);
}

TEST(TrainProcess, SecondSigtermDuringASaveExitsAtOnceAndThePreviousCheckpointStaysLoadable) {
  const std::string dir = fresh_dir("sigterm_twice");
  const std::string cfg = write_config(dir, 4, 2);
  {
    Child child({"train", "--config", cfg}, {std::string(kPauseSaveEnv) + "=4"});
    ASSERT_TRUE(child.wait_for("test hook: checkpoint save paused")) << child.output();
    child.signal(SIGTERM);
    ASSERT_TRUE(child.wait_for("stop requested")) << child.output();  // the first one is recorded
    child.signal(SIGTERM);
    EXPECT_EQ(child.wait(), 128 + SIGTERM) << child.output();
    EXPECT_NE(child.output().find("second signal: exiting immediately"), std::string::npos) << child.output();
  }
  CheckpointManager mgr(dir, 0);
  const auto list = mgr.list();
  ASSERT_EQ(list.size(), 1u);
  expect_loadable(list[0], 2);
  EXPECT_EQ(hidden_entries(dir), 1);  // the interrupted save's temp dir, never listed as a checkpoint
  const auto r = run_binary("train --config " + cfg + " --resume");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("left by an interrupted checkpoint save"), std::string::npos) << r.output;
  expect_loadable(*mgr.latest(), 4);
  EXPECT_EQ(hidden_entries(dir), 0);
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
