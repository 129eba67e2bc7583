#include "store/cloudflare/cloudflare_registry.h"

#include <map>

#include "ns/names.h"
#include "store/resource_walk.h"
#include "util/log.h"
#include "util/time.h"
#include "util/error.h"

namespace era::cf {
namespace {

using nlohmann::json;

constexpr const char* kRes = "\"era:resources\"";
constexpr const char* kCnt = "\"era:resource_counters\"";
constexpr const char* kReplicas = "\"era:registry_replicas\"";
constexpr const char* kTombs = "\"era:resource_tombstones\"";
constexpr int64_t kTombstoneKeepMs = 3600 * 1000;  // a change held back longer than this is reindex's
constexpr int kReadPage = 1000;
constexpr int64_t kSweepEverySeconds = 60;

int64_t as_int(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number()) return int64_t(v.get<double>());
  if (v.is_string()) return std::stoll(v.get<std::string>());
  return 0;
}
std::string as_text(const json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

std::string name_of(char sep, const std::string& ns, const std::string& key) { return ns + sep + key; }

// Counters at zero are removed (a namespace with nothing of a type has no counter row).
D1Statement drop_zero_counters() { return {std::string("DELETE FROM ") + kCnt + " WHERE count <= 0", {}}; }

// The "era:resources" rows of one type, in name order: the generic walk (store/resource_walk.h) pages
// over them as it does over the local backend's tables.
class RegistryRowSource : public NamedSource {
 public:
  RegistryRowSource(const char* type, char sep, D1Client& d1) : NamedSource(type, sep), d1_(d1) {}

  // Reindex of the rows is CloudflareRegistry's (it needs the stores); nothing to do here.
  void reindex(std::vector<std::string>&) override {}

 protected:
  std::vector<Entry> rows(const Range& r, const std::string& after, int64_t offset, int limit) override {
    auto res = d1_.run({"SELECT name, ns, key, size, metadata, created, updated FROM " + std::string(kRes) + where() +
                            " ORDER BY name LIMIT CAST(?7 AS INTEGER) OFFSET CAST(?8 AS INTEGER)",
                        params(r, after, {std::to_string(limit), std::to_string(offset)})},
                       Retry::idempotent, "D1 resources list");
    std::vector<Entry> out;
    if (!res.empty())
      for (const auto& row : res[0].rows) out.push_back(entry(row));
    return out;
  }

  int64_t count_rows(const Range& r, const std::string& after, int64_t up_to) override {
    auto res = d1_.run({"SELECT count(*) FROM (SELECT 1 FROM " + std::string(kRes) + where() +
                            " LIMIT CAST(?8 AS INTEGER))",
                        params(r, after, {"0", std::to_string(up_to)})},
                       Retry::idempotent, "D1 resources count");
    return !res.empty() && !res[0].rows.empty() ? as_int(res[0].rows[0].at(0)) : 0;
  }

  TallyByNs counters(const std::optional<std::vector<std::string>>& namespaces) override {
    // ?2: the namespaces to read as a JSON array, or '' for all. Counters count rows; rows past their
    // expiration and not yet swept are not resources, so they are subtracted (an index range).
    const std::string only = namespaces ? json(*namespaces).dump() : std::string();
    const std::string in_ns =
        " AND (?2 = '' OR ns IN (SELECT value FROM json_each(CASE WHEN ?2 = '' THEN '[]' ELSE ?2 END)))";
    auto res = d1_.batch(
        {{"SELECT ns, count, bytes FROM " + std::string(kCnt) + " WHERE type = ?1" + in_ns, {type(), only}},
         {"SELECT ns, count(*), coalesce(sum(size), 0) FROM " + std::string(kRes) +
              " WHERE expiration IS NOT NULL AND expiration <= CAST(?3 AS INTEGER) AND type = ?1" + in_ns +
              " GROUP BY ns",
          {type(), only, std::to_string(unix_now())}}},
        Retry::idempotent, "D1 resources stats");
    TallyByNs mine;
    if (!res.empty())
      for (const auto& row : res[0].rows) mine[as_text(row.at(0))] = {as_int(row.at(1)), as_int(row.at(2))};
    if (res.size() > 1)
      for (const auto& row : res[1].rows) {
        auto it = mine.find(as_text(row.at(0)));
        if (it == mine.end()) continue;
        it->second.count -= as_int(row.at(1));
        it->second.bytes -= as_int(row.at(2));
      }
    return mine;
  }

 private:
  // ?1 type ?2 after (exclusive) ?3 lo (inclusive) ?4 hi (exclusive) ?5 key prefix ?6 now.
  static std::string where() {
    return " WHERE type = ?1 AND name > ?2 AND name >= ?3 AND name < ?4"
           " AND (expiration IS NULL OR expiration > CAST(?6 AS INTEGER))"
           " AND (?5 = '' OR substr(key, 1, length(?5)) = ?5)";
  }
  std::vector<std::string> params(const Range& r, const std::string& after, std::vector<std::string> more) const {
    std::vector<std::string> p{type(), after, r.lo, r.hi, r.key_prefix, std::to_string(unix_now())};
    for (auto& m : more) p.push_back(std::move(m));
    return p;
  }

  Entry entry(const std::vector<json>& row) const {
    Entry e;
    e.order = as_text(row.at(0));
    Resource& r = e.resource;
    r.type = type();
    r.ns = as_text(row.at(1));
    r.key = as_text(row.at(2));
    r.size = as_int(row.at(3));
    if (row.at(4).is_string()) r.metadata = row.at(4).get<std::string>();
    r.created_at_ms = as_int(row.at(5));
    r.updated_at_ms = as_int(row.at(6));
    return e;
  }

  D1Client& d1_;
};

}  // namespace

CloudflareRegistry::CloudflareRegistry(D1Client& d1, SqlStore& tables, RegistryOptions options)
    : d1_(d1), options_(options) {
  std::vector<std::unique_ptr<ResourceSource>> sources;
  sources.push_back(make_sql_table_source(tables));  // D1 tables: straight from D1's ownership registry
  sources.push_back(std::make_unique<RegistryRowSource>("kv", ':', d1_));
  sources.push_back(std::make_unique<RegistryRowSource>("r2", '/', d1_));
  walker_ = std::make_unique<ResourceWalk>(std::move(sources));
}

CloudflareRegistry::~CloudflareRegistry() {
  if (started_) close();
}

KeyLocks::Guard CloudflareRegistry::order(const char* type, const std::string& ns, const std::string& key) {
  return key_locks_.lock(std::string(type) + '\n' + ns + '\n' + key);
}

void CloudflareRegistry::set_walkers(std::vector<StoreWalker> walkers) { walkers_ = std::move(walkers); }

std::vector<D1Statement> CloudflareRegistry::schema_statements() {
  return {{std::string("CREATE TABLE IF NOT EXISTS ") + kRes + R"sql( (
              type TEXT NOT NULL, name TEXT NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL,
              size INTEGER NOT NULL, metadata TEXT, created INTEGER NOT NULL, updated INTEGER NOT NULL,
              expiration INTEGER, PRIMARY KEY (type, name)))sql",
           {}},
          {std::string("CREATE INDEX IF NOT EXISTS \"era:resources_expiration\" ON ") + kRes +
               "(expiration) WHERE expiration IS NOT NULL",
           {}},
          {std::string("CREATE TABLE IF NOT EXISTS ") + kCnt + R"sql( (
              type TEXT NOT NULL, ns TEXT NOT NULL, count INTEGER NOT NULL, bytes INTEGER NOT NULL,
              PRIMARY KEY (type, ns)))sql",
           {}},
          {std::string("CREATE TABLE IF NOT EXISTS ") + kTombs + R"sql( (
              type TEXT NOT NULL, name TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (type, name)))sql",
           {}},
          {std::string("CREATE INDEX IF NOT EXISTS \"era:resource_tombstones_at\" ON ") + kTombs + "(at)", {}},
          {std::string("CREATE TABLE IF NOT EXISTS ") + kReplicas + R"sql( (
              id TEXT PRIMARY KEY, started INTEGER NOT NULL, seen INTEGER NOT NULL,
              repaired INTEGER NOT NULL DEFAULT 0))sql",
           {}}};
}

