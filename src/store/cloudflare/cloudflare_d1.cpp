#include "store/cloudflare/cloudflare_d1.h"

#include <sqlite3.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include "ns/sql_tokenizer.h"
#include "store/sql/guarded_sql.h"
#include "store/sql/sqlite.h"
#include "util/error.h"

namespace era::cf {
namespace {

using nlohmann::json;
using sqlfront::kObjectsTable;

constexpr size_t kD1MaxStatementBytes = 100000;  // D1: a statement's SQL text, as D1 receives it
constexpr size_t kD1MaxValueBytes = 2000000;     // D1: a string, BLOB or row

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
    // D1 refuses a value over 2,000,000 bytes; checked on what is sent (a BLOB goes as hex: twice its size).
    const SqlValue& pv = params[static_cast<size_t>(idx - 1)];
    if (auto s = std::get_if<std::string>(&pv); s && s->size() > kD1MaxValueBytes)
      throw ApiError(413, "value_too_large", "parameter " + std::to_string(idx) + " is " + std::to_string(s->size()) +
                                                 " bytes; D1 takes a string of at most " +
                                                 std::to_string(kD1MaxValueBytes) + " bytes");
    if (auto b = std::get_if<SqlBlob>(&pv); b && 2 * b->bytes.size() > kD1MaxValueBytes)
      throw ApiError(413, "value_too_large",
                     "parameter " + std::to_string(idx) + " is a BLOB of " + std::to_string(b->bytes.size()) +
                         " bytes; with the cloudflare backend a BLOB travels to D1 as hex text (two bytes per byte) "
                         "within D1's " + std::to_string(kD1MaxValueBytes) + "-byte value limit, so it may be at most " +
                         std::to_string(kD1MaxValueBytes / 2) + " bytes");
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
  return e.with_message(m);  // keeps what the error means (a throttle's Retry-After)
}

}  // namespace

// The namespace's schema in memory (no rows): statements are prepared and guarded on it, DDL is run on
// it to learn what it creates or drops. Rebuilt from D1 when stale.
struct CloudflareD1::Shadow {
  std::mutex mu;  // one plan of this namespace at a time; held only while planning, never while sending
  std::unique_ptr<sqlite::Db> db;
  bool stale = true;
  uint64_t generation = 0;  // bumped by mark_stale: a reload that read before it stays stale
  uint64_t reads = 0;       // reloads begun (each takes the next number)
  uint64_t installed = 0;   // the number of the reload whose read the shadow and registry hold
};

struct CloudflareD1::Plan {
  std::vector<D1Statement> upstream;
  std::vector<int> unit_of;     // per upstream statement: its unit, or -1 for our registry rows
  std::vector<bool> inserts;    // per upstream statement: an INSERT or REPLACE (last_row_id is its own)
  bool writes = false;
  bool ddl = false;
};

// Plans each guarded statement: its parameters inlined (numbers) or renumbered (strings, BLOBs), queued
// for sending; DDL also run on the shadow so the front can see what it changed.
class CloudflareD1::Planner : public sqlfront::Executor {
 public:
  Planner(sqlite3* shadow, const std::string& ns, bool fresh, Plan& plan)
      : h_(shadow), ns_(ns), fresh_(fresh), p_(plan) {}
  sqlite3* schema() override { return h_; }
  bool run(size_t unit, std::string_view text, sqlite3_stmt* stmt, const SqlStatement& st,
           bool changes_schema) override {
    // DDL is decided on a registry read just now: on a cached one, stop and plan again.
    if (changes_schema && !fresh_) return false;
    const bool readonly = sqlite3_stmt_readonly(stmt);
    D1Statement out;
    out.sql = bind_into(text, stmt, st.params, out.params);
    if (out.sql.size() > kD1MaxStatementBytes)
      throw ApiError(413, "statement_too_large",
                     "statement " + std::to_string(unit + 1) + " is " + std::to_string(out.sql.size()) +
                         " bytes as sent to D1 (table names prefixed with the namespace, numbers written as "
                         "literals); D1 takes at most " + std::to_string(kD1MaxStatementBytes) + " bytes");
    p_.upstream.push_back(std::move(out));
    p_.unit_of.push_back(static_cast<int>(unit));
    p_.inserts.push_back(!readonly && sqlfront::inserts_rows(text));
    p_.writes = p_.writes || !readonly;
    if (changes_schema) {
      p_.ddl = true;
      if (sqlite3_step(stmt) != SQLITE_DONE) throw sqlfront::sql_error(h_, ns_);  // no rows: DDL only
    }
    return true;
  }

 private:
  sqlite3* h_;
  const std::string& ns_;
  bool fresh_;
  Plan& p_;
};

