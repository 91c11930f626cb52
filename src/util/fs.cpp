// POSIX implementation of the filesystem helpers in include/coordexp/util/fs.h: whole-file reads
// and crash-safe writes (temp file in the target directory, fsync, rename, fsync of the directory).
// Durability depends on the filesystem honouring fsync; nothing here retries or locks.
#include "coordexp/util/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "coordexp/util/error.h"

namespace coordexp::util {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string parent_dir(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Unique within this process; the pid separates processes writing into the same directory.
std::string temp_name_for(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  const std::filesystem::path p(path);
  const std::string name = "." + p.filename().string() + ".tmp." + std::to_string(::getpid()) +
                           "." + std::to_string(counter.fetch_add(1));
  return (p.parent_path() / name).string();
}

}  // namespace

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw DataError("cannot read file: " + errno_text(errno), path,
                    "check that the path exists and is readable");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw DataError("cannot read file: not a regular file", path, "pass a path to a file");
  }
  std::string data;
  data.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw DataError("cannot read file: " + errno_text(err), path, "check the file and the disk");
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    throw DataError("cannot open directory for fsync: " + errno_text(errno), dir,
                    "check that the directory exists");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some filesystems do not support fsync on directories (EINVAL); the rename is still done.
  if (rc != 0 && err != EINVAL)
    throw DataError("cannot fsync directory: " + errno_text(err), dir, "check the disk");
}

std::string resolve_relative_to(const std::string& base_file, const std::string& rel) {
  const std::filesystem::path r(rel);
  if (r.is_absolute()) return rel;
  return (std::filesystem::path(base_file).parent_path() / r).lexically_normal().string();
}

AtomicFileWriter::AtomicFileWriter(const std::string& path)
    : path_(path), temp_path_(temp_name_for(path)) {
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw DataError("cannot create temporary file " + temp_path_ + ": " + errno_text(errno), path_,
                    "check that the directory exists and is writable");
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, uint64_t size) {
  COORDEXP_CHECK(fd_ >= 0 && !committed_, "write after commit");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(size, uint64_t{1} << 30));
    const ssize_t n = ::write(fd_, p, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw DataError("cannot write: " + errno_text(errno), path_,
                      "check free disk space and permissions");
    p += n;
    size -= static_cast<uint64_t>(n);
  }
}

void AtomicFileWriter::commit() {
  COORDEXP_CHECK(fd_ >= 0 && !committed_, "commit twice");
  if (::fsync(fd_) != 0)
    throw DataError("cannot fsync: " + errno_text(errno), path_, "check the disk");
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw DataError("cannot close: " + errno_text(errno), path_, "check the disk");
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0)
    throw DataError("cannot rename " + temp_path_ + " into place: " + errno_text(errno), path_,
                    "check permissions of the directory");
  committed_ = true;
  fsync_dir(parent_dir(path_));
}

void write_file_atomic(const std::string& path, std::string_view data) {
  AtomicFileWriter writer(path);
  writer.write(data.data(), data.size());
  writer.commit();
}

}  // namespace coordexp::util
