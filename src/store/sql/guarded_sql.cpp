#include "store/sql/guarded_sql.h"

#include "ns/sql_tokenizer.h"
#include "util/sqlite_handle.h"
#include "util/error.h"

namespace era::sqlfront {
namespace {

constexpr int kMaxValueBytes = 2000000;  // D1: a string, BLOB or row is at most 2,000,000 bytes

sql::Rewritten rewrite_one(const std::string& ns, const SqlStatement& st, const D1Limits& limits,
                           const sql::ObjectOwners& owners, RewriteCache* rewrites) {
  if (st.sql.size() > limits.max_sql_bytes)
    throw bad_request("sql_too_long", "SQL is " + std::to_string(st.sql.size()) + " bytes; the limit is " +
                                          std::to_string(limits.max_sql_bytes));
  // SQLite reads SQL text only up to a NUL: whatever follows one would be silently dropped (or, in
  // a statement loop, never consumed). SQL text never needs one; a string value goes in a parameter.
  if (const auto nul = st.sql.find('\0'); nul != std::string::npos)
    throw bad_request("nul_in_sql", "SQL must not contain a NUL byte (found at offset " + std::to_string(nul) +
                                        "); pass binary values as parameters");
  if (st.params.size() > static_cast<size_t>(limits.max_params))
    throw bad_request("too_many_params", std::to_string(st.params.size()) + " parameters; a statement takes at most " +
                                             std::to_string(limits.max_params));
  const sql::OwnedObjects owned = [&] { return owners.owned_by(ns); };
  sql::Rewritten rw = rewrites ? rewrites->rewrite(st.sql, ns, owned) : sql::rewrite(st.sql, ns, owned);
  if (rw.statements == 0) throw bad_request("empty_sql", "the SQL holds no statement");
  return rw;
}

ApiError too_many_statements(size_t n, const D1Limits& limits) {
  return bad_request("too_many_statements", std::to_string(n) + " statements in one call; the limit is " +
                                                std::to_string(limits.max_statements) + " (D1's own)");
}

}  // namespace

std::vector<Unit> check_and_rewrite(CallKind kind, const std::string& ns, const std::vector<const SqlStatement*>& sts,
                                    const D1Limits& limits, const sql::ObjectOwners& owners,
                                    RewriteCache* rewrites) {
  if (sts.size() > static_cast<size_t>(limits.max_statements)) throw too_many_statements(sts.size(), limits);
  std::vector<Unit> units;
  units.reserve(sts.size());
  for (size_t i = 0; i < sts.size(); ++i) {
    if (kind != CallKind::batch) {
      units.push_back({rewrite_one(ns, *sts[i], limits, owners, rewrites), sts[i]});
      continue;
    }
    try {
      units.push_back({rewrite_one(ns, *sts[i], limits, owners, rewrites), sts[i], static_cast<int>(i)});
    } catch (const ApiError& e) {
      throw e.with_message("statement " + std::to_string(i) + ": " + e.what());
    }
    if (units.back().rw.statements != 1)
      throw bad_request("multiple_statements", "statement " + std::to_string(i) + " holds " +
                                                   std::to_string(units.back().rw.statements) +
                                                   " statements; each batch entry is exactly one");
  }
  if (kind == CallKind::query && units.front().rw.statements != 1)
    throw bad_request("multiple_statements", "query runs exactly one statement; use exec for several");
  if (kind == CallKind::exec) {
    const Unit& u = units.front();
    if (u.rw.statements > 1 && !u.st->params.empty())
      throw bad_request("params_with_multiple_statements",
                        "params apply to a single statement; this SQL holds " + std::to_string(u.rw.statements) +
                            " (send them one by one, or use batch)");
    if (u.rw.statements > limits.max_statements) throw too_many_statements(size_t(u.rw.statements), limits);
  }
  return units;
}

sql::Rewritten RewriteCache::rewrite(const std::string& sql, const std::string& ns, const sql::OwnedObjects& owned) {
  if (capacity_ == 0 || sql.size() > kMaxText) return sql::rewrite(sql, ns, owned);
  // A namespace never holds a NUL byte, so the key is unambiguous.
  std::string key;
  key.reserve(ns.size() + 1 + sql.size());
  key.append(ns).append(1, '\0').append(sql);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.second);
      return it->second.first;
    }
  }
  sql::Rewritten rw = sql::rewrite(sql, ns, owned);
  if (rw.reads_schema) return rw;  // lists the owners of this moment: never kept
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.count(key)) return rw;  // another thread kept it meanwhile
  lru_.push_front(key);
  entries_.emplace(std::move(key), std::make_pair(rw, lru_.begin()));
  while (entries_.size() > capacity_) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  return rw;
}

