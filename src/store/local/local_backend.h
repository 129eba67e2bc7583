// The local backend: everything under one data directory, which one process at a time may use
// (store/local/dir_lock.h: a second proxy on the same dir refuses to start).
//   lock          held by the process using the dir (its pid inside)
//   meta.sqlite3  KV entries, sessions and revocations (and, with their issues, R2 metadata and the resource registry),
//                 written by one group-committing writer thread
//   objects/      R2 object bytes (see local_r2.h)
//   d1/<ns>.sqlite3  each namespace's D1 tables in a file of its own, with its own writer
//                 (store/local/local_d1.h), so a long D1 write never blocks KV, R2 or another namespace
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "store/backend.h"
#include "store/local/dir_lock.h"
#include "store/local/local_d1.h"
#include "store/local/local_kv.h"
#include "store/local/local_sessions.h"
#include "store/local/local_r2.h"
#include "store/local/local_registry.h"
#include "store/sql/sqlite.h"

namespace era {

// What the local backend needs from the configuration.
struct LocalOptions {
  std::string data_dir = "data";
  D1Limits d1;
  LocalD1Options d1_files;  // the per-namespace files: readers, open files, concurrency, journal
  size_t kv_cache_bytes = 32u << 20;  // LocalKv's read cache (0 = none)
};

class LocalBackend : public Backend {
 public:
  explicit LocalBackend(const LocalOptions& options);
  ~LocalBackend() override;

  KvStore& kv() override { return *kv_; }
  SessionStore& sessions() override { return *sessions_; }
  ObjectStore& r2() override { return *r2_; }
  SqlStore& d1() override { return *d1_; }
  ResourceRegistry& registry() override { return *registry_; }
  void close() override;

 private:
  void sweeper();

  std::string dir_;
  std::unique_ptr<DirLock> lock_;  // first in, last out: held while anything below is open
  std::unique_ptr<sqlite::Writer> meta_writer_;
  std::unique_ptr<sqlite::ReaderPool> meta_readers_;
  std::unique_ptr<LocalKv> kv_;
  std::unique_ptr<LocalSessions> sessions_;
  std::unique_ptr<LocalR2> r2_;
  std::unique_ptr<LocalD1> d1_;
  std::unique_ptr<ResourceWalk> registry_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closing_ = false;
  std::thread sweeper_;
};

}  // namespace era
