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

#include "coordexp/train/trainer_state.h"

namespace coordexp::train {

struct CheckpointInfo {
  int64_t step = 0;
  std::string path;
  std::string run_id;  // from its trainer_state/state.json ("" = written before run ids, or unreadable)
};

// A checkpoint directory counts as complete when this file exists in it (written last by the trainer).
inline constexpr const char* kCheckpointMarker = "trainer_state/state.json";
// output_dir/<this>: the lineage of the run that last started in output_dir (RunLineage JSON);
// checkpoint.resume auto follows it.
inline constexpr const char* kLineageFile = "run_lineage.json";

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
  std::optional<CheckpointInfo> latest() const;  // highest step, any lineage
  // The highest-step checkpoint of `lineage` (RunLineage::contains), if any.
  std::optional<CheckpointInfo> latest_in(const RunLineage& lineage) const;
  // Whether a checkpoint of run `run_id` with a step above `step` exists in root.
  bool run_has_later(const std::string& run_id, int64_t step) const;

  // root/run_lineage.json: read (nullopt when absent; FormatError when malformed) and written
  // atomically.
  std::optional<RunLineage> read_current_lineage() const;
  void write_current_lineage(const RunLineage& lineage) const;
  // From now on pruning keeps the newest keep_last checkpoints of `lineage` and never touches the
  // checkpoints of other lineages (abandoned branches stay until a save of the same step replaces
  // them). Without a lineage every checkpoint counts.
  void set_lineage(RunLineage lineage) { lineage_ = std::move(lineage); }

  // Deletes hidden leftovers of interrupted saves / deletions (".checkpoint-*"). Returns how many.
  int remove_stale_temps() const;

  // Writes checkpoint-<step>: `write(dir)` fills a fresh temp directory, then fsync + rename into
  // place (an existing checkpoint of the same step is replaced), then the lineage's checkpoints
  // beyond keep_last are deleted (renamed to a hidden name first, so a half-deleted one never looks complete).
  // Returns the final path. Errors are DataError naming the path.
  std::string save(int64_t step, const std::function<void(const std::string& dir)>& write);

 private:
  void prune() const;
  std::string root_;
  int keep_last_;
  std::optional<RunLineage> lineage_;
};

// fsyncs every regular file and directory below `dir` (and `dir` itself).
void fsync_tree(const std::string& dir);

}  // namespace coordexp::train
