// LocalKv: KvStore on the local metadata database (SQLite, WAL). Each entry is a row keyed by its
// internal name "ns:key" (a BLOB, so ordering is byte order). Writes go through the shared
// sqlite::Writer; reads through a ReaderPool, behind a read cache (store/kv_cache.h) that is exact
// because this process is the data dir's only writer: a put or delete drops the key's entry once it
// has committed, before it returns, and a read that began before that cannot fill over it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "store/kv_cache.h"
#include "store/kv_store.h"
#include "store/sql/sqlite.h"

namespace era {

class LocalKv : public KvStore {
 public:
  // `now_ms` gives unix milliseconds (tests move time). Creates the schema on the writer's database.
  // `cache_bytes`: the read cache's bound (0: no cache).
  LocalKv(sqlite::Writer& writer, sqlite::ReaderPool& readers, std::function<int64_t()> now_ms,
          size_t cache_bytes = 32u << 20);

  void put(const std::string& ns, const std::string& key, const KvValue& value) override;
  std::optional<KvValue> get(const std::string& ns, const std::string& key) override;
  bool cached(const std::string& ns, const std::string& key, std::optional<KvValue>& out) override;
  void remove(const std::string& ns, const std::string& key) override;
  KvPage list(const std::string& ns, const std::string& prefix, int limit, const std::string& cursor) override;

  // Deletes entries that have expired; returns how many. Called periodically by the app.
  int64_t sweep_expired();

  static void create_schema(sqlite::Db& db);

 private:
  sqlite::Writer& writer_;
  sqlite::ReaderPool& readers_;
  std::function<int64_t()> now_ms_;
  std::function<int64_t()> now_;  // unix seconds, from now_ms_
  KvReadCache cache_;
};

}  // namespace era