CloudflareD1::CloudflareD1(D1Client& client, const D1Limits& limits) : GuardedSqlStore(limits), d1_(client) {}
CloudflareD1::~CloudflareD1() = default;

void CloudflareD1::ensure_schema() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (schema_ready_) return;
  }
  d1_.run({std::string("CREATE TABLE IF NOT EXISTS ") + kObjectsTable +
               " (physical TEXT PRIMARY KEY COLLATE NOCASE, ns TEXT NOT NULL, type TEXT NOT NULL)",
           {}},
          Retry::idempotent, "D1 objects schema");
  std::lock_guard<std::mutex> lock(mu_);
  schema_ready_ = true;
}

std::vector<sql::SchemaObject> CloudflareD1::read_registry() {
  ensure_schema();
  auto r = d1_.run({std::string("SELECT physical, ns, type FROM ") + kObjectsTable, {}}, Retry::idempotent, "D1 objects");
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
  uint64_t generation, number;
  {
    Shadow& s = shadow(ns);
    std::lock_guard<std::mutex> lock(s.mu);
    generation = s.generation;
    number = ++s.reads;
  }
  auto r = d1_.batch({{std::string("SELECT physical, ns, type FROM ") + kObjectsTable, {}},
                      {std::string("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name IN (SELECT physical "
                                   "FROM ") +
                           kObjectsTable +
                           " WHERE ns = ?1) ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 "
                           "WHEN 'view' THEN 2 ELSE 3 END, rowid",
                       {ns}}},
                     Retry::idempotent, "D1 schema");
  if (r.size() != 2) throw ApiError(502, "upstream_error", "D1 schema: unexpected answer");
  std::vector<sql::SchemaObject> objects;
  for (const auto& row : r[0].rows)
    if (row.size() == 3 && row[0].is_string() && row[1].is_string() && row[2].is_string())
      objects.push_back({row[0].get<std::string>(), row[1].get<std::string>(), row[2].get<std::string>()});
  auto db = std::make_unique<sqlite::Db>(":memory:");
  sqlfront::configure_connection(db->handle(), limits_);
  for (const auto& row : r[1].rows)
    if (!row.empty() && row[0].is_string()) {
      // An object SQLite here cannot build is left out: statements naming it fail on the shadow, so
      // they are refused, never sent.
      sqlite3_exec(db->handle(), row[0].get<std::string>().c_str(), nullptr, nullptr, nullptr);
    }
  // The planner diffs the shadow against ns's registry entries: both must come from the same read,
  // installed together (no plan of ns runs in between: it holds s.mu), and never over a read begun
  // later (two reloads of one namespace can finish in either order).
  std::lock_guard<std::mutex> one_at_a_time(registry_mu_);
  // Which other namespaces hold a current shadow, before this one's lock (never two shadow locks at
  // once). Only an install makes a shadow current, and installs wait for registry_mu_; one that goes
  // stale meanwhile keeps its own entries, which is as right: it reloads before it plans.
  const std::set<std::string> keep = current_shadows(ns);
  Shadow& s = shadow(ns);
  std::lock_guard<std::mutex> lock(s.mu);
  if (number < s.installed) return;
  install_registry(objects, keep);
  s.db = std::move(db);
  s.installed = number;
  // DDL that finished while this read was out may be missing from it: then it stays stale.
  s.stale = s.generation != generation;
}

// The ownership registry is shared by every namespace's shadow, and the planner diffs a namespace's
// shadow against it after DDL: a namespace's entries must come from the same read as its shadow. So a
// reload takes the read's entries for its own namespace and for namespaces with no current shadow,
// and keeps, for every other namespace with a current shadow, the entries that shadow's own load
// installed (a read older than that load, finishing late, would otherwise make the planner see that
// namespace's newer objects as created by this call and claim them again).
std::set<std::string> CloudflareD1::current_shadows(const std::string& except) {
  std::vector<Shadow*> others;
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, sh] : shadows_)
      if (name != except) {
        others.push_back(sh.get());
        names.push_back(name);
      }
  }
  std::set<std::string> current;
  for (size_t i = 0; i < others.size(); ++i) {
    std::lock_guard<std::mutex> lock(others[i]->mu);
    if (!others[i]->stale && others[i]->db) current.insert(names[i]);
  }
  return current;
}

void CloudflareD1::install_registry(const std::vector<sql::SchemaObject>& read, const std::set<std::string>& keep) {
  std::vector<sql::SchemaObject> merged;
  for (const auto& o : read)
    if (!keep.count(o.ns)) merged.push_back(o);
  for (const auto& name : keep)
    for (auto& o : registry_.objects_of(name)) merged.push_back(std::move(o));
  registry_.replace_all(merged);
}