size_t RewriteCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

ApiError Deadline::timeout() const {
  return ApiError(408, "request_timeout",
                  "the call ran longer than " + std::to_string(ms_) + " ms and was stopped; nothing was applied");
}

std::optional<std::string> Overlay::owner_of(std::string_view physical) const {
  const std::string k = sql::ascii_lower(physical);
  if (auto it = added_.find(k); it != added_.end()) return it->second.ns;
  if (removed_.count(k)) return std::nullopt;
  return base_.owner_of(physical);
}

std::vector<std::string> Overlay::owned_by(std::string_view ns) const {
  std::vector<std::string> out;
  for (const auto& o : objects_of(ns)) out.push_back(o.physical);
  return out;
}

std::vector<sql::SchemaObject> Overlay::objects_of(std::string_view ns) const {
  std::vector<sql::SchemaObject> out;
  for (auto& o : base_.objects_of(ns)) {
    const std::string k = sql::ascii_lower(o.physical);
    if (!removed_.count(k) && !added_.count(k)) out.push_back(std::move(o));
  }
  for (const auto& [_, o] : added_)
    if (o.ns == ns) out.push_back(o);
  return out;
}

void Overlay::add(const sql::SchemaObject& o) { added_[sql::ascii_lower(o.physical)] = o; }

void Overlay::remove(const std::string& physical) {
  const std::string k = sql::ascii_lower(physical);
  added_.erase(k);
  removed_.insert(k);
}

std::vector<sql::SchemaObject> Overlay::added() const {
  std::vector<sql::SchemaObject> out;
  for (const auto& [_, o] : added_) out.push_back(o);
  return out;
}

std::vector<sql::SchemaObject> Overlay::removed() const {
  std::vector<sql::SchemaObject> out;
  for (const auto& o : base_.all())
    if (removed_.count(sql::ascii_lower(o.physical)) && !added_.count(sql::ascii_lower(o.physical))) out.push_back(o);
  return out;
}

sqlite3_stmt* StatementCache::acquire(const std::string& text, std::string_view ns, uint64_t version, size_t& length) {
  auto it = entries_.find(text);
  if (it == entries_.end() || it->second.in_use) return nullptr;
  Entry& e = it->second;
  if (e.ns != ns || e.version != version) {
    entries_.erase(it);
    return nullptr;
  }
  e.in_use = true;
  e.used = ++tick_;
  length = e.length;
  return e.stmt.get();
}

void StatementCache::release(const std::string& text, bool keep) {
  auto it = entries_.find(text);
  if (it == entries_.end()) return;
  if (!keep) {
    entries_.erase(it);
    return;
  }
  sqlite3_reset(it->second.stmt.get());  // a kept statement never holds a read transaction open
  sqlite3_clear_bindings(it->second.stmt.get());
  it->second.in_use = false;
}

void StatementCache::add(const std::string& text, std::string_view ns, uint64_t version, size_t length,
                         sqlite::StmtPtr stmt) {
  if (capacity_ == 0 || !stmt) return;
  sqlite3_reset(stmt.get());
  sqlite3_clear_bindings(stmt.get());
  if (auto it = entries_.find(text); it != entries_.end()) {
    if (it->second.in_use) return;  // the same text twice in one call: keep the one in use
    entries_.erase(it);
  }
  while (entries_.size() >= capacity_) {
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (!it->second.in_use && (oldest == entries_.end() || it->second.used < oldest->second.used)) oldest = it;
    if (oldest == entries_.end()) return;
    entries_.erase(oldest);
  }
  entries_.emplace(text, Entry{std::move(stmt), std::string(ns), version, length, ++tick_, false});
}

