// SqlStore: the SQL capability, in the shape of Cloudflare D1, one logical database per namespace.
//
// Contract, for every implementation:
// - Namespaces arrive validated (ns/names.h); SQL arrives as the user wrote it, naming the
//   namespace's own tables. The store rewrites it (ns/sql_rewrite.h), proves it with the guard
//   (ns/sql_guard.h) and never lets one namespace read or change another's objects. Denied or failing
//   statements change nothing.
// - query() runs exactly one statement and returns its rows; exec() runs one or more statements
//   separated by ';' (params only when there is one); batch() runs its statements in one
//   transaction: all of them take effect, or none.
// - Every acknowledged write is durable (committed) before the call returns.
// - Values keep SQLite's types: integers are int64 exactly, BLOBs are bytes.
// - Limits (D1Limits: SQL bytes, bound parameters, statements per call, statement and call time,
//   result bytes) come from the configuration; past them the call throws ApiError (400 / 408 /
//   413-class) and changes nothing. SQL holding a NUL byte is refused (400).
// - Errors are thrown as era::ApiError; SQLite's messages name the user's tables, not physical ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace era {

// The limits every SqlStore enforces, D1's own by default (developers.cloudflare.com/d1/platform/limits).
struct D1Limits {
  size_t max_sql_bytes = 100000;      // D1: a statement's SQL is at most 100,000 bytes
  int max_params = 100;               // D1: at most 100 bound parameters per statement
  int statement_timeout_ms = 30000;   // D1: a query runs at most 30 s
  int64_t max_result_bytes = 50000000;  // D1: a result is at most 50 MB
  // One call (query, exec or batch) as a whole: D1's API request must finish within 30 s, so a batch
  // of slow statements is bounded too, and one tenant cannot hold a writer for longer.
  int request_timeout_ms = 30000;
  // Statements in one call (exec's statements, batch's entries). D1: 1,000 queries per Worker
  // invocation (Workers Paid).
  int max_statements = 1000;
};

struct SqlBlob {
  std::string bytes;
  bool operator==(const SqlBlob& o) const { return bytes == o.bytes; }
};

// NULL, INTEGER, REAL, TEXT, BLOB.
using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string, SqlBlob>;

struct SqlStatement {
  std::string sql;
  std::vector<SqlValue> params;  // bound by position: ?1 (or the first ?) is params[0]
  // The caller may only read (a read-only session token): a statement that would write — anything
  // sqlite3_stmt_readonly() says is not read-only — is refused with ApiError 403 "read_only_token"
  // before it runs, and the call changes nothing.
  bool read_only = false;
};

// D1's meta. rows_read / rows_written follow SQLite's counters (rows produced plus rows visited by
// full scans; rows changed), an approximation of D1's.
struct SqlMeta {
  int64_t changes = 0;
  int64_t last_row_id = 0;
  double duration_ms = 0;
  int64_t rows_read = 0;
  int64_t rows_written = 0;
  bool changed_db = false;
  int64_t size_after = 0;  // bytes of the database file after the call
};

struct SqlResult {
  std::vector<std::string> columns;
  std::vector<std::vector<SqlValue>> rows;
  SqlMeta meta;
};

struct SqlTable {
  std::string name;                // the user's name (without the namespace prefix)
  std::optional<int64_t> bytes;    // pages used by the table and its indexes, if known
};

// exec()'s meta over several statements: counts and durations added, last_row_id and size_after
// the last statement's (what every SqlStore implementation reports).
inline SqlMeta summed_meta(const std::vector<SqlResult>& results) {
  SqlMeta m;
  for (const auto& r : results) {
    m.changes += r.meta.changes;
    m.rows_read += r.meta.rows_read;
    m.rows_written += r.meta.rows_written;
    m.duration_ms += r.meta.duration_ms;
    m.changed_db = m.changed_db || r.meta.changed_db;
    m.last_row_id = r.meta.last_row_id;
    m.size_after = r.meta.size_after;
  }
  return m;
}

class SqlStore {
 public:
  virtual ~SqlStore() = default;

  virtual SqlResult query(const std::string& ns, const SqlStatement& statement) = 0;
  // Runs every statement in `sql`; meta is summed over them (last_row_id: the last one's).
  // Returns the number of statements run in `statements`.
  virtual SqlResult exec(const std::string& ns, const SqlStatement& statement, int& statements) = 0;
  virtual std::vector<SqlResult> batch(const std::string& ns, const std::vector<SqlStatement>& statements) = 0;
  // The namespace's tables (user-visible names), in name order. Read from the schema and the
  // ownership registry, so always in step with what query() would see.
  virtual std::vector<SqlTable> tables(const std::string& ns) = 0;
  // Every namespace that owns at least one table, in byte order (to walk all namespaces' tables).
  virtual std::vector<std::string> namespaces() = 0;
  // Every namespace's tables as (namespace, user-visible table name), sorted by namespace then name,
  // without sizes: the resource registry lists and counts D1 tables from this. The default walks
  // namespaces() and tables(); a store that knows its tables cheaply overrides it.
  virtual std::vector<std::pair<std::string, std::string>> all_tables() {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& ns : namespaces())
      for (auto& t : tables(ns)) out.emplace_back(ns, std::move(t.name));
    return out;
  }
};

}  // namespace era
