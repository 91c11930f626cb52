// Small filesystem helpers: atomic file writes (temp in the same directory, fsync, rename), whole
// file reads with clear errors, and path joining relative to a base file. POSIX only (Linux).
// Not a general VFS: no locking, no cross-filesystem moves.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace coordexp::util {

// Reads a whole file; throws DataError("cannot read ...") naming the path on failure.
std::string read_file(const std::string& path);

// Writes `data` to `path` atomically: a crash leaves either the old file or the new one.
void write_file_atomic(const std::string& path, std::string_view data);

// fsync a directory (after renames into it) so the rename itself is durable.
void fsync_dir(const std::string& dir);

// `rel` resolved against the directory holding `base_file` (absolute `rel` is returned as is).
std::string resolve_relative_to(const std::string& base_file, const std::string& rel);

// Streaming form of write_file_atomic for data too large to hold twice in memory. The bytes go to
// a temp file `.<name>.tmp.<pid>.<n>` next to `path`; commit() fsyncs it, renames it over `path`
// and fsyncs the directory. Destroying the writer without commit() removes the temp file.
// Errors are DataError naming the path and the system error.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, uint64_t size);
  void commit();
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace coordexp::util
