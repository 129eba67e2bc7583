#include "store/local/local_kv.h"

#include "ns/names.h"
#include "util/encoding.h"
#include "util/error.h"

namespace era {

void LocalKv::create_schema(sqlite::Db& db) {
  db.exec(R"sql(
    CREATE TABLE IF NOT EXISTS kv (
      name       BLOB NOT NULL UNIQUE,   -- "ns:key", the internal name the guide documents
      ns         TEXT NOT NULL,
      value      BLOB NOT NULL,
      metadata   TEXT,                   -- compact JSON, or NULL
      expiration INTEGER,                -- unix seconds, or NULL: never expires
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS kv_expiration ON kv(expiration) WHERE expiration IS NOT NULL;
  )sql");
}

LocalKv::LocalKv(sqlite::Writer& writer, sqlite::ReaderPool& readers, std::function<int64_t()> now)
    : writer_(writer), readers_(readers), now_(std::move(now)) {
  writer_.submit([](sqlite::Db& db) { create_schema(db); });
}

void LocalKv::put(const std::string& ns, const std::string& key, const KvValue& v) {
  const std::string name = ns::kv_name(ns, key);
  const int64_t now = now_();
  writer_.submit([&](sqlite::Db& db) {
    sqlite::StmtUse st(db.cached(R"sql(
      INSERT INTO kv (name, ns, value, metadata, expiration, created_at, updated_at)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
      ON CONFLICT(name) DO UPDATE SET
        value = excluded.value, metadata = excluded.metadata, expiration = excluded.expiration,
        created_at = CASE WHEN kv.expiration IS NOT NULL AND kv.expiration <= ?6
                          THEN excluded.created_at ELSE kv.created_at END,
        updated_at = excluded.updated_at)sql"));
    st->bind_blob(1, name).bind_text(2, ns).bind_blob(3, v.value).bind_opt_text(4, v.metadata);
    st->bind_opt_int(5, v.expiration).bind(6, now);
    st->run();
  });
}

std::optional<KvValue> LocalKv::get(const std::string& ns, const std::string& key) {
  auto db = readers_.lease();
  sqlite::StmtUse st(db->cached(
      "SELECT value, metadata, expiration FROM kv WHERE name = ?1 AND (expiration IS NULL OR expiration > ?2)"));
  st->bind_blob(1, ns::kv_name(ns, key)).bind(2, now_());
  if (!st->step()) return std::nullopt;
  return KvValue{st->text(0), st->opt_text(1), st->opt_int(2)};
}

void LocalKv::remove(const std::string& ns, const std::string& key) {
  const std::string name = ns::kv_name(ns, key);
  writer_.submit([&](sqlite::Db& db) {
    sqlite::StmtUse st(db.cached("DELETE FROM kv WHERE name = ?1"));
    st->bind_blob(1, name).run();
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
    sqlite::StmtUse st(db.cached("DELETE FROM kv WHERE expiration IS NOT NULL AND expiration <= ?1"));
    st->bind(1, now).run();
    return db.changes();
  });
}

}  // namespace era