void CloudflareRegistry::ensure_schema() {
  std::lock_guard<std::mutex> lock(mu_);
  if (schema_ready_) return;
  d1_.batch(schema_statements(), Retry::idempotent, "D1 resources schema");
  schema_ready_ = true;
}

void CloudflareRegistry::enqueue(RegistryChange c) {
  const char sep = c.type == "r2" ? '/' : ':';
  std::pair<std::string, std::string> id{c.type, name_of(sep, c.ns, c.key)};
  std::lock_guard<std::mutex> lock(q_mu_);
  if (queue_.size() >= options_.max_queued && !queue_.count(id)) {
    // D1 has refused for long: holding more would grow without bound. What is dropped is repaired
    // by a reindex as soon as a flush succeeds again (logged, never silent).
    if (!overflowed_)
      log::error("resource registry: " + std::to_string(queue_.size()) +
                 " changes queued and D1 still refusing; dropping them, a reindex will repair the registry "
                 "once D1 answers");
    overflowed_ = true;
    queue_.clear();
  }
  queue_[std::move(id)] = std::move(c);
}

void CloudflareRegistry::record_put(const char* type, const std::string& ns, const std::string& key, int64_t size,
                                    const std::optional<std::string>& metadata, std::optional<int64_t> expiration) {
  enqueue(RegistryChange{true, type, ns, key, size, metadata, expiration, unix_now_ms()});
}

