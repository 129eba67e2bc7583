#include "store/cloudflare/cloudflare_registry.h"

#include <map>

#include "ns/names.h"
#include "store/resource_walk.h"
#include "util/time.h"
#include "util/error.h"

namespace era::cf {
namespace {

using nlohmann::json;

constexpr const char* kRes = "\"era:resources\"";
constexpr const char* kCnt = "\"era:resource_counters\"";
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

// Counters move with the row in the same batch: subtract the old row (if any), change the row, add the
// new one, drop counters that reached zero. Running the batch twice gives the same state (retry-safe).
D1Statement subtract_row(const char* type, const std::string& name) {
  return {std::string("INSERT INTO ") + kCnt + " (type, ns, count, bytes) SELECT type, ns, -1, -size FROM " + kRes +
              " WHERE type = ?1 AND name = ?2 ON CONFLICT(type, ns) DO UPDATE SET count = count + excluded.count, "
              "bytes = bytes + excluded.bytes",
          {type, name}};
}
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

CloudflareRegistry::CloudflareRegistry(D1Client& d1, SqlStore& tables) : d1_(d1) {
  std::vector<std::unique_ptr<ResourceSource>> sources;
  sources.push_back(make_sql_table_source(tables));  // D1 tables: straight from D1's ownership registry
  sources.push_back(std::make_unique<RegistryRowSource>("kv", ':', d1_));
  sources.push_back(std::make_unique<RegistryRowSource>("r2", '/', d1_));
  walker_ = std::make_unique<ResourceWalk>(std::move(sources));
}

CloudflareRegistry::~CloudflareRegistry() = default;

KeyLocks::Guard CloudflareRegistry::order(const char* type, const std::string& ns, const std::string& key) {
  return key_locks_.lock(std::string(type) + '\n' + ns + '\n' + key);
}

void CloudflareRegistry::set_walkers(std::vector<StoreWalker> walkers) { walkers_ = std::move(walkers); }

void CloudflareRegistry::ensure_schema() {
  std::lock_guard<std::mutex> lock(mu_);
  if (schema_ready_) return;
  d1_.batch({{std::string("CREATE TABLE IF NOT EXISTS ") + kRes + R"sql( (
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
              {}}},
            Retry::idempotent, "D1 resources schema");
  schema_ready_ = true;
}

void CloudflareRegistry::record_put(const char* type, const std::string& ns, const std::string& key, int64_t size,
                                    const std::optional<std::string>& metadata, std::optional<int64_t> expiration) {
  ensure_schema();
  const char sep = std::string(type) == "r2" ? '/' : ':';
  const std::string name = name_of(sep, ns, key);
  const std::string now = std::to_string(unix_now_ms());
  // No NULL parameters over /raw: '' stands for "none" (never valid JSON metadata nor an expiration).
  d1_.batch({subtract_row(type, name),
             {std::string("INSERT INTO ") + kRes +
                  " (type, name, ns, key, size, metadata, created, updated, expiration) VALUES (?1, ?2, ?3, ?4, "
                  "CAST(?5 AS INTEGER), NULLIF(?6, ''), CAST(?7 AS INTEGER), CAST(?7 AS INTEGER), "
                  "CAST(NULLIF(?8, '') AS INTEGER)) ON CONFLICT(type, name) DO UPDATE SET size = excluded.size, "
                  "metadata = excluded.metadata, updated = excluded.updated, expiration = excluded.expiration",
              {type, name, ns, key, std::to_string(size), metadata.value_or(""), now,
               expiration ? std::to_string(*expiration) : ""}},
             {std::string("INSERT INTO ") + kCnt +
                  " (type, ns, count, bytes) VALUES (?1, ?2, 1, CAST(?3 AS INTEGER)) ON CONFLICT(type, ns) DO UPDATE "
                  "SET count = count + excluded.count, bytes = bytes + excluded.bytes",
              {type, ns, std::to_string(size)}},
             drop_zero_counters()},
            Retry::idempotent, "D1 resources record");
}

void CloudflareRegistry::record_remove(const char* type, const std::string& ns, const std::string& key) {
  ensure_schema();
  const char sep = std::string(type) == "r2" ? '/' : ':';
  const std::string name = name_of(sep, ns, key);
  d1_.batch({subtract_row(type, name),
             {std::string("DELETE FROM ") + kRes + " WHERE type = ?1 AND name = ?2", {type, name}},
             drop_zero_counters()},
            Retry::idempotent, "D1 resources record");
}

std::map<std::string, std::string> CloudflareRegistry::metadata_of(const char* type, const std::string& ns,
                                                                  const std::vector<std::string>& keys) {
  std::map<std::string, std::string> out;
  if (keys.empty()) return out;
  ensure_schema();
  const char sep = std::string(type) == "r2" ? '/' : ':';
  std::vector<std::string> names;
  names.reserve(keys.size());
  for (const auto& k : keys) names.push_back(name_of(sep, ns, k));
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

ResourcePage CloudflareRegistry::list(const ResourceQuery& query) {
  ensure_schema();
  return walker_->list(query);
}

ResourceStats CloudflareRegistry::stats(const std::optional<std::string>& ns,
                                        const std::optional<std::set<std::string>>& scope) {
  ensure_schema();
  maybe_sweep();
  return walker_->stats(ns, scope);
}

// Rebuilds the rows of each type from its store (entries the registry lacks, or holds with another size,
// are recorded from the store; rows the store lacks are removed), then the counters from the rows in
// one batch. Reports every row and counter it changed.
ReindexReport CloudflareRegistry::reindex() {
  ensure_schema();
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