ApiError sql_error(sqlite3* db, const std::string& ns) {
  const int code = sqlite3_extended_errcode(db) & 0xff;
  std::string msg = sql::user_message(sqlite3_errmsg(db), ns);
  if (code == SQLITE_TOOBIG) return ApiError(413, "value_too_large", msg + " (a string, BLOB or row is at most 2000000 bytes)");
  if (code == SQLITE_FULL || code == SQLITE_IOERR || code == SQLITE_CORRUPT) return ApiError(500, "storage_error", msg);
  return ApiError(400, "sql_error", msg);
}

void configure_connection(sqlite3* db, const D1Limits& limits) {
  sql::harden_connection(db);
  sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, limits.max_params);
  sqlite3_limit(db, SQLITE_LIMIT_LENGTH, kMaxValueBytes);
  char* err = nullptr;
  if (sqlite3_exec(db, "PRAGMA foreign_keys=ON", nullptr, nullptr, &err) != SQLITE_OK) {  // D1's default
    std::string m = err ? err : "?";
    sqlite3_free(err);
    throw ApiError(500, "internal_error", "cannot configure a D1 connection: " + m);
  }
}

bool inserts_rows(std::string_view statement_text) {
  // The statement's verb: its first word, or after a WITH clause the first verb outside parentheses
  // (CTE bodies are parenthesized).
  int depth = 0;
  bool with = false;
  for (const auto& t : sql::tokenize(statement_text)) {
    if (sql::is_trivia(t)) continue;
    if (t.kind == sql::Tok::LParen) ++depth;
    if (t.kind == sql::Tok::RParen) --depth;
    if (t.kind != sql::Tok::Ident || depth != 0) continue;
    const bool insert = sql::iequals(t.text, "INSERT") || sql::iequals(t.text, "REPLACE");
    if (!with && sql::iequals(t.text, "WITH")) {
      with = true;
      continue;
    }
    if (!with || insert || sql::iequals(t.text, "SELECT") || sql::iequals(t.text, "UPDATE") ||
        sql::iequals(t.text, "DELETE") || sql::iequals(t.text, "VALUES"))
      return insert;
  }
  return false;
}

namespace {

// Ends the use of a statement taken from a StatementCache: dropped unless kept (an error on the way
// never leaves a statement in the cache).
class Taken {
 public:
  Taken(StatementCache* cache, const std::string& text) : cache_(cache), text_(text) {}
  ~Taken() {
    if (cache_) cache_->release(text_, keep_);
  }
  Taken(const Taken&) = delete;
  Taken& operator=(const Taken&) = delete;
  void keep() { keep_ = true; }