void CloudflareRegistry::record_remove(const char* type, const std::string& ns, const std::string& key) {
  enqueue(RegistryChange{false, type, ns, key, 0, std::nullopt, std::nullopt, unix_now_ms()});
}

size_t CloudflareRegistry::queued() const {
  std::lock_guard<std::mutex> lock(q_mu_);
  return queue_.size();
}

// One JSON array parameter per chunk; each change {"p":1|0,"t","n","s"(ns),"k","z"(size),"m","e","a"}.
// Statements (in one transaction): subtract the touched rows from the counters, delete the removed
// rows (unless rewritten since) and leave a tombstone with the delete's time, upsert the put rows
// (unless the row or a tombstone is newer: a put on one replica and a delete on another, flushed in
// the other order, still end deleted), add the touched rows back, drop empty counters, forget
// tombstones older than an hour. The marker's refresh and the stale-marker read ride along.
std::vector<std::vector<D1Statement>> CloudflareRegistry::flush_batches(const std::vector<RegistryChange>& changes,
                                                                        const std::string& replica_id, int64_t now_ms,
                                                                        size_t max_param_bytes) {
  std::vector<std::string> chunks;
  std::string cur;
  for (const auto& c : changes) {
    const char sep = c.type == "r2" ? '/' : ':';
    json j = {{"p", c.put ? 1 : 0}, {"t", c.type}, {"n", name_of(sep, c.ns, c.key)}, {"s", c.ns}, {"k", c.key},
              {"z", c.size}, {"a", c.at_ms}};
    j["m"] = c.metadata ? json(*c.metadata) : json(nullptr);
    j["e"] = c.expiration ? json(*c.expiration) : json(nullptr);
    std::string item = j.dump();
    if (!cur.empty() && cur.size() + item.size() + 2 > max_param_bytes) {
      chunks.push_back(cur + "]");
      cur.clear();
    }
    cur += (cur.empty() ? "[" : ",") + item;
  }
  if (!cur.empty()) chunks.push_back(cur + "]");
  const std::string T = "json_extract(j.value, '$.t')", N = "json_extract(j.value, '$.n')";
  const std::string touched = std::string(" FROM json_each(?1) j JOIN ") + kRes + " r ON r.type = " + T +
                              " AND r.name = " + N;
  const std::string add_counters = std::string("INSERT INTO ") + kCnt + " (type, ns, count, bytes) ";
  const std::string merge = " ON CONFLICT(type, ns) DO UPDATE SET count = count + excluded.count, bytes = bytes + "
                            "excluded.bytes";
  std::vector<std::vector<D1Statement>> out;
  for (size_t i = 0; i < chunks.size(); ++i) {
    std::vector<D1Statement> b;
    b.push_back({add_counters + "SELECT r.type, r.ns, -count(*), -sum(r.size)" + touched +
                     " WHERE true GROUP BY r.type, r.ns" + merge,
                 {chunks[i]}});
    b.push_back({std::string("DELETE FROM ") + kRes + " WHERE rowid IN (SELECT r.rowid" + touched +
                     " WHERE json_extract(j.value, '$.p') = 0 AND r.updated <= json_extract(j.value, '$.a'))",
                 {chunks[i]}});
    b.push_back({std::string("INSERT INTO ") + kTombs + " (type, name, at) SELECT " + T + ", " + N +
                     ", json_extract(j.value, '$.a') FROM json_each(?1) j WHERE json_extract(j.value, '$.p') = 0 "
                     "ON CONFLICT(type, name) DO UPDATE SET at = max(at, excluded.at)",
                 {chunks[i]}});
    b.push_back({std::string("INSERT INTO ") + kRes +
                     " (type, name, ns, key, size, metadata, created, updated, expiration) SELECT " + T + ", " + N +
                     ", json_extract(j.value, '$.s'), json_extract(j.value, '$.k'), json_extract(j.value, '$.z'), "
                     "json_extract(j.value, '$.m'), json_extract(j.value, '$.a'), json_extract(j.value, '$.a'), "
                     "json_extract(j.value, '$.e') FROM json_each(?1) j WHERE json_extract(j.value, '$.p') = 1 "
                     "AND NOT EXISTS (SELECT 1 FROM " + kTombs + " d WHERE d.type = " + T + " AND d.name = " + N +
                     " AND d.at > json_extract(j.value, '$.a')) ON CONFLICT(type, name) DO UPDATE SET size = excluded.size, metadata = excluded.metadata, "
                     "updated = excluded.updated, expiration = excluded.expiration WHERE excluded.updated >= " +
                     kRes + ".updated",
                 {chunks[i]}});
    b.push_back({add_counters + "SELECT r.type, r.ns, count(*), sum(r.size)" + touched +
                     " WHERE true GROUP BY r.type, r.ns" + merge,
                 {chunks[i]}});
    b.push_back(drop_zero_counters());
    b.push_back({std::string("DELETE FROM ") + kTombs + " WHERE at < CAST(?1 AS INTEGER)",
                 {std::to_string(now_ms - kTombstoneKeepMs)}});
    out.push_back(std::move(b));
  }
  if (!replica_id.empty()) {
    // The marker: refreshed by every flush (re-created if a reindex removed it), and the markers of
    // replicas that stopped flushing long ago and were not repaired since.
    if (out.empty()) out.emplace_back();
    const std::string now = std::to_string(now_ms);
    out.back().push_back({std::string("INSERT INTO ") + kReplicas +
                              " (id, started, seen, repaired) VALUES (?1, CAST(?2 AS INTEGER), CAST(?2 AS INTEGER), "
                              "0) ON CONFLICT(id) DO UPDATE SET seen = excluded.seen",
                          {replica_id, now}});
    out.back().push_back({std::string("SELECT id FROM ") + kReplicas +
                              " WHERE id <> ?1 AND repaired < seen AND seen < CAST(?2 AS INTEGER) LIMIT 16",
                          {replica_id, std::to_string(now_ms - kStaleMarkerSeconds * 1000)}});
  }
  return out;
}

