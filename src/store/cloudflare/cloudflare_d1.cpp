#include "store/cloudflare/cloudflare_d1.h"

#include <sqlite3.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include "ns/sql_tokenizer.h"
#include "util/error.h"

namespace era::cf {
namespace {

using nlohmann::json;

constexpr const char* kObjects = "\"era:d1_objects\"";

// Thrown by a plan on a cached registry that meets DDL: plan again on a registry read just now.
struct Replan {};

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtCloser {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtCloser>;

// The registry as the statements of this call see it: the cached registry plus what earlier statements
// of the same call create or drop (applied to the shadow only until the call is sent).
class Overlay : public sql::ObjectOwners {
 public:
  explicit Overlay(const sql::ObjectRegistry& base) : base_(base) {}
  std::optional<std::string> owner_of(std::string_view physical) const override {
    const std::string k = sql::ascii_lower(physical);
    if (auto it = added_.find(k); it != added_.end()) return it->second.ns;
    if (removed_.count(k)) return std::nullopt;
    return base_.owner_of(physical);
  }
  std::vector<std::string> owned_by(std::string_view ns) const override {
    std::vector<std::string> out;
    for (const auto& o : objects_of(ns)) out.push_back(o.physical);
    return out;
  }
  std::vector<sql::SchemaObject> objects_of(std::string_view ns) const {
    std::vector<sql::SchemaObject> out;
    for (auto& o : base_.objects_of(ns)) {
      const std::string k = sql::ascii_lower(o.physical);
      if (!removed_.count(k) && !added_.count(k)) out.push_back(std::move(o));
    }
    for (const auto& [_, o] : added_)
      if (o.ns == ns) out.push_back(o);
    return out;
  }
  void add(const sql::SchemaObject& o) { added_[sql::ascii_lower(o.physical)] = o; }
  void remove(const std::string& physical) {
    const std::string k = sql::ascii_lower(physical);
    added_.erase(k);
    removed_.insert(k);
  }

 private:
  const sql::ObjectRegistry& base_;
  std::map<std::string, sql::SchemaObject> added_;
  std::set<std::string> removed_;
};

// Runs SQL on the shadow without the guard (our own bookkeeping).
void shadow_exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "?";
    sqlite3_free(err);
    throw ApiError(500, "internal_error", "shadow schema: " + m);
  }
}

// The statement's text with every parameter replaced: numbers and NULL become literals, strings ?K,
// BLOBs unhex(?K). Returns the text; `out` receives the string parameters in ?K order.
std::string bind_into(std::string_view text, sqlite3_stmt* stmt, const std::vector<SqlValue>& params,
                      std::vector<std::string>& out) {
  std::string sql;
  std::map<int, int> renumbered;  // original index -> ?K
  int highest = 0;
  size_t at = 0;
  for (const auto& t : sql::tokenize(text)) {
    if (t.kind != sql::Tok::Param) continue;
    int idx = 0;
    if (t.text == "?") idx = highest + 1;
    else idx = sqlite3_bind_parameter_index(stmt, std::string(t.text).c_str());
    if (idx <= 0 || static_cast<size_t>(idx) > params.size())
      throw bad_request("param_count", "parameter " + std::string(t.text) + " has no value");
    highest = std::max(highest, idx);
    sql.append(text.substr(at, t.offset - at));
    at = t.offset + t.text.size();
    const SqlValue& v = params[static_cast<size_t>(idx - 1)];
    auto slot = [&](std::string s) {
      auto [it, fresh] = renumbered.emplace(idx, static_cast<int>(out.size()) + 1);
      if (fresh) out.push_back(std::move(s));
      return "?" + std::to_string(it->second);
    };
    if (std::holds_alternative<std::nullptr_t>(v)) {
      sql += "NULL";
    } else if (auto n = std::get_if<int64_t>(&v)) {
      sql += *n == std::numeric_limits<int64_t>::min() ? "(-9223372036854775807-1)"
                                                        : "(" + std::to_string(*n) + ")";
    } else if (auto d = std::get_if<double>(&v)) {
      if (!std::isfinite(*d)) throw bad_request("invalid_param", "a REAL parameter must be finite");
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", *d);
      std::string lit = buf;
      if (lit.find_first_of(".e") == std::string::npos) lit += ".0";  // stays REAL
      sql += "(" + lit + ")";
    } else if (auto s = std::get_if<std::string>(&v)) {
      sql += slot(*s);
    } else {
      static const char* hex = "0123456789ABCDEF";
      std::string h;
      for (unsigned char c : std::get<SqlBlob>(v).bytes) {
        h.push_back(hex[c >> 4]);
        h.push_back(hex[c & 15]);
      }
      sql += "unhex(" + slot(std::move(h)) + ")";
    }
  }
  sql.append(text.substr(at));
  return sql;
}

SqlValue value_of(const json& v) {
  switch (v.type()) {
    case json::value_t::boolean: return int64_t(v.get<bool>());
    case json::value_t::number_integer: return v.get<int64_t>();
    case json::value_t::number_unsigned:
      return v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()) ? SqlValue(v.get<double>())
                                                                                : SqlValue(int64_t(v.get<uint64_t>()));
    case json::value_t::number_float: return v.get<double>();
    case json::value_t::string: return v.get<std::string>();
    case json::value_t::array: {
      SqlBlob b;
      for (const auto& e : v) b.bytes.push_back(static_cast<char>(e.is_number() ? e.get<int>() : 0));
      return b;
    }
    case json::value_t::null: return nullptr;
    default: return v.dump();
  }
}

