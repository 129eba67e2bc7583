#include "store/cloudflare/stats_cache.h"

#include <chrono>

#include "store/call_priority.h"

namespace era::cf {
namespace {

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Marks the cache stale when the call returns or throws: a failed call may have changed something too.
struct MarkChanged {
  StatsCache& cache;
  ~MarkChanged() { cache.changed(); }
};

}  // namespace

StatsCache::StatsCache(ResourceRegistry& inner, int64_t max_age_ms, Clock now)
    : inner_(inner), max_age_ms_(max_age_ms), now_(now ? std::move(now) : Clock(steady_ms)) {}

ResourceStats StatsCache::filter(const ResourceStats& all, const std::optional<std::string>& ns,
                                 const std::optional<std::set<std::string>>& scope) {
  ResourceStats s;
  for (const char* t : {"d1", "kv", "r2"}) s.by_type[t] = 0, s.size_by_type[t] = 0;
  for (const auto& [name, per_type] : all.by_namespace_type) {
    if (ns && name != *ns) continue;
    if (scope && !scope->count(name)) continue;
    s.by_namespace_type[name] = per_type;
    for (const auto& [type, c] : per_type) {
      if (c.count <= 0) continue;
      s.by_type[type] += c.count;
      s.size_by_type[type] += c.size;
      s.by_namespace[name] += c.count;
      s.total += c.count;
      s.total_size += c.size;
    }
  }
  return s;
}

ResourceStats StatsCache::stats(const std::optional<std::string>& ns,
                                const std::optional<std::set<std::string>>& scope) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = now_();
  const uint64_t gen = generation_.load(std::memory_order_acquire);
  if (!all_ || gen != read_generation_ || now - read_at_ >= max_age_ms_) {
    all_ = inner_.stats(std::nullopt, std::nullopt);
    read_at_ = now;
    read_generation_ = gen;  // a change noted while reading makes the next call read again
  }
  return filter(*all_, ns, scope);
}

ReindexReport StatsCache::reindex() {
  MarkChanged mark{*this};
  BackgroundCalls background;  // reindex reads every store: it yields to clients' calls
  return inner_.reindex();
}

void ChangeNotingRecorder::record_put(const char* type, const std::string& ns, const std::string& key, int64_t size,
                                      const std::optional<std::string>& metadata, std::optional<int64_t> expiration) {
  MarkChanged mark{cache_};
  inner_.record_put(type, ns, key, size, metadata, expiration);
}

void ChangeNotingRecorder::record_remove(const char* type, const std::string& ns, const std::string& key) {
  MarkChanged mark{cache_};
  inner_.record_remove(type, ns, key);
}

SqlResult ChangeNotingSql::query(const std::string& ns, const SqlStatement& statement) {
  MarkChanged mark{cache_};
  return inner_.query(ns, statement);
}

SqlResult ChangeNotingSql::exec(const std::string& ns, const SqlStatement& statement, int& statements) {
  MarkChanged mark{cache_};
  return inner_.exec(ns, statement, statements);
}

std::vector<SqlResult> ChangeNotingSql::batch(const std::string& ns, const std::vector<SqlStatement>& statements) {
  MarkChanged mark{cache_};
  return inner_.batch(ns, statements);
}

}  // namespace era::cf
