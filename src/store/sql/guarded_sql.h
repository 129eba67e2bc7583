// The guarded SQL front, shared by both D1 stores: every rule that decides what a namespace's SQL may
// do lives here once, and the stores only execute what it lets through.
//
//   limits (bytes, NUL, parameters, statements per call, the call's time budget)
//     -> rewrite from tokens (ns/sql_rewrite.h)
//     -> each statement prepared under the guard (ns/sql_guard.h) on a connection that holds the
//        namespace's schema, the read-only rule, the parameter count
//     -> the Executor runs it: local steps it on the real connection; cloudflare inlines the
//        parameters and queues it for sending (and runs DDL on its in-memory shadow)
//     -> after DDL: the ownership diff (what the statement created or dropped) and the dependents
//        check (views and triggers still compile inside the namespace)
//
// Ownership changes are collected in the call's Overlay (the registry as the call's later statements
// must see it); the store persists them with the call's own transaction.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstddef>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ns/sql_guard.h"
#include "ns/sql_rewrite.h"
#include "store/sql_store.h"
#include "util/sqlite_handle.h"

namespace era::sqlfront {

using Clock = std::chrono::steady_clock;

// The table, in every D1 database this proxy writes, that records which namespace owns each physical
// name. ':' never appears in a physical name, so no namespace can reach it.
inline constexpr const char* kObjectsTable = "\"era:d1_objects\"";

// One statement of a call, checked and rewritten.
struct Unit {
  sql::Rewritten rw;
  const SqlStatement* st = nullptr;
  int entry = -1;  // a batch entry's index: its errors read "statement <entry>: ..."
};

enum class CallKind { query, exec, batch };

// Recent rewrites (ns/sql_rewrite.h), keyed by namespace and exact SQL text. A rewrite depends on
// those two alone, except for a statement that reads the schema table (its subquery lists what the
// namespace owns at that moment): such rewrites are never kept. So no DDL and no change of ownership
// can make an entry wrong, and none needs to retire one; an entry is only ever found for its own
// namespace. Bounded (entries, and texts of at most kMaxText bytes); thread-safe.
class RewriteCache {
 public:
  static constexpr size_t kMaxText = 4096;
  explicit RewriteCache(size_t capacity = 512) : capacity_(capacity) {}
  // The rewrite of `sql` for `ns`: the kept one, or rewrite() now (kept when allowed above).
  sql::Rewritten rewrite(const std::string& sql, const std::string& ns, const sql::OwnedObjects& owned);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  size_t capacity_;
  std::list<std::string> lru_;  // keys, most recently used first
  std::unordered_map<std::string, std::pair<sql::Rewritten, std::list<std::string>::iterator>> entries_;
};

// Checks a call against the limits and rewrites it: SQL bytes, NUL bytes, parameters, the number of
// statements (query: exactly one; exec: params only with one; batch: one per entry; at most
// limits.max_statements in all). Errors of a batch entry name it ("statement 3: ..."). Throws ApiError.
// `rewrites`, if given, serves and keeps the rewrites.
std::vector<Unit> check_and_rewrite(CallKind kind, const std::string& ns, const std::vector<const SqlStatement*>& sts,
                                    const D1Limits& limits, const sql::ObjectOwners& owners,
                                    RewriteCache* rewrites = nullptr);

// The call's whole time: `limits.request_timeout_ms` from its start.
class Deadline {
 public:
  explicit Deadline(const D1Limits& limits)
      : ms_(limits.request_timeout_ms), at_(Clock::now() + std::chrono::milliseconds(limits.request_timeout_ms)) {}
  Clock::time_point at() const { return at_; }
  bool passed() const { return Clock::now() >= at_; }
  // The earlier of the call's end and `ms` from now.
  Clock::time_point within(int ms) const { return std::min(at_, Clock::now() + std::chrono::milliseconds(ms)); }
  int ms() const { return ms_; }
  // ApiError 408 request_timeout: the call's budget is spent.
  ApiError timeout() const;

 private:
  int ms_;
  Clock::time_point at_;
};

// The registry as the statements of one call see it: the store's registry plus what earlier
// statements of the same call created or dropped.
class Overlay : public sql::ObjectOwners {
 public:
  explicit Overlay(const sql::ObjectRegistry& base) : base_(base) {}
  std::optional<std::string> owner_of(std::string_view physical) const override;
  std::vector<std::string> owned_by(std::string_view ns) const override;
  std::vector<sql::SchemaObject> objects_of(std::string_view ns) const;
  void add(const sql::SchemaObject& o);
  void remove(const std::string& physical);

  // The call's net changes against the base registry.
  std::vector<sql::SchemaObject> added() const;
  std::vector<sql::SchemaObject> removed() const;  // as the base registry had them
  bool empty() const { return added_.empty() && removed_.empty(); }
  // The base registry's version (sql::ObjectRegistry::version).
  uint64_t base_version() const { return base_.version(); }