SqlResult result_of(D1Result& r) {
  SqlResult out;
  out.columns = std::move(r.columns);
  for (auto& row : r.rows) {
    std::vector<SqlValue> vals;
    for (const auto& v : row) vals.push_back(value_of(v));
    out.rows.push_back(std::move(vals));
  }
  auto num = [&](const char* k) -> double {
    return r.meta.is_object() && r.meta.contains(k) && r.meta[k].is_number() ? r.meta[k].get<double>() : 0;
  };
  out.meta.changes = int64_t(num("changes"));
  out.meta.last_row_id = int64_t(num("last_row_id"));
  out.meta.duration_ms = num("duration");
  out.meta.rows_read = int64_t(num("rows_read"));
  out.meta.rows_written = int64_t(num("rows_written"));
  out.meta.size_after = int64_t(num("size_after"));
  out.meta.changed_db = r.meta.is_object() && r.meta.value("changed_db", false);
  return out;
}

// D1's verdict in local mode's terms, with the user's table names.
ApiError user_error(const ApiError& e, const std::string& ns) {
  std::string m = sql::user_message(e.what(), ns);
  if (e.code() == "constraint_failed") return ApiError(400, "sql_error", m);  // local: a constraint is sql_error
  return ApiError(e.status(), e.code(), m);
}

}  // namespace

struct CloudflareD1::Shadow {
  std::mutex mu;
  std::unique_ptr<sqlite3, DbCloser> db;
  bool stale = true;
};

struct CloudflareD1::Plan {
  std::vector<D1Statement> upstream;
  std::vector<int> unit_of;  // per upstream statement: its unit, or -1 for our registry rows
  bool writes = false;
  bool ddl = false;
};

CloudflareD1::CloudflareD1(D1Client& client, const D1Limits& limits) : d1_(client), limits_(limits) {}
CloudflareD1::~CloudflareD1() = default;

void CloudflareD1::ensure_schema() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (schema_ready_) return;
  }
  d1_.run({std::string("CREATE TABLE IF NOT EXISTS ") + kObjects +
               " (physical TEXT PRIMARY KEY COLLATE NOCASE, ns TEXT NOT NULL, type TEXT NOT NULL)",
           {}},
          Retry::idempotent, "D1 objects schema");
  std::lock_guard<std::mutex> lock(mu_);
  schema_ready_ = true;
}