std::optional<CloudflareD1::Plan> CloudflareD1::plan(const std::string& ns, const std::vector<sqlfront::Unit>& units,
                                                     bool fresh, const sqlfront::Deadline& deadline) {
  Shadow& s = shadow(ns);
  std::unique_lock<std::mutex> lock(s.mu);
  while (s.stale || !s.db) {
    lock.unlock();
    reload(ns);
    lock.lock();
  }
  sqlite::Db& db = *s.db;
  Plan p;
  sqlfront::Overlay overlay(registry_);
  // Whatever the plan runs on the shadow (DDL) is undone: the shadow changes only by a reload.
  db.exec("SAVEPOINT plan");
  struct Rollback {
    sqlite::Db& db;
    ~Rollback() { sqlite3_exec(db.handle(), "ROLLBACK TO plan; RELEASE plan", nullptr, nullptr, nullptr); }
  } rollback{db};
  Planner planner(db.handle(), ns, fresh, p);
  if (sqlfront::run_guarded(ns, units, planner, overlay, deadline) == sqlfront::Outcome::elsewhere) return std::nullopt;
  // The registry rows travel in the same D1 batch as the DDL, so they commit (or fail) together. A
  // plain INSERT: a name another replica claimed meanwhile fails the whole batch.
  for (const auto& o : overlay.added()) {
    p.upstream.push_back({std::string("INSERT INTO ") + kObjectsTable + " (physical, ns, type) VALUES (?1, ?2, ?3)",
                          {o.physical, o.ns, o.type}});
    p.unit_of.push_back(-1);
    p.inserts.push_back(false);
  }
  for (const auto& o : overlay.removed()) {
    p.upstream.push_back({std::string("DELETE FROM ") + kObjectsTable + " WHERE physical = ?1", {o.physical}});
    p.unit_of.push_back(-1);
    p.inserts.push_back(false);
  }
  return p;
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

void CloudflareD1::mark_stale(const std::string& ns) {
  Shadow& s = shadow(ns);
  std::lock_guard<std::mutex> lock(s.mu);
  s.stale = true;
  ++s.generation;
}

std::vector<SqlResult> CloudflareD1::run(const std::string& ns, const std::vector<sqlfront::Unit>& units,
                                         bool one_per_unit, const sqlfront::Deadline& deadline) {
  std::optional<Plan> p;
  try {
    p = plan(ns, units, false, deadline);
  } catch (const ApiError& e) {
    // A statement the cached shadow refused: another replica may have changed the schema. Refused
    // again on a copy read just now, the verdict stands.
    // A size limit is the statement's own, whatever the schema: refused without another read.
    if (e.status() >= 500 || e.status() == 408 || e.status() == 413) throw;
    reload(ns);
  }
  if (!p) p = plan(ns, units, true, deadline);  // DDL, or a refusal above: on a schema read just now
  if (!p) throw ApiError(500, "internal_error", "a plan on a fresh schema asked to be planned again");
  if (deadline.passed()) throw deadline.timeout();
  std::vector<D1Result> got;
  try {
    // Reads may be repeated; a write is retried only when it certainly was not sent.
    const Retry retry = p->writes ? Retry::unsent_only : Retry::idempotent;
    got = p->upstream.size() == 1 ? d1_.run(p->upstream[0], retry, "D1 query")
                                  : d1_.batch(p->upstream, retry, "D1 batch");
  } catch (const ApiError& e) {
    if (p->ddl) mark_stale(ns);
    throw user_error(e, ns);
  }
  if (p->ddl) mark_stale(ns);
  if (got.size() != p->upstream.size())
    throw ApiError(502, "upstream_error", "D1 answered " + std::to_string(got.size()) + " results for " +
                                               std::to_string(p->upstream.size()) + " statements");
  std::vector<SqlResult> out;
  if (one_per_unit) out.resize(units.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (p->unit_of[i] < 0) continue;
    SqlResult r = result_of(got[i]);
    // D1's last_row_id is its connection's, which every namespace shares: only an INSERT that
    // inserted reports it, anything else 0 (as local mode does).
    if (!p->inserts[i] || r.meta.changes == 0) r.meta.last_row_id = 0;
    if (one_per_unit) out[static_cast<size_t>(p->unit_of[i])] = std::move(r);
    else out.push_back(std::move(r));
  }
  return out;
}

const sql::ObjectOwners& CloudflareD1::owners_for(const std::string& ns) {
  load(ns);
  return registry_;
}

std::vector<SqlResult> CloudflareD1::execute(sqlfront::CallKind kind, const std::string& ns,
                                             const std::vector<sqlfront::Unit>& units,
                                             const sqlfront::Deadline& deadline) {
  return run(ns, units, kind != sqlfront::CallKind::exec, deadline);
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