size_t CloudflareRegistry::flush() {
  std::lock_guard<std::mutex> one_at_a_time(flush_mu_);
  std::vector<RegistryChange> changes;
  bool repair = false;
  {
    std::lock_guard<std::mutex> lock(q_mu_);
    for (auto& [_, c] : queue_) changes.push_back(std::move(c));
    queue_.clear();
    repair = overflowed_;
  }
  if (changes.empty() && !repair) return 0;
  auto put_back = [&] {
    std::lock_guard<std::mutex> lock(q_mu_);
    for (auto& c : changes) {
      const char sep = c.type == "r2" ? '/' : ':';
      queue_.emplace(std::make_pair(c.type, name_of(sep, c.ns, c.key)), std::move(c));  // newer ones stay
    }
  };
  std::vector<std::string> stale;
  try {
    ensure_schema();
    const auto batches = flush_batches(changes, replica_id_, unix_now_ms());
    for (size_t i = 0; i < batches.size(); ++i) {
      auto res = d1_.batch(batches[i], Retry::idempotent, "D1 resources record");
      if (i + 1 == batches.size() && !replica_id_.empty() && !res.empty())
        for (const auto& row : res.back().rows) stale.push_back(as_text(row.at(0)));
    }
  } catch (...) {
    put_back();  // a chunk that did land is sent again: the batch is idempotent
    throw;
  }
  if (repair) stale.push_back(replica_id_.empty() ? "this process" : replica_id_);  // its own dropped changes
  if (!stale.empty()) {
    std::lock_guard<std::mutex> lock(q_mu_);
    stale_ = std::move(stale);
  }
  return changes.size();
}