std::vector<sql::SchemaObject> CloudflareD1::read_registry() {
  ensure_schema();
  auto r = d1_.run({std::string("SELECT physical, ns, type FROM ") + kObjects, {}}, Retry::idempotent, "D1 objects");
  std::vector<sql::SchemaObject> out;
  if (r.empty()) return out;
  for (const auto& row : r[0].rows)
    if (row.size() == 3 && row[0].is_string() && row[1].is_string() && row[2].is_string())
      out.push_back({row[0].get<std::string>(), row[1].get<std::string>(), row[2].get<std::string>()});
  return out;
}

CloudflareD1::Shadow& CloudflareD1::shadow(const std::string& ns) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& s = shadows_[ns];
  if (!s) s = std::make_unique<Shadow>();
  return *s;
}

void CloudflareD1::reload(const std::string& ns) {
  ensure_schema();
  auto r = d1_.batch({{std::string("SELECT physical, ns, type FROM ") + kObjects, {}},
                      {std::string("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name IN (SELECT physical "
                                   "FROM ") +
                           kObjects +
                           " WHERE ns = ?1) ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 "
                           "WHEN 'view' THEN 2 ELSE 3 END, rowid",
                       {ns}}},
                     Retry::idempotent, "D1 schema");
  if (r.size() != 2) throw ApiError(502, "upstream_error", "D1 schema: unexpected answer");
  std::vector<sql::SchemaObject> objects;
  for (const auto& row : r[0].rows)
    if (row.size() == 3 && row[0].is_string() && row[1].is_string() && row[2].is_string())
      objects.push_back({row[0].get<std::string>(), row[1].get<std::string>(), row[2].get<std::string>()});
  registry_.replace_all(objects);
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(":memory:", &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    sqlite3_close_v2(raw);
    throw ApiError(500, "internal_error", "cannot open the shadow schema");
  }
  std::unique_ptr<sqlite3, DbCloser> db(raw);
  sql::harden_connection(raw);
  sqlite3_limit(raw, SQLITE_LIMIT_VARIABLE_NUMBER, limits_.max_params);
  shadow_exec(raw, "PRAGMA foreign_keys=ON");
  for (const auto& row : r[1].rows)
    if (!row.empty() && row[0].is_string()) {
      // An object SQLite here cannot build is left out: statements naming it fail on the shadow, so
      // they are refused, never sent.
      sqlite3_exec(raw, row[0].get<std::string>().c_str(), nullptr, nullptr, nullptr);
    }
  Shadow& s = shadow(ns);
  std::lock_guard<std::mutex> lock(s.mu);
  s.db = std::move(db);
  s.stale = false;
}

sql::Rewritten CloudflareD1::rewrite(const std::string& ns, const SqlStatement& st) const {
  if (st.sql.size() > limits_.max_sql_bytes)
    throw bad_request("sql_too_long", "SQL is " + std::to_string(st.sql.size()) + " bytes; the limit is " +
                                          std::to_string(limits_.max_sql_bytes));
  if (st.params.size() > static_cast<size_t>(limits_.max_params))
    throw bad_request("too_many_params", std::to_string(st.params.size()) + " parameters; a statement takes at most " +
                                             std::to_string(limits_.max_params));
  sql::Rewritten rw = sql::rewrite(st.sql, ns, [&] { return registry_.owned_by(ns); });
  if (rw.statements == 0) throw bad_request("empty_sql", "the SQL holds no statement");
  return rw;
}

