// LocalKv: KvStore on the local metadata database (SQLite, WAL). Each entry is a row keyed by its
// internal name "ns:key" (a BLOB, so ordering is byte order). Writes go through the shared
// sqlite::Writer; reads through a ReaderPool.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "store/kv_store.h"
#include "store/sql/sqlite.h"

namespace era {

class LocalKv : public KvStore {
 public:
  // `now_ms` gives unix milliseconds (tests move time). Creates the schema on the writer's database.
  LocalKv(sqlite::Writer& writer, sqlite::ReaderPool& readers, std::function<int64_t()> now_ms);

  void put(const std::string& ns, const std::string& key, const KvValue& value) override;
  std::optional<KvValue> get(const std::string& ns, const std::string& key) override;
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
};

}  // namespace era
