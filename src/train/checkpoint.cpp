// Atomic checkpoint directories: temp dir + fsync of the whole tree + rename + fsync of the parent,
// listing by step with each checkpoint's run id, pruning within the current run lineage, the
// output_dir's run_lineage.json, and cleanup of hidden leftovers. POSIX (Linux) only.
#include "coordexp/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include "coordexp/util/error.h"
#include "coordexp/util/fs.h"

namespace coordexp::train {
namespace fs = std::filesystem;
namespace {

const std::regex kCheckpointName(R"(checkpoint-([0-9]{1,18}))");
const char* const kHiddenPrefix = ".checkpoint-";

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0)
    throw DataError(std::string("cannot open for fsync: ") + std::strerror(errno), p.string(), "check the disk");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && !(directory && err == EINVAL))
    throw DataError(std::string("fsync failed: ") + std::strerror(err), p.string(), "check the disk");
}

void rename_or_throw(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw DataError("cannot rename to " + to.string() + ": " + ec.message(), from.string(), "check the disk");
}

// Hidden unique name in root for a directory being written, replaced or deleted.
fs::path hidden_name(const fs::path& root, int64_t step, const char* what) {
  static int counter = 0;
  return root / (std::string(kHiddenPrefix) + std::to_string(step) + "." + what + "." + std::to_string(::getpid()) +
                 "." + std::to_string(counter++));
}

// The run id in a checkpoint's state.json ("" when absent, i.e. written before run ids, or when the
// file cannot be parsed: loading it reports that).
std::string run_id_of(const fs::path& checkpoint) {
  try {
    const auto j = nlohmann::json::parse(util::read_file((checkpoint / kCheckpointMarker).string()), nullptr, false);
    if (j.is_object() && j.contains("run_id") && j["run_id"].is_string()) return j["run_id"].get<std::string>();
  } catch (const std::exception&) {
  }
  return "";
}

}  // namespace

void fsync_tree(const std::string& dir) {
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) fsync_path(entry.path(), false);
    else if (entry.is_directory()) fsync_path(entry.path(), true);
  }
  fsync_path(dir, true);
}

CheckpointManager::CheckpointManager(std::string root, int keep_last) : root_(std::move(root)), keep_last_(keep_last) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec)
    throw DataError("cannot create the output directory: " + ec.message(), root_,
                    "choose a writable train.output_dir");
}

std::string CheckpointManager::path_for(int64_t step) const {
  return (fs::path(root_) / ("checkpoint-" + std::to_string(step))).string();
}

std::vector<CheckpointInfo> CheckpointManager::list() const {
  std::vector<CheckpointInfo> out;
  for (const auto& entry : fs::directory_iterator(root_)) {
    if (!entry.is_directory()) continue;
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, kCheckpointName)) continue;
    if (!fs::exists(entry.path() / kCheckpointMarker)) {
      spdlog::warn("ignoring {}: it has no {} (not a complete checkpoint)", entry.path().string(), kCheckpointMarker);
      continue;
    }
    out.push_back({std::stoll(m[1].str()), entry.path().string(), run_id_of(entry.path())});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::optional<CheckpointInfo> CheckpointManager::latest() const {
  auto all = list();
  if (all.empty()) return std::nullopt;
  return all.back();
}

std::optional<CheckpointInfo> CheckpointManager::latest_in(const RunLineage& lineage) const {
  std::optional<CheckpointInfo> best;
  for (auto& c : list())
    if (lineage.contains(c.run_id, c.step)) best = std::move(c);  // ascending: the last one wins
  return best;
}

bool CheckpointManager::run_has_later(const std::string& run_id, int64_t step) const {
  for (const auto& c : list())
    if (c.run_id == run_id && c.step > step) return true;
  return false;
}

std::optional<RunLineage> CheckpointManager::read_current_lineage() const {
  const fs::path p = fs::path(root_) / kLineageFile;
  if (!fs::exists(p)) return std::nullopt;
  return RunLineage::from_json(util::read_file(p.string()), p.string());
}

void CheckpointManager::write_current_lineage(const RunLineage& lineage) const {
  util::write_file_atomic((fs::path(root_) / kLineageFile).string(), lineage.to_json());
}

int CheckpointManager::remove_stale_temps() const {
  int removed = 0;
  for (const auto& entry : fs::directory_iterator(root_)) {
    if (entry.path().filename().string().rfind(kHiddenPrefix, 0) != 0) continue;
    spdlog::warn("removing {} (left by an interrupted checkpoint save or deletion)", entry.path().string());
    fs::remove_all(entry.path());
    ++removed;
  }
  return removed;
}

std::string CheckpointManager::save(int64_t step, const std::function<void(const std::string& dir)>& write) {
  const fs::path root(root_);
  const fs::path temp = hidden_name(root, step, "tmp");
  fs::create_directories(temp);
  // A failed write (full disk, file size limit, I/O error) removes the temp directory and names the
  // step and the checkpoints still intact; nothing was renamed into place, so they are untouched.
  const auto remove_temp = [&] {
    std::error_code ec;
    fs::remove_all(temp, ec);
  };
  try {
    write(temp.string());
    fsync_tree(temp.string());
  } catch (const UserError& e) {
    remove_temp();
    const auto intact = latest();
    throw DataError("checkpoint save at step " + std::to_string(step) + " failed: " + e.message() +
                        (e.where().empty() ? std::string() : " (at " + e.where() + ")") +
                        "; the partial checkpoint was removed and " +
                        (intact ? "the latest complete checkpoint " + intact->path + " is intact"
                                : std::string("no earlier checkpoint exists")),
                    root_, e.hint().empty() ? "check free disk space in train.output_dir" : e.hint());
  } catch (...) {
    remove_temp();
    throw;
  }
  const fs::path final_path = path_for(step);
  fs::path replaced;
  if (fs::exists(final_path)) {
    replaced = hidden_name(root, step, "replaced");
    rename_or_throw(final_path, replaced);
  }
  rename_or_throw(temp, final_path);
  util::fsync_dir(root_);
  if (!replaced.empty()) fs::remove_all(replaced);
  prune();
  return final_path.string();
}

void CheckpointManager::prune() const {
  if (keep_last_ <= 0) return;
  std::vector<CheckpointInfo> all;
  for (auto& c : list())
    if (!lineage_ || lineage_->contains(c.run_id, c.step)) all.push_back(std::move(c));
  const size_t keep = static_cast<size_t>(keep_last_);
  if (all.size() <= keep) return;
  for (size_t i = 0; i + keep < all.size(); ++i) {
    const fs::path doomed = hidden_name(fs::path(root_), all[i].step, "deleting");
    rename_or_throw(all[i].path, doomed);
    util::fsync_dir(root_);
    fs::remove_all(doomed);
    spdlog::info("deleted old checkpoint {} (checkpoint.keep_last = {})", all[i].path, keep_last_);
  }
}

}  // namespace coordexp::train