void CloudflareRegistry::repair_stale(const std::vector<std::string>& ids) {
  const int64_t started = unix_now_ms();
  {
    std::lock_guard<std::mutex> lock(q_mu_);
    overflowed_ = false;  // what overflowed before this reindex starts is repaired by it
  }
  auto report = reindex();
  log::warn("resource registry: replica(s) " + json(ids).dump() +
            " stopped without flushing their registry changes; reindex repaired " +
            std::to_string(report.repairs.size()) + " entr(ies)");
  d1_.run({std::string("UPDATE ") + kReplicas + " SET repaired = CAST(?2 AS INTEGER) WHERE id IN (SELECT value FROM "
                                                "json_each(?1)) AND seen <= CAST(?2 AS INTEGER)",
           {json(ids).dump(), std::to_string(started)}},
          Retry::idempotent, "D1 resources replicas");
}

void CloudflareRegistry::run_flusher() {
  int failures = 0;
  std::unique_lock<std::mutex> lock(q_mu_);
  while (!stopping_) {
    const long delay = long(options_.flush_ms) << std::min(failures, 5);
    wake_.wait_for(lock, std::chrono::milliseconds(std::min(delay, 60000L)), [this] { return stopping_; });
    if (stopping_) break;
    if (queue_.empty() && !overflowed_ && stale_.empty()) continue;  // idle: no call
    lock.unlock();
    try {
      flush();
      failures = 0;
    } catch (const std::exception& e) {
      ++failures;
      log::warn(std::string("resource registry: flush failed, ") + std::to_string(queued()) +
                " change(s) kept for the next try: " + e.what());
    }
    std::vector<std::string> stale;
    {
      std::lock_guard<std::mutex> l(q_mu_);
      stale.swap(stale_);
    }
    if (!stale.empty()) {
      try {
        repair_stale(stale);
      } catch (const std::exception& e) {
        log::warn(std::string("resource registry: repair of stopped replicas failed (retried later): ") + e.what());
      }
    }
    lock.lock();
  }
}

void CloudflareRegistry::start(const std::string& replica_id) {
  ensure_schema();
  // The marker, and what the previous process with this id left: a marker still there means it did not
  // flush on a graceful stop (a crash, a kill): reindex before serving.
  auto res = d1_.batch({{std::string("SELECT seen FROM ") + kReplicas + " WHERE id = ?1 AND repaired < seen",
                         {replica_id}},
                        {std::string("INSERT INTO ") + kReplicas +
                             " (id, started, seen, repaired) VALUES (?1, CAST(?2 AS INTEGER), CAST(?2 AS INTEGER), 0) "
                             "ON CONFLICT(id) DO UPDATE SET started = excluded.started, seen = excluded.seen, "
                             "repaired = 0",
                         {replica_id, std::to_string(unix_now_ms())}}},
                       Retry::idempotent, "D1 resources replicas");
  if (!res.empty() && !res[0].rows.empty()) {
    log::warn("resource registry: the previous process on " + replica_id +
              " stopped without flushing its registry changes; reindexing before serving");
    auto report = reindex();
    for (const auto& line : report.repairs) log::info("resource registry: repaired " + line);
    log::info("resource registry: reindex done, " + std::to_string(report.repairs.size()) + " repair(s)");
  }
  std::lock_guard<std::mutex> lock(q_mu_);
  replica_id_ = replica_id;
  started_ = true;
  flusher_ = std::thread([this] { run_flusher(); });
}