CloudflareD1::Plan CloudflareD1::plan(const std::string& ns, const std::vector<Unit>& units, bool fresh) {
  Shadow& s = shadow(ns);
  std::unique_lock<std::mutex> lock(s.mu);
  if (s.stale || !s.db) {
    lock.unlock();
    reload(ns);
    lock.lock();
  }
  sqlite3* h = s.db.get();
  Plan p;
  Overlay overlay(registry_);
  shadow_exec(h, "SAVEPOINT plan");
  struct Rollback {
    sqlite3* h;
    ~Rollback() { sqlite3_exec(h, "ROLLBACK TO plan; RELEASE plan", nullptr, nullptr, nullptr); }
  } rollback{h};
  for (size_t u = 0; u < units.size(); ++u) {
    const auto& rw = units[u].rw;
    const SqlStatement& st = *units[u].st;
    const char* at = rw.sql.data();
    const char* end = at + rw.sql.size();
    while (at < end) {
      bool schema = false;
      {
        // Installed for the statement's whole life, as in local mode: a re-prepare is checked too.
        sql::Guard guard(h, ns, overlay, rw.reads_schema);
        guard.begin_statement();
        sqlite3_stmt* raw = nullptr;
        const char* tail = nullptr;
        const int rc = sqlite3_prepare_v3(h, at, static_cast<int>(end - at), 0, &raw, &tail);
        StmtPtr stmt(raw);
        if (guard.denial()) throw *guard.denial();
        if (rc != SQLITE_OK) throw ApiError(400, "sql_error", sql::user_message(sqlite3_errmsg(h), ns));
        const std::string_view text(at, static_cast<size_t>(tail - at));
        at = tail;
        if (!stmt) continue;
        sql::check_statement_text(text);
        const bool readonly = sqlite3_stmt_readonly(stmt.get());
        if (st.read_only && !readonly)
          throw ApiError(403, "read_only_token", "this session's token is read-only: the statement would write");
        const int wanted = sqlite3_bind_parameter_count(stmt.get());
        if (static_cast<size_t>(wanted) != st.params.size())
          throw bad_request("param_count", "the statement has " + std::to_string(wanted) + " parameter(s) but " +
                                               std::to_string(st.params.size()) + " value(s) were given");
        D1Statement out;
        out.sql = bind_into(text, stmt.get(), st.params, out.params);
        p.upstream.push_back(std::move(out));
        p.unit_of.push_back(static_cast<int>(u));
        p.writes = p.writes || !readonly;
        schema = guard.changes_schema();
        if (schema) {
          if (!fresh) throw Replan{};  // decide DDL on a registry read just now
          p.ddl = true;
          // Learn what it creates or drops by running it on the shadow (no rows: DDL only).
          if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
            if (guard.denial()) throw *guard.denial();
            throw ApiError(400, "sql_error", sql::user_message(sqlite3_errmsg(h), ns));
          }
        }
      }
      if (!schema) continue;
      const auto known = overlay.objects_of(ns);
      const sql::SchemaDiff diff = sql::diff_schema(h, ns, overlay, known);
      for (const auto& o : diff.added) {
        overlay.add(o);
        // A plain INSERT: a name another replica claimed meanwhile fails the whole batch.
        p.upstream.push_back({std::string("INSERT INTO ") + kObjects + " (physical, ns, type) VALUES (?1, ?2, ?3)",
                              {o.physical, o.ns, o.type}});
        p.unit_of.push_back(-1);
      }
      for (const auto& name : diff.removed) {
        overlay.remove(name);
        p.upstream.push_back({std::string("DELETE FROM ") + kObjects + " WHERE physical = ?1", {name}});
        p.unit_of.push_back(-1);
      }
      sql::check_dependents(h, ns, overlay, overlay.objects_of(ns));
    }
  }
  return p;
}

