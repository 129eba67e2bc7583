#include "store/local/local_sessions.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace era {
namespace {

// The scope is stored as the JSON the API speaks: "*" or an array of names.
std::string scope_json(const SessionRecord& s) {
  return s.all_namespaces ? nlohmann::json("*").dump() : nlohmann::json(s.namespaces).dump();
}

SessionRecord read_row(sqlite::Stmt& st) {
  SessionRecord r;
  r.id = st.text(0);
  r.language = st.text(1);
  auto scope = nlohmann::json::parse(st.text(2));
  if (scope.is_string()) r.all_namespaces = true;
  else r.namespaces = scope.get<std::vector<std::string>>();
  r.permissions = st.text(3);
  r.created_at = st.int64(4);
  r.expires_at = st.int64(5);
  r.metadata = st.opt_text(6).value_or("");
  return r;
}

constexpr const char* kColumns = "id, language, scope, permissions, created_at, expires_at, metadata";

}  // namespace

void LocalSessions::create_schema(sqlite::Db& db) {
  db.exec(R"sql(
    CREATE TABLE IF NOT EXISTS sessions (
      id          TEXT PRIMARY KEY,
      language    TEXT NOT NULL,
      scope       TEXT NOT NULL,     -- JSON: "*" or ["ns", ...]
      permissions TEXT NOT NULL,     -- "read" | "read_write"
      created_at  INTEGER NOT NULL,
      expires_at  INTEGER NOT NULL,
      metadata    TEXT               -- compact JSON object, or NULL
    );
    CREATE INDEX IF NOT EXISTS sessions_expires ON sessions(expires_at);
    -- One row per revoked session id, kept until no token of it can still be valid.
    CREATE TABLE IF NOT EXISTS session_revocations (
      id         TEXT PRIMARY KEY,
      revoked_at INTEGER NOT NULL,
      until      INTEGER NOT NULL
    );
  )sql");
}

LocalSessions::LocalSessions(sqlite::Writer& writer, sqlite::ReaderPool& readers) : writer_(writer), readers_(readers) {
  writer_.submit([](sqlite::Db& db) { create_schema(db); });
}

void LocalSessions::create(const SessionRecord& s) {
  const std::string scope = scope_json(s);
  const bool inserted = writer_.submit([&](sqlite::Db& db) {
    {
      sqlite::StmtUse used(db.cached("SELECT 1 FROM session_revocations WHERE id = ?1"));
      used->bind_text(1, s.id);
      if (used->step()) return false;
    }
    sqlite::StmtUse st(db.cached(R"sql(
      INSERT INTO sessions (id, language, scope, permissions, created_at, expires_at, metadata)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING)sql"));
    st->bind_text(1, s.id).bind_text(2, s.language).bind_text(3, scope).bind_text(4, s.permissions);
    st->bind(5, s.created_at).bind(6, s.expires_at);
    st->bind_opt_text(7, s.metadata.empty() ? std::nullopt : std::optional<std::string>(s.metadata));
    st->run();
    return db.changes() == 1;
  });
  if (!inserted)
    throw ApiError(409, "session_exists", "session id '" + s.id + "' is already in use (or was used before)");
}

std::optional<SessionRecord> LocalSessions::get(const std::string& id, int64_t now) {
  auto db = readers_.lease();
  sqlite::StmtUse st(db->cached(R"sql(
    SELECT id, language, scope, permissions, created_at, expires_at, metadata FROM sessions
    WHERE id = ?1 AND expires_at > ?2 AND id NOT IN (SELECT id FROM session_revocations))sql"));
  st->bind_text(1, id).bind(2, now);
  if (!st->step()) return std::nullopt;
  return read_row(*st);
}

std::vector<SessionRecord> LocalSessions::list(int64_t now, const std::string& after, int limit) {
  auto db = readers_.lease();
  sqlite::StmtUse st(db->cached(R"sql(
    SELECT id, language, scope, permissions, created_at, expires_at, metadata FROM sessions
    WHERE id > ?1 AND expires_at > ?2 AND id NOT IN (SELECT id FROM session_revocations)
    ORDER BY id LIMIT ?3)sql"));
  st->bind_text(1, after).bind(2, now).bind(3, int64_t(limit));
  std::vector<SessionRecord> out;
  while (st->step()) out.push_back(read_row(*st));
  return out;
}

bool LocalSessions::revoke(const std::string& id, int64_t now, int64_t until) {
  return writer_.submit([&](sqlite::Db& db) {
    bool live = false;
    int64_t keep_until = until;
    {
      sqlite::StmtUse st(db.cached(R"sql(
        SELECT expires_at FROM sessions
        WHERE id = ?1 AND expires_at > ?2 AND id NOT IN (SELECT id FROM session_revocations))sql"));
      st->bind_text(1, id).bind(2, now);
      if (st->step()) {
        live = true;
        keep_until = std::max(keep_until, st->int64(0));
      }
    }
    sqlite::StmtUse st(db.cached(R"sql(
      INSERT INTO session_revocations (id, revoked_at, until) VALUES (?1, ?2, ?3)
      ON CONFLICT(id) DO UPDATE SET until = max(until, excluded.until))sql"));
    st->bind_text(1, id).bind(2, now).bind(3, keep_until).run();
    return live;
  });
}

std::vector<std::string> LocalSessions::revoked(int64_t now) {
  auto db = readers_.lease();
  sqlite::StmtUse st(db->cached("SELECT id FROM session_revocations WHERE until > ?1"));
  st->bind(1, now);
  std::vector<std::string> out;
  while (st->step()) out.push_back(st->text(0));
  return out;
}

int64_t LocalSessions::sweep(int64_t now) {
  return writer_.submit([&](sqlite::Db& db) {
    // Once a session has expired, every token of it is refused by its own expiry: its row (and a
    // revocation past `until`) protects nothing any more, and its id may be used again.
    sqlite::StmtUse a(db.cached("DELETE FROM sessions WHERE expires_at <= ?1"));
    a->bind(1, now).run();
    int64_t n = db.changes();
    sqlite::StmtUse b(db.cached("DELETE FROM session_revocations WHERE until <= ?1"));
    b->bind(1, now).run();
    return n + db.changes();
  });
}

}  // namespace era
