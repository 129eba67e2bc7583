// File-system helpers for the local backend: an owned file descriptor and the few POSIX calls the
// object store needs, each turning failure into an error that names the file. Errors are ApiError
// 507 "insufficient_storage" when the disk is full and 500 "storage_error" otherwise: the client
// sees a clean JSON error and the half-written file is removed by its owner.
#pragma once

#include <cstdint>
#include <string>

#include "util/fd.h"

namespace era::files {

using Fd = UniqueFd;  // the one fd owner (util/fd.h)

// Throws the storage error for `errno` after `what` failed on `path`.
[[noreturn]] void throw_errno(const std::string& what, const std::string& path);

// Opens a new file for writing (O_EXCL: never an existing one).
Fd create_exclusive(const std::string& path);
// Opens a file for reading; an invalid Fd (errno ENOENT) if it does not exist.
Fd open_read(const std::string& path);
void write_all(const Fd& fd, const char* data, size_t size, const std::string& path);
void sync(const Fd& fd, const std::string& path);
// fsync on a directory, so that a rename or a new entry in it survives a crash.
void sync_dir(const std::string& dir);
void rename_file(const std::string& from, const std::string& to);
// Removes a file; a missing one is fine. Returns false (and logs) on another failure.
bool remove_file(const std::string& path);
void make_dir(const std::string& path);

// `bytes` random bytes from the system CSPRNG, as lowercase hex.
std::string random_hex(size_t bytes);

// A file that is removed when this guard goes out of scope, unless keep() was called: what a failed
// upload leaves behind is cleaned up on every path out, exceptions included.
class RemoveGuard {
 public:
  explicit RemoveGuard(std::string path) : path_(std::move(path)) {}
  RemoveGuard(const RemoveGuard&) = delete;
  RemoveGuard& operator=(const RemoveGuard&) = delete;
  ~RemoveGuard() {
    if (!path_.empty()) remove_file(path_);
  }
  void keep() { path_.clear(); }

 private:
  std::string path_;
};

}  // namespace era::files
