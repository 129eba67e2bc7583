#include "store/local/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <cerrno>
#include <cstring>

#include "util/encoding.h"
#include "util/error.h"
#include "util/log.h"

namespace era::files {

void throw_errno(const std::string& what, const std::string& path) {
  const int err = errno;
  log::error(what + " " + path + ": " + std::strerror(err));
  if (err == ENOSPC || err == EDQUOT)
    throw ApiError(507, "insufficient_storage", "the proxy's disk is full: the object was not stored");
  throw ApiError(500, "storage_error", "the object store failed to " + what + " a file");
}

Fd create_exclusive(const std::string& path) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) throw_errno("create", path);
  return fd;
}

Fd open_read(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd && errno != ENOENT) throw_errno("open", path);
  return fd;
}

void write_all(const Fd& fd, const char* data, size_t size, const std::string& path) {
  while (size) {
    ssize_t n = ::write(fd.get(), data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write", path);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void sync(const Fd& fd, const std::string& path) {
  if (::fsync(fd.get()) != 0) throw_errno("sync", path);
}

void sync_dir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno("open", dir);
  sync(fd, dir);
}

void rename_file(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) throw_errno("rename", from);
}

bool remove_file(const std::string& path) {
  if (::unlink(path.c_str()) == 0 || errno == ENOENT) return true;
  log::warn("cannot remove " + path + ": " + std::strerror(errno));
  return false;
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("create", path);
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
    throw ApiError(500, "storage_error", "the system random generator failed");
  return enc::hex(raw);
}

}  // namespace era::files
