// Small filesystem helpers: atomic file writes (temp in the same directory, fsync, rename), whole
// file reads with clear errors, and path joining relative to a base file.
#pragma once

#include <string>
#include <string_view>

namespace coordexp::util {

// Reads a whole file; throws DataError("cannot read ...") naming the path on failure.
std::string read_file(const std::string& path);

// Writes `data` to `path` atomically: a crash leaves either the old file or the new one.
void write_file_atomic(const std::string& path, std::string_view data);

// fsync a directory (after renames into it) so the rename itself is durable.
void fsync_dir(const std::string& dir);

}  // namespace coordexp::util