void CloudflareRegistry::close() {
  {
    std::lock_guard<std::mutex> lock(q_mu_);
    if (closed_) return;
    closed_ = true;
    stopping_ = true;
  }
  wake_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  try {
    flush();
    if (!replica_id_.empty())
      d1_.run({std::string("DELETE FROM ") + kReplicas + " WHERE id = ?1", {replica_id_}}, Retry::idempotent,
              "D1 resources replicas");
  } catch (const std::exception& e) {
    // The marker stays: the next start with this id (or another replica, later) reindexes.
    log::error(std::string("resource registry: the final flush failed; ") + std::to_string(queued()) +
               " change(s) not recorded, the next start reindexes: " + e.what());
  }
}

std::map<std::string, std::string> CloudflareRegistry::metadata_of(const char* type, const std::string& ns,
                                                                  const std::vector<std::string>& keys) {
  std::map<std::string, std::string> out;
  if (keys.empty()) return out;
  const char sep = std::string(type) == "r2" ? '/' : ':';
  std::vector<std::string> names;
  {
    // This replica's queued changes answer for their keys (read-your-writes before the flush).
    std::lock_guard<std::mutex> lock(q_mu_);
    for (const auto& k : keys) {
      auto it = queue_.find({type, name_of(sep, ns, k)});
      if (it == queue_.end()) names.push_back(name_of(sep, ns, k));
      else if (it->second.put && it->second.metadata) out[k] = *it->second.metadata;
    }
  }
  if (names.empty()) return out;
  ensure_schema();
  auto res = d1_.run({std::string("SELECT key, metadata FROM ") + kRes +
                          " WHERE type = ?1 AND name IN (SELECT value FROM json_each(?2)) AND metadata IS NOT NULL",
                      {type, json(names).dump()}},
                     Retry::idempotent, "D1 resources metadata");
  if (!res.empty())
    for (const auto& row : res[0].rows) out[as_text(row.at(0))] = as_text(row.at(1));
  return out;
}

int64_t CloudflareRegistry::sweep() {
  ensure_schema();
  const std::string now = std::to_string(unix_now());
  auto res = d1_.batch(
      {{std::string("INSERT INTO ") + kCnt + " (type, ns, count, bytes) SELECT type, ns, -count(*), -sum(size) FROM " +
            kRes + " WHERE expiration IS NOT NULL AND expiration <= CAST(?1 AS INTEGER) GROUP BY type, ns "
                   "ON CONFLICT(type, ns) DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes",
        {now}},
       {std::string("DELETE FROM ") + kRes + " WHERE expiration IS NOT NULL AND expiration <= CAST(?1 AS INTEGER)",
        {now}},
       drop_zero_counters()},
      Retry::idempotent, "D1 resources sweep");
  return res.size() > 1 ? res[1].changes() : 0;
}

void CloudflareRegistry::maybe_sweep() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = unix_now();
    if (now - last_sweep_ < kSweepEverySeconds) return;
    last_sweep_ = now;
  }
  sweep();
}

// Queued changes go first, so this replica lists its own writes; if D1 refuses, the listing is served
// from what D1 has (the changes stay queued).
void CloudflareRegistry::flush_for_read() {
  try {
    flush();
  } catch (const std::exception& e) {
    log::warn(std::string("resource registry: flush before a read failed, ") + std::to_string(queued()) +
              " change(s) kept: " + e.what());
  }
}

ResourcePage CloudflareRegistry::list(const ResourceQuery& query) {
  ensure_schema();
  flush_for_read();
  return walker_->list(query);
}

ResourceStats CloudflareRegistry::stats(const std::optional<std::string>& ns,
                                        const std::optional<std::set<std::string>>& scope) {
  ensure_schema();
  flush_for_read();
  maybe_sweep();
  return walker_->stats(ns, scope);
}