std::vector<SqlResult> CloudflareD1::run(const std::string& ns, const std::vector<Unit>& units, bool one_per_unit) {
  std::lock_guard<std::mutex> serial(run_mu_);
  Plan p;
  try {
    p = plan(ns, units, false);
  } catch (const Replan&) {
    // DDL (decided on a registry read just now), or a statement the cached shadow refused: another
    // replica may have changed the schema. Plan once more on a fresh copy; that verdict stands.
    reload(ns);
    p = plan(ns, units, true);
  } catch (const ApiError& e) {
    if (e.status() >= 500) throw;
    reload(ns);
    p = plan(ns, units, true);
  }
  std::vector<D1Result> got;
  try {
    // Reads may be repeated; a write is retried only when it certainly was not sent.
    const Retry retry = p.writes ? Retry::unsent_only : Retry::idempotent;
    got = p.upstream.size() == 1 ? d1_.run(p.upstream[0], retry, "D1 query")
                                 : d1_.batch(p.upstream, retry, "D1 batch");
  } catch (const ApiError& e) {
    if (p.ddl) {
      Shadow& s = shadow(ns);
      std::lock_guard<std::mutex> lock(s.mu);
      s.stale = true;
    }
    throw user_error(e, ns);
  }
  if (p.ddl) {
    Shadow& s = shadow(ns);
    std::lock_guard<std::mutex> lock(s.mu);
    s.stale = true;
  }
  if (got.size() != p.upstream.size())
    throw ApiError(502, "upstream_error", "D1 answered " + std::to_string(got.size()) + " results for " +
                                               std::to_string(p.upstream.size()) + " statements");
  std::vector<SqlResult> out;
  if (one_per_unit) out.resize(units.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (p.unit_of[i] < 0) continue;
    SqlResult r = result_of(got[i]);
    if (one_per_unit) out[static_cast<size_t>(p.unit_of[i])] = std::move(r);
    else out.push_back(std::move(r));
  }
  return out;
}

void CloudflareD1::load(const std::string& ns) {
  bool stale;
  {
    Shadow& s = shadow(ns);
    std::lock_guard<std::mutex> lock(s.mu);
    stale = s.stale || !s.db;
  }
  if (stale) reload(ns);
}

SqlResult CloudflareD1::query(const std::string& ns, const SqlStatement& st) {
  load(ns);
  Unit u{rewrite(ns, st), &st};
  if (u.rw.statements != 1)
    throw bad_request("multiple_statements", "query runs exactly one statement; use exec for several");
  auto out = run(ns, {u}, true);
  return out.empty() ? SqlResult{} : std::move(out.front());
}

SqlResult CloudflareD1::exec(const std::string& ns, const SqlStatement& st, int& statements) {
  load(ns);
  Unit u{rewrite(ns, st), &st};
  if (u.rw.statements > 1 && !st.params.empty())
    throw bad_request("params_with_multiple_statements",
                      "params apply to a single statement; this SQL holds " + std::to_string(u.rw.statements) +
                          " (send them one by one, or use batch)");
  auto results = run(ns, {u}, false);
  statements = static_cast<int>(results.size());
  SqlResult sum;
  sum.meta = summed_meta(results);
  return sum;
}

std::vector<SqlResult> CloudflareD1::batch(const std::string& ns, const std::vector<SqlStatement>& statements) {
  load(ns);
  std::vector<Unit> units;
  for (size_t i = 0; i < statements.size(); ++i) {
    try {
      units.push_back({rewrite(ns, statements[i]), &statements[i]});
    } catch (const ApiError& e) {
      throw ApiError(e.status(), e.code(), "statement " + std::to_string(i) + ": " + e.what());
    }
    if (units.back().rw.statements != 1)
      throw bad_request("multiple_statements", "statement " + std::to_string(i) + " holds " +
                                                   std::to_string(units.back().rw.statements) +
                                                   " statements; each batch entry is exactly one");
  }
  return run(ns, units, true);
}

std::vector<SqlTable> CloudflareD1::tables(const std::string& ns) {
  std::vector<SqlTable> out;
  const std::string prefix = ns + "_";
  for (const auto& o : read_registry())
    if (o.ns == ns && o.type == "table") out.push_back({o.physical.substr(prefix.size()), std::nullopt});
  std::sort(out.begin(), out.end(), [](const SqlTable& a, const SqlTable& b) { return a.name < b.name; });
  return out;
}

std::vector<std::pair<std::string, std::string>> CloudflareD1::all_tables() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& o : read_registry())
    if (o.type == "table") out.emplace_back(o.ns, o.physical.substr(o.ns.size() + 1));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> CloudflareD1::namespaces() {
  std::set<std::string> out;
  for (const auto& o : read_registry())
    if (o.type == "table") out.insert(o.ns);
  return {out.begin(), out.end()};
}

}  // namespace era::cf
