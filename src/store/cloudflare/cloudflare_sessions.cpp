#include "store/cloudflare/cloudflare_sessions.h"

#include "util/error.h"

namespace era::cf {
namespace {

using nlohmann::json;

constexpr const char* kColumns = "id, language, scope, permissions, created_at, expires_at, metadata";
// Live: not expired and not revoked. ?2 is "now".
constexpr const char* kLive =
    "expires_at > CAST(?2 AS INTEGER) AND id NOT IN (SELECT id FROM \"era:revocations\")";
// The revocations' version stamp: moved by every revoke, read by every revocation check.
constexpr const char* kStamp = "coalesce((SELECT version FROM \"era:stamps\" WHERE name = 'revocations'), 0)";
constexpr std::size_t kMaxExpiries = 4096;

std::string scope_json(const SessionRecord& s) {
  return s.all_namespaces ? json("*").dump() : json(s.namespaces).dump();
}

int64_t as_int(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) return std::stoll(v.get<std::string>());
  throw ApiError(502, "upstream_error", "D1 answered a non-integer where the sessions table holds one");
}

std::string as_text(const json& v) { return v.is_string() ? v.get<std::string>() : ""; }

SessionRecord read_row(const std::vector<json>& row) {
  if (row.size() < 7) throw ApiError(502, "upstream_error", "D1 answered a short sessions row");
  SessionRecord r;
  r.id = as_text(row[0]);
  r.language = as_text(row[1]);
  auto scope = json::parse(as_text(row[2]), nullptr, false);
  if (scope.is_string()) r.all_namespaces = true;
  else if (scope.is_array()) r.namespaces = scope.get<std::vector<std::string>>();
  r.permissions = as_text(row[3]);
  r.created_at = as_int(row[4]);
  r.expires_at = as_int(row[5]);
  r.metadata = as_text(row[6]);
  return r;
}

}  // namespace

void CloudflareSessions::ensure_schema() {
  std::lock_guard<std::mutex> lock(mu_);
  if (schema_ready_) return;
  d1_.batch({{R"sql(CREATE TABLE IF NOT EXISTS "era:sessions" (
                 id TEXT PRIMARY KEY, language TEXT NOT NULL, scope TEXT NOT NULL, permissions TEXT NOT NULL,
                 created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, metadata TEXT))sql",
              {}},
             {R"sql(CREATE INDEX IF NOT EXISTS "era:sessions_expires" ON "era:sessions"(expires_at))sql", {}},
             {R"sql(CREATE TABLE IF NOT EXISTS "era:revocations" (
                 id TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL, until INTEGER NOT NULL))sql",
              {}},
             {R"sql(CREATE TABLE IF NOT EXISTS "era:stamps" (name TEXT PRIMARY KEY, version INTEGER NOT NULL))sql", {}}},
            Retry::idempotent, "D1 sessions schema");
  schema_ready_ = true;
}

void CloudflareSessions::create(const SessionRecord& s) {
  ensure_schema();
  // One statement: inserted only if the id was never used, live, expired or revoked.
  auto res = d1_.run({R"sql(INSERT INTO "era:sessions" (id, language, scope, permissions, created_at, expires_at, metadata)
      SELECT ?1, ?2, ?3, ?4, CAST(?5 AS INTEGER), CAST(?6 AS INTEGER), NULLIF(?7, '')
      WHERE NOT EXISTS (SELECT 1 FROM "era:revocations" WHERE id = ?1)
      ON CONFLICT(id) DO NOTHING)sql",
                      {s.id, s.language, scope_json(s), s.permissions, std::to_string(s.created_at),
                       std::to_string(s.expires_at), s.metadata}},
                     Retry::unsent_only, "D1 session create");
  if (res.empty() || res.back().changes() != 1)
    throw ApiError(409, "session_exists", "session id '" + s.id + "' is already in use (or was used before)");
  expires_at(s.expires_at);
}

void CloudflareSessions::expires_at(int64_t at) {
  std::lock_guard<std::mutex> lock(sweep_mu_);
  expiries_.insert(at);
  if (expiries_.size() > kMaxExpiries) expiries_.erase(std::prev(expiries_.end()));
}

std::optional<SessionRecord> CloudflareSessions::get(const std::string& id, int64_t now) {
  ensure_schema();
  auto res = d1_.run({std::string("SELECT ") + kColumns + " FROM \"era:sessions\" WHERE id = ?1 AND " + kLive,
                      {id, std::to_string(now)}},
                     Retry::idempotent, "D1 session get");
  if (res.empty() || res[0].rows.empty()) return std::nullopt;
  return read_row(res[0].rows[0]);
}