// Rebuilds the rows of each type from its store (entries the registry lacks, or holds with another size,
// are recorded from the store; rows the store lacks are removed), then the counters from the rows in
// one batch. Reports every row and counter it changed.
ReindexReport CloudflareRegistry::reindex() {
  ensure_schema();
  flush();  // the rows read below include this replica's queued changes
  ReindexReport report;
  if (int64_t n = sweep()) report.repairs.push_back("swept " + std::to_string(n) + " expired KV entries");
  for (const auto& w : walkers_) {
    // The registry's rows of this type: name -> size.
    std::map<std::string, int64_t> rows;
    std::string after;
    for (;;) {
      auto res = d1_.run({std::string("SELECT name, size FROM ") + kRes +
                              " WHERE type = ?1 AND name > ?2 ORDER BY name LIMIT CAST(?3 AS INTEGER)",
                          {w.type, after, std::to_string(kReadPage)}},
                         Retry::idempotent, "D1 resources reindex");
      if (res.empty() || res[0].rows.empty()) break;
      for (const auto& row : res[0].rows) rows[as_text(row.at(0))] = as_int(row.at(1));
      after = as_text(res[0].rows.back().at(0));
      if (res[0].rows.size() < size_t(kReadPage)) break;
    }
    std::map<std::string, bool> seen;
    w.walk([&](StoredEntry e) {
      const std::string name = name_of(w.separator, e.ns, e.key);
      seen[name] = true;
      auto it = rows.find(name);
      std::optional<int64_t> size = e.size;
      if (!size && it != rows.end()) size = it->second;
      std::optional<StoredEntry> looked;
      if (!size) {
        looked = w.lookup(e.ns, e.key);
        if (!looked) return;  // gone meanwhile
        size = looked->size;
      }
      if (!size) return;
      if (it != rows.end() && it->second == *size) return;  // right already (its timestamps are kept)
      // The row is (re)written whole: metadata the walk did not give comes from the store.
      if (!e.metadata && !looked) looked = w.lookup(e.ns, e.key);
      if (!e.metadata && looked) e.metadata = looked->metadata;
      report.repairs.push_back(std::string(w.type) + " " + name + ": " +
                               (it == rows.end() ? "missing, added" : "size " + std::to_string(it->second) + " -> " +
                                                                          std::to_string(*size)));
      record_put(w.type, e.ns, e.key, *size, e.metadata, e.expiration);
    });
    for (const auto& [name, _] : rows) {
      if (seen.count(name)) continue;
      const auto at = name.find(w.separator);
      report.repairs.push_back(std::string(w.type) + " " + name + ": not in the store, removed");
      record_remove(w.type, name.substr(0, at), name.substr(at + 1));
    }
    flush();  // the repairs above, before the counters are rebuilt from the rows
    // Counters from the rows, in one transaction; report what changed.
    auto before = d1_.run({std::string("SELECT ns, count, bytes FROM ") + kCnt + " WHERE type = ?1", {w.type}},
                          Retry::idempotent, "D1 resources reindex");
    auto after_res = d1_.batch(
        {{std::string("DELETE FROM ") + kCnt + " WHERE type = ?1", {w.type}},
         {std::string("INSERT INTO ") + kCnt + " (type, ns, count, bytes) SELECT type, ns, count(*), sum(size) FROM " +
              kRes + " WHERE type = ?1 GROUP BY ns",
          {w.type}},
         {std::string("SELECT ns, count, bytes FROM ") + kCnt + " WHERE type = ?1", {w.type}}},
        Retry::idempotent, "D1 resources reindex");
    TallyByNs old_c, new_c;
    if (!before.empty())
      for (const auto& row : before[0].rows) old_c[as_text(row.at(0))] = {as_int(row.at(1)), as_int(row.at(2))};
    if (after_res.size() > 2)
      for (const auto& row : after_res[2].rows) new_c[as_text(row.at(0))] = {as_int(row.at(1)), as_int(row.at(2))};
    report_tally_repairs(w.type, old_c, new_c, report.repairs);
  }
  return report;
}

}  // namespace era::cf