 private:
  StatementCache* cache_;
  const std::string& text_;
  bool keep_ = false;
};

Outcome run_unit(const std::string& ns, const std::vector<Unit>& units, size_t u, Executor& ex, Overlay& overlay,
                 const Deadline& deadline) {
  sqlite3* h = ex.schema();
  {
    const sql::Rewritten& rw = units[u].rw;
    const SqlStatement& st = *units[u].st;
    const char* at = rw.sql.data();
    const char* const end = at + rw.sql.size();
    while (at < end) {
      if (deadline.passed()) throw deadline.timeout();
      bool schema = false;
      {
        // Installed for the statement's whole life: SQLite re-prepares a statement whose schema
        // changed under it, and that re-prepare is checked too.
        sql::Guard guard(h, ns, overlay, rw.reads_schema);
        guard.begin_statement();
        // The rules of reuse: StatementCache's comment. The version is read before the prepare, so a
        // change of ownership during it retires the entry.
        StatementCache* cache = at == rw.sql.data() && rw.statements == 1 && !rw.reads_schema && overlay.empty() &&
                                        rw.sql.size() <= StatementCache::kMaxText
                                    ? ex.statements()
                                    : nullptr;
        const uint64_t version = cache ? overlay.base_version() : 0;
        size_t length = 0;
        sqlite3_stmt* reused = cache ? cache->acquire(rw.sql, ns, version, length) : nullptr;
        Taken taken(reused ? cache : nullptr, rw.sql);
        sqlite::StmtPtr fresh;
        const char* tail = at + length;
        if (!reused) {
          sqlite3_stmt* raw = nullptr;
          const int rc = sqlite3_prepare_v3(h, at, static_cast<int>(end - at), cache ? SQLITE_PREPARE_PERSISTENT : 0,
                                            &raw, &tail);
          fresh.reset(raw);
          if (guard.denial()) throw *guard.denial();
          if (rc != SQLITE_OK) throw sql_error(h, ns);
          // Every pass must consume text: SQLite stops at what it cannot read as SQL (a NUL byte,
          // refused above, is one such thing), and a loop that does not advance would spin for ever.
          if (!tail || tail <= at || tail > end)
            throw bad_request("sql_error", "SQLite could not read the SQL at offset " +
                                               std::to_string(at - rw.sql.data()) + " of the rewritten text");
        }
        sqlite3_stmt* stmt = reused ? reused : fresh.get();
        const std::string_view text(at, static_cast<size_t>(tail - at));
        at = tail;
        if (!stmt) continue;  // only whitespace or comments were left
        if (!reused) sql::check_statement_text(text);
        if (st.read_only && !sqlite3_stmt_readonly(stmt))
          throw ApiError(403, "read_only_token", "this session's token is read-only: the statement would write");
        const int wanted = sqlite3_bind_parameter_count(stmt);
        if (static_cast<size_t>(wanted) != st.params.size())
          throw bad_request("param_count", "the statement has " + std::to_string(wanted) + " parameter(s) but " +
                                               std::to_string(st.params.size()) + " value(s) were given");
        schema = guard.changes_schema();
        try {
          if (!ex.run(u, text, stmt, st, schema)) return Outcome::elsewhere;
        } catch (const ApiError&) {
          // A denial during a re-prepare while stepping says more than SQLite's "not authorized".
          if (guard.denial()) throw *guard.denial();
          throw;
        }
        if (guard.denial()) throw *guard.denial();
        if (reused) taken.keep();
        else if (cache && !schema && !guard.changes_schema())
          cache->add(rw.sql, ns, version, text.size(), std::move(fresh));
      }
      if (!schema) continue;
      const auto known = overlay.objects_of(ns);
      const sql::SchemaDiff diff = sql::diff_schema(h, ns, overlay, known);
      for (const auto& o : diff.added) overlay.add(o);
      for (const auto& name : diff.removed) overlay.remove(name);
      // Views and triggers must still compile inside the namespace: a DROP or RENAME that breaks one
      // is refused (the caller rolls back), and so is a CREATE of a broken one.
      sql::check_dependents(h, ns, overlay, overlay.objects_of(ns));
    }
  }
  return Outcome::done;
}

}  // namespace

Outcome run_guarded(const std::string& ns, const std::vector<Unit>& units, Executor& ex, Overlay& overlay,
                    const Deadline& deadline) {
  for (size_t u = 0; u < units.size(); ++u) {
    if (units[u].entry < 0) {
      if (run_unit(ns, units, u, ex, overlay, deadline) == Outcome::elsewhere) return Outcome::elsewhere;
      continue;
    }
    try {
      if (run_unit(ns, units, u, ex, overlay, deadline) == Outcome::elsewhere) return Outcome::elsewhere;
    } catch (const ApiError& e) {
      throw e.with_message("statement " + std::to_string(units[u].entry) + ": " + e.what());
    }
  }
  return Outcome::done;
}

SqlResult GuardedSqlStore::query(const std::string& ns, const SqlStatement& st) {
  const Deadline deadline(limits_);
  const auto units = check_and_rewrite(CallKind::query, ns, {&st}, limits_, owners_for(ns), &rewrites_);
  auto out = execute(CallKind::query, ns, units, deadline);
  return out.empty() ? SqlResult{} : std::move(out.front());
}

SqlResult GuardedSqlStore::exec(const std::string& ns, const SqlStatement& st, int& statements) {
  const Deadline deadline(limits_);
  const auto units = check_and_rewrite(CallKind::exec, ns, {&st}, limits_, owners_for(ns), &rewrites_);
  const auto results = execute(CallKind::exec, ns, units, deadline);
  statements = static_cast<int>(results.size());
  SqlResult sum;
  sum.meta = summed_meta(results);
  return sum;
}

std::vector<SqlResult> GuardedSqlStore::batch(const std::string& ns, const std::vector<SqlStatement>& statements) {
  const Deadline deadline(limits_);
  std::vector<const SqlStatement*> list;
  for (const auto& st : statements) list.push_back(&st);
  const auto units = check_and_rewrite(CallKind::batch, ns, list, limits_, owners_for(ns), &rewrites_);
  return execute(CallKind::batch, ns, units, deadline);
}

}  // namespace era::sqlfront
