// DirLock: one process at a time owns a local data dir. The local backend is exact only then: its KV
// read cache (store/kv_cache.h) trusts that every write to the metadata database goes through this
// process, and two processes would also race on R2's object files. Held as an exclusive flock on
// <dir>/lock (which names the holder's pid) from construction to destruction; the kernel drops it
// when the process dies, so a crash never leaves the dir locked. Close-on-exec: the runner's sandboxes
// never inherit it.
#pragma once

#include <string>

namespace era {

class DirLock {
 public:
  // Throws std::runtime_error naming the holder when another process (or another DirLock in this one)
  // holds the dir.
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace era