std::vector<SessionRecord> CloudflareSessions::list(int64_t now, const std::string& after, int limit) {
  ensure_schema();
  auto res = d1_.run({std::string("SELECT ") + kColumns + " FROM \"era:sessions\" WHERE id > ?1 AND " + kLive +
                          " ORDER BY id LIMIT CAST(?3 AS INTEGER)",
                      {after, std::to_string(now), std::to_string(limit)}},
                     Retry::idempotent, "D1 session list");
  std::vector<SessionRecord> out;
  if (!res.empty())
    for (const auto& row : res[0].rows) out.push_back(read_row(row));
  return out;
}

bool CloudflareSessions::revoke(const std::string& id, int64_t now, int64_t until) {
  ensure_schema();
  // One transaction: was it live, and record the revocation, kept at least as long as the session.
  auto res = d1_.batch(
      {{std::string("SELECT expires_at FROM \"era:sessions\" WHERE id = ?1 AND ") + kLive, {id, std::to_string(now)}},
       {R"sql(INSERT INTO "era:revocations" (id, revoked_at, until)
          VALUES (?1, CAST(?2 AS INTEGER), max(CAST(?3 AS INTEGER), coalesce((SELECT expires_at FROM "era:sessions"
                  WHERE id = ?1), 0)))
          ON CONFLICT(id) DO UPDATE SET until = max(until, excluded.until))sql",
        {id, std::to_string(now), std::to_string(until)}},
       {R"sql(INSERT INTO "era:stamps" (name, version) VALUES ('revocations', 1)
          ON CONFLICT(name) DO UPDATE SET version = version + 1)sql",
        {}}},
      Retry::idempotent, "D1 session revoke");
  expires_at(until);
  return !res.empty() && !res[0].rows.empty();
}

std::vector<std::string> CloudflareSessions::revoked(int64_t now) {
  ensure_schema();
  auto res = d1_.run({"SELECT id FROM \"era:revocations\" WHERE until > CAST(?1 AS INTEGER)", {std::to_string(now)}},
                     Retry::idempotent, "D1 revocations");
  std::vector<std::string> out;
  if (!res.empty())
    for (const auto& row : res[0].rows)
      if (!row.empty()) out.push_back(as_text(row[0]));
  return out;
}

std::optional<std::vector<std::string>> CloudflareSessions::revoked_if_changed(int64_t now, int64_t& stamp) {
  ensure_schema();
  // One call, one transaction: the stamp, and the set only if the stamp is not the one we hold.
  auto res = d1_.batch({{std::string("SELECT ") + kStamp, {}},
                        {std::string("SELECT id FROM \"era:revocations\" WHERE until > CAST(?1 AS INTEGER) AND ") +
                             kStamp + " <> CAST(?2 AS INTEGER)",
                         {std::to_string(now), std::to_string(stamp)}}},
                       Retry::idempotent, "D1 revocations check");
  // No stamp row at all reads as version 0: a database where nothing was ever revoked.
  const bool has = !res.empty() && !res[0].rows.empty() && !res[0].rows[0].empty() && !res[0].rows[0][0].is_null();
  const int64_t version = has ? as_int(res[0].rows[0][0]) : 0;
  if (version == stamp) return std::nullopt;
  std::vector<std::string> out;
  if (res.size() > 1)
    for (const auto& row : res[1].rows)
      if (!row.empty()) out.push_back(as_text(row[0]));
  stamp = version;
  return out;
}

bool CloudflareSessions::sweep_due(int64_t now) {
  std::lock_guard<std::mutex> lock(sweep_mu_);
  return !expiries_.empty() && *expiries_.begin() <= now && now - last_sweep_ >= kSweepEverySeconds;
}

int64_t CloudflareSessions::sweep(int64_t now) {
  ensure_schema();
  {
    std::lock_guard<std::mutex> lock(sweep_mu_);
    last_sweep_ = now;
    expiries_.erase(expiries_.begin(), expiries_.upper_bound(now));
  }
  auto res = d1_.batch({{"DELETE FROM \"era:sessions\" WHERE expires_at <= CAST(?1 AS INTEGER)", {std::to_string(now)}},
                        {"DELETE FROM \"era:revocations\" WHERE until <= CAST(?1 AS INTEGER)", {std::to_string(now)}}},
                       Retry::idempotent, "D1 session sweep");
  int64_t n = 0;
  for (const auto& r : res) n += r.changes();
  return n;
}

}  // namespace era::cf