 private:
  const sql::ObjectRegistry& base_;
  std::map<std::string, sql::SchemaObject> added_;  // key: lower-cased physical name
  std::set<std::string> removed_;
};

// Prepared statements of one connection, kept across calls so that a repeated statement is not
// parsed, guarded and planned again (local D1 gives each of its connections one; run_guarded uses it).
// A statement is kept, and reused, only when everything its guard decided still holds:
// - the unit is one statement that does not read the schema table (whose rewrite lists the owners)
//   and the call has changed no ownership before it (its Overlay is empty);
// - its prepare was allowed and is not DDL, and it ran without error (any error drops it);
// - the key is the exact rewritten text, and an entry is found only for the same namespace (the
//   connection's, which holds no other namespace's tables) and the same registry version: any
//   change of ownership, by any namespace, retires every entry prepared before it;
// - a schema change of the connection (DDL, even rolled back) makes SQLite itself prepare the
//   statement again at its next step, under the Guard of the call that steps it, which checks it
//   exactly like a new one.
// Bounded: texts of at most kMaxText bytes, and the least recently used entry goes past `capacity`.
// Not thread-safe (one per connection).
class StatementCache {
 public:
  static constexpr size_t kMaxText = 4096;
  explicit StatementCache(size_t capacity = 16) : capacity_(capacity) {}
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;
  size_t size() const { return entries_.size(); }

  // The statement kept for `text` of `ns` at registry version `version`, marked in use, with the
  // bytes of `text` its prepare consumed in `length`; null if there is none (a stale one is dropped).
  sqlite3_stmt* acquire(const std::string& text, std::string_view ns, uint64_t version, size_t& length);
  // Ends the use of an acquired statement: kept (reset, bindings cleared) or dropped (finalized).
  void release(const std::string& text, bool keep);
  // Keeps a statement that was just prepared, checked and run without error (reset here).
  void add(const std::string& text, std::string_view ns, uint64_t version, size_t length, sqlite::StmtPtr stmt);

 private:
  struct Entry {
    sqlite::StmtPtr stmt;
    std::string ns;
    uint64_t version = 0;
    size_t length = 0;
    uint64_t used = 0;  // tick of the last use (LRU)
    bool in_use = false;
  };
  size_t capacity_;
  uint64_t tick_ = 0;
  std::unordered_map<std::string, Entry> entries_;
};

// What a store does with each statement the front lets through.
class Executor {
 public:
  virtual ~Executor() = default;
  // The connection that holds the namespace's schema: statements are prepared (and guarded) on it.
  virtual sqlite3* schema() = 0;
  // The statement cache of schema()'s connection, if the store keeps one (see StatementCache).
  virtual StatementCache* statements() { return nullptr; }
  // Runs (or queues) one guarded statement of unit `unit`. `text` is the statement exactly as
  // SQLite prepared it; `changes_schema`: the guard saw DDL, and when this returns the schema of
  // schema() must show its effect. Returns false to stop the call without running it here: the store
  // must take it elsewhere (a read-only connection met a write; a plan on a cached schema met DDL).
  virtual bool run(size_t unit, std::string_view text, sqlite3_stmt* stmt, const SqlStatement& st,
                   bool changes_schema) = 0;
};

enum class Outcome { done, elsewhere };

// Prepares, guards and hands to `ex` every statement of `units`, in order, recording ownership
// changes in `overlay`. Throws ApiError for a refused or failing statement (the caller rolls back).
Outcome run_guarded(const std::string& ns, const std::vector<Unit>& units, Executor& ex, Overlay& overlay,
                    const Deadline& deadline);

// An ApiError for SQLite's error on `db` (prepare or step), with the user's table names.
ApiError sql_error(sqlite3* db, const std::string& ns);

// Applies D1's settings and the guard's hardening to a connection that will run or plan user SQL.
void configure_connection(sqlite3* db, const D1Limits& limits);

// query(), exec() and batch() over the front, for a store that supplies the execution. Each call is
// checked and rewritten here, then handed to execute() whole (one call, one transaction).
class GuardedSqlStore : public SqlStore {
 public:
  explicit GuardedSqlStore(const D1Limits& limits) : limits_(limits) {}
  SqlResult query(const std::string& ns, const SqlStatement& statement) final;
  SqlResult exec(const std::string& ns, const SqlStatement& statement, int& statements) final;
  std::vector<SqlResult> batch(const std::string& ns, const std::vector<SqlStatement>& statements) final;

 protected:
  // Who owns what, as the rewrite of a call of `ns` must see it (a store may refresh it first).
  virtual const sql::ObjectOwners& owners_for(const std::string& ns) = 0;
  // Runs the call's units through run_guarded() as one transaction. Returns one result per statement
  // run (exec), which for query and batch is one per unit.
  virtual std::vector<SqlResult> execute(CallKind kind, const std::string& ns, const std::vector<Unit>& units,
                                         const Deadline& deadline) = 0;

  const D1Limits limits_;
  RewriteCache rewrites_;
};

// D1's last_row_id for one statement: the row it inserted, or 0 for anything but an INSERT or
// REPLACE that changed rows (so a reader never sees another statement's, or namespace's, insert).
bool inserts_rows(std::string_view statement_text);

}  // namespace era::sqlfront
