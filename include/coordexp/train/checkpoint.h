// CheckpointManager: the checkpoint directories of a run (output_dir/checkpoint-<step>), written so a
// crash at any moment leaves every earlier checkpoint intact: the contents go into a hidden temp
// directory, every file and directory in it is fsynced, the directory is renamed into place and
// output_dir is fsynced. Keeps the newest K, finds the latest complete one, removes leftovers of
// crashed saves. What goes inside a checkpoint is the caller's business (trainer.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace coordexp::train {

struct CheckpointInfo {
  int64_t step = 0;
  std::string path;
};

// A checkpoint directory counts as complete when this file exists in it (written last by the trainer).
inline constexpr const char* kCheckpointMarker = "trainer_state/state.json";

class CheckpointManager {
 public:
  // root: the run's output_dir (created when missing). keep_last: newest complete checkpoints kept
  // after each save; 0 = keep all.
  CheckpointManager(std::string root, int keep_last);

  const std::string& root() const { return root_; }
  std::string path_for(int64_t step) const;  // root/checkpoint-<step>

  // Complete checkpoints in root, ascending by step. Directories without the marker are ignored
  // (and reported by a warning).
  std::vector<CheckpointInfo> list() const;
  std::optional<CheckpointInfo> latest() const;

  // Deletes hidden leftovers of interrupted saves / deletions (".checkpoint-*"). Returns how many.
  int remove_stale_temps() const;

  // Writes checkpoint-<step>: `write(dir)` fills a fresh temp directory, then fsync + rename into
  // place (an existing checkpoint of the same step is replaced), then checkpoints beyond keep_last
  // are deleted (renamed to a hidden name first, so a half-deleted one never looks complete).
  // Returns the final path. Errors are DataError naming the path.
  std::string save(int64_t step, const std::function<void(const std::string& dir)>& write);

 private:
  void prune() const;
  std::string root_;
  int keep_last_;
};

// fsyncs every regular file and directory below `dir` (and `dir` itself).
void fsync_tree(const std::string& dir);

}  // namespace coordexp::train
