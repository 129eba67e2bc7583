// StatsCache: `resources stats` from a copy kept in memory, so that a dashboard polling it costs no
// upstream calls of the budget (store/cloudflare/call_budget.h). One snapshot of every namespace's
// counts is read at a time; any query (one namespace, a session's scope) is answered from it.
//
// The copy is read again when it is older than `max_age_ms` (changes other replicas made appear within
// that), or at once after a change made through this replica (read-your-writes): the KV and R2 stores
// record through ChangeNotingRecorder, and user SQL runs through ChangeNotingSql, both of which mark the
// copy stale. list() and reindex() go straight to the registry (reindex as background work).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

#include "store/cloudflare/cloudflare_registry.h"
#include "store/registry.h"
#include "store/sql_store.h"

namespace era::cf {

class StatsCache : public ResourceRegistry {
 public:
  using Clock = std::function<int64_t()>;  // monotonic milliseconds
  StatsCache(ResourceRegistry& inner, int64_t max_age_ms, Clock now = nullptr);

  ResourcePage list(const ResourceQuery& query) override { return inner_.list(query); }
  ResourceStats stats(const std::optional<std::string>& ns,
                      const std::optional<std::set<std::string>>& scope) override;
  ReindexReport reindex() override;

  // Something stats count changed through this replica: the next stats() reads them again.
  void changed() { generation_.fetch_add(1, std::memory_order_acq_rel); }

  // The stats for `ns` / `scope` out of a snapshot of every namespace (as ResourceWalk computes them).
  static ResourceStats filter(const ResourceStats& all, const std::optional<std::string>& ns,
                              const std::optional<std::set<std::string>>& scope);

 private:
  ResourceRegistry& inner_;
  const int64_t max_age_ms_;
  const Clock now_;
  std::atomic<uint64_t> generation_{0};
  std::mutex mu_;  // one refresh at a time: concurrent callers share it
  std::optional<ResourceStats> all_;
  int64_t read_at_ = 0;
  uint64_t read_generation_ = 0;
};

// Forwards to the registry's recorder, then marks the stats copy stale.
class ChangeNotingRecorder : public ResourceRecorder {
 public:
  ChangeNotingRecorder(ResourceRecorder& inner, StatsCache& cache) : inner_(inner), cache_(cache) {}
  KeyLocks::Guard order(const char* type, const std::string& ns, const std::string& key) override {
    return inner_.order(type, ns, key);
  }
  void record_put(const char* type, const std::string& ns, const std::string& key, int64_t size,
                  const std::optional<std::string>& metadata, std::optional<int64_t> expiration) override;
  void record_remove(const char* type, const std::string& ns, const std::string& key) override;
  std::map<std::string, std::string> metadata_of(const char* type, const std::string& ns,
                                                 const std::vector<std::string>& keys) override {
    return inner_.metadata_of(type, ns, keys);
  }

 private:
  ResourceRecorder& inner_;
  StatsCache& cache_;
};

// User SQL: forwards to the D1 store; a call that may have changed tables marks the stats copy stale.
class ChangeNotingSql : public SqlStore {
 public:
  ChangeNotingSql(SqlStore& inner, StatsCache& cache) : inner_(inner), cache_(cache) {}
  SqlResult query(const std::string& ns, const SqlStatement& statement) override;
  SqlResult exec(const std::string& ns, const SqlStatement& statement, int& statements) override;
  std::vector<SqlResult> batch(const std::string& ns, const std::vector<SqlStatement>& statements) override;
  std::vector<SqlTable> tables(const std::string& ns) override { return inner_.tables(ns); }
  std::vector<std::string> namespaces() override { return inner_.namespaces(); }
  std::vector<std::pair<std::string, std::string>> all_tables() override { return inner_.all_tables(); }

 private:
  SqlStore& inner_;
  StatsCache& cache_;
};

}  // namespace era::cf
