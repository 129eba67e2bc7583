#include "store/local/local_kv.h"

#include "ns/names.h"
#include "store/local/counters.h"
#include "util/encoding.h"
#include "util/error.h"

#include <map>

namespace era {

void LocalKv::create_schema(sqlite::Db& db) {
  db.exec(R"sql(
    CREATE TABLE IF NOT EXISTS kv (
      name       BLOB NOT NULL UNIQUE,   -- "ns:key", the internal name the guide documents
      ns         TEXT NOT NULL,
      value      BLOB NOT NULL,
      size       INTEGER NOT NULL,       -- bytes of value
      metadata   TEXT,                   -- compact JSON, or NULL
      expiration INTEGER,                -- unix seconds, or NULL: never expires
      created_at INTEGER NOT NULL,       -- unix milliseconds
      updated_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS kv_expiration ON kv(expiration) WHERE expiration IS NOT NULL;
  )sql");
  counters::create_schema(db);
}

namespace {
// Entries live until the least recently used go (the cache is exact, nothing goes stale): the ttl only
// retires an entry nobody read for a day.
constexpr std::chrono::hours kCacheTtl{24};

// Drops a key's cache entry when a write to it is over, however it ended (a throw included).
struct Forget {
  KvReadCache& cache;
  const std::string& name;
  ~Forget() { cache.forget(name); }
};
}  // namespace

LocalKv::LocalKv(sqlite::Writer& writer, sqlite::ReaderPool& readers, std::function<int64_t()> now_ms,
                 size_t cache_bytes)
    : writer_(writer), readers_(readers), now_ms_(std::move(now_ms)), now_([this] { return now_ms_() / 1000; }),
      cache_(cache_bytes ? std::chrono::milliseconds(kCacheTtl) : std::chrono::milliseconds(0), cache_bytes) {
  writer_.submit([](sqlite::Db& db) { create_schema(db); });
}

void LocalKv::put(const std::string& ns, const std::string& key, const KvValue& v) {
  const std::string name = ns::kv_name(ns, key);
  const int64_t now_ms = now_ms_();
  const int64_t now = now_ms / 1000;
  // Whatever the outcome (committed, refused, or unknown), the key's entry goes once the write is
  // over: the next read asks the database.
  Forget forget{cache_, name};
  writer_.submit([&](sqlite::Db& db) {
    // The counters count rows (expired ones too, until the sweep removes them), so a replaced row
    // changes only the byte count.
    std::optional<int64_t> old_size;
    {
      sqlite::StmtUse st(db.cached("SELECT size FROM kv WHERE name = ?1"));
      st->bind_blob(1, name);
      if (st->step()) old_size = st->int64(0);
    }
    sqlite::StmtUse st(db.cached(R"sql(
      INSERT INTO kv (name, ns, value, size, metadata, expiration, created_at, updated_at)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
      ON CONFLICT(name) DO UPDATE SET
        value = excluded.value, size = excluded.size, metadata = excluded.metadata,
        expiration = excluded.expiration,
        created_at = CASE WHEN kv.expiration IS NOT NULL AND kv.expiration <= ?8
                          THEN excluded.created_at ELSE kv.created_at END,
        updated_at = excluded.updated_at)sql"));
    st->bind_blob(1, name).bind_text(2, ns).bind_blob(3, v.value).bind(4, int64_t(v.value.size()));
    st->bind_opt_text(5, v.metadata).bind_opt_int(6, v.expiration).bind(7, now_ms).bind(8, now);
    st->run();
    counters::bump(db, "kv", ns, old_size ? 0 : 1, int64_t(v.value.size()) - old_size.value_or(0));
  });
}

bool LocalKv::cached(const std::string& ns, const std::string& key, std::optional<KvValue>& out) {
  return cache_.lookup(ns::kv_name(ns, key), out, now_());
}

std::optional<KvValue> LocalKv::get(const std::string& ns, const std::string& key) {
  const std::string name = ns::kv_name(ns, key);
  std::optional<KvValue> found;
  if (cache_.lookup(name, found, now_())) return found;
  const uint64_t generation = cache_.begin_read();  // before the read: a write after it wins
  {
    auto db = readers_.lease();
    // Every row of the key, expired or not: the cache keeps what the row says and lookup() applies
    // the expiration at each read (an expired row reads as absent, as the query below would say).
    sqlite::StmtUse st(db->cached("SELECT value, metadata, expiration FROM kv WHERE name = ?1"));
    st->bind_blob(1, name);
    if (st->step()) found = KvValue{st->text(0), st->opt_text(1), st->opt_int(2)};
  }
  cache_.fill(name, found, generation);
  if (found && found->expiration && *found->expiration <= now_()) return std::nullopt;
  return found;
}

void LocalKv::remove(const std::string& ns, const std::string& key) {
  const std::string name = ns::kv_name(ns, key);
  Forget forget{cache_, name};
  writer_.submit([&](sqlite::Db& db) {
    sqlite::StmtUse st(db.cached("DELETE FROM kv WHERE name = ?1 RETURNING size"));
    st->bind_blob(1, name);
    if (st->step()) {
      int64_t size = st->int64(0);
      st->run();
      counters::bump(db, "kv", ns, -1, -size);
    }
  });
}

KvPage LocalKv::list(const std::string& ns, const std::string& prefix, int limit, const std::string& cursor) {
  const std::string lo = ns::kv_name(ns, prefix);
  const std::string hi = ns::prefix_upper_bound(lo);  // never empty: "ns:" holds a byte below 0xFF
  std::string after;                                   // x'' sorts before every non-empty name
  if (!cursor.empty()) {
    auto last = enc::base64_decode(cursor, true);
    if (!last) throw ApiError(400, "invalid_cursor", "invalid cursor: pass the cursor of a previous page as is");
    after = ns::kv_name(ns, *last);
  }
  KvPage page;
  auto db = readers_.lease();
  sqlite::StmtUse st(db->cached(R"sql(
    SELECT name, metadata, expiration FROM kv
    WHERE name >= ?1 AND name < ?2 AND name > ?3 AND (expiration IS NULL OR expiration > ?4)
    ORDER BY name LIMIT ?5)sql"));
  st->bind_blob(1, lo).bind_blob(2, hi).bind_blob(3, after).bind(4, now_()).bind(5, int64_t(limit) + 1);
  const size_t skip = ns.size() + 1;
  while (st->step()) {
    if (page.keys.size() == size_t(limit)) {
      page.complete = false;
      page.cursor = enc::base64_encode(page.keys.back().name, true);
      break;
    }
    page.keys.push_back(KvKeyInfo{st->text(0).substr(skip), st->opt_text(1), st->opt_int(2)});
  }
  return page;
}

int64_t LocalKv::sweep_expired() {
  const int64_t now = now_();
  return writer_.submit([&](sqlite::Db& db) {
    int64_t removed = 0;
    sqlite::StmtUse st(db.cached(
        "DELETE FROM kv WHERE expiration IS NOT NULL AND expiration <= ?1 RETURNING ns, size"));
    st->bind(1, now);
    std::map<std::string, std::pair<int64_t, int64_t>> by_ns;
    while (st->step()) {
      auto& c = by_ns[st->text(0)];
      c.first += 1;
      c.second += st->int64(1);
      ++removed;
    }
    for (const auto& [ns, c] : by_ns) counters::bump(db, "kv", ns, -c.first, -c.second);
    return removed;
  });
}

}  // namespace era
