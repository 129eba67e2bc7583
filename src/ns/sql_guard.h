// The guard: SQLite's own authorizer (sqlite3_set_authorizer) proves that a statement touches only
// its namespace's objects. The rewriter (ns/sql_rewrite.h) translates names; the guard does not trust
// it: every table, index, view and trigger SQLite resolves while preparing is checked here.
//
// Reuse: the guard needs only a sqlite3* that holds the namespace's schema and an ObjectOwners
// lookup. `local` runs it on the real database connection that will execute the statement. The
// `cloudflare` backend runs it on an in-memory shadow of the D1 schema (same tables, no rows): apply
// every accepted DDL statement to the shadow too, prepare each statement there under a Guard, and
// send it upstream only if prepare succeeded and guard.denial() is empty. After a statement that
// changed the schema, call reconcile() and check_dependents() on that same handle.
//
// Policy (see the .cpp for the why of each rule):
// - Every table, view, index and trigger SQLite resolves must be one the registry says the namespace
//   owns, or one this very statement creates. The registry is the authority, never a name's prefix.
//   Any other name is refused exactly as SQLite refuses a name that does not exist (400 sql_error
//   "no such table: <name>", also for PRAGMAs about it), so a denial never tells whether the
//   foreign object exists. Reads SQLite reports without a database (a FROM item none of whose
//   columns is used) are checked the same way; a CTE passes because the rewriter gives it the
//   namespace's prefix and no object owns that name.
// - A creation must carry the namespace's exact prefix "ns_" and must not take a reserved name
//   (ns/names.h is_reserved_sql_name: sqlite_*, pragma_*, json_*, dbstat, ...); a name (compared
//   case-insensitively, as SQLite does) owned by another namespace is a 409.
// - Functions: an allow-list of what D1 documents (is_allowed_function); anything else is a 403.
//   Table-valued functions: json_each and json_tree only.
// - Denied: ATTACH/DETACH, TEMP objects, virtual tables, transactions and savepoints (use batch),
//   PRAGMAs outside a harmless allow-list, and the schema tables except for what SQLite reads and
//   writes on the user's behalf.
#pragma once

#include <sqlite3.h>

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ns/object_registry.h"
#include "util/error.h"

namespace era::sql {

// Checks every statement prepared on `db` while it lives (RAII). The authorizer itself is installed
// on a connection once, by the first Guard built on it, and stays for the connection's life: a Guard
// only points it at itself (restoring the previous Guard, if any, when it dies); while no Guard lives,
// it allows everything, exactly as no authorizer would (the stores' own bookkeeping statements).
// Why: setting an authorizer expires every prepared statement of the connection, so installing one
// per statement would re-prepare the stores' cached statements on every call.
class Guard {
 public:
  // allow_schema_read: the statement holds the rewriter's sqlite_master subquery
  // (Rewritten::reads_schema), so reading main.sqlite_master is allowed.
  Guard(sqlite3* db, std::string ns, const ObjectOwners& owners, bool allow_schema_read);
  ~Guard();
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  // Call before preparing each statement: forgets the previous statement's events.
  void begin_statement();
  // The first denial of the last prepare (an ApiError with the user's names), if any.
  const std::optional<ApiError>& denial() const { return denial_; }
  // The last statement creates, drops or alters schema objects.
  bool changes_schema() const { return changes_schema_; }

 private:
  static int callback(void* self, int action, const char* a, const char* b, const char* db, const char* trig);
  int decide(int action, const char* a, const char* b, const char* db);
  int deny(int status, const std::string& code, const std::string& message);
  int missing(std::string_view kind, std::string_view physical);
  bool mine(std::string_view physical) const;

  struct Slot;
  static Slot& slot_of(sqlite3* db);
  static int dispatch(void* slot, int action, const char* a, const char* b, const char* db, const char* trig);
  static void drop_slot(void* slot);

  Slot& slot_;
  Guard* previous_;
  std::string ns_;
  const ObjectOwners& owners_;
  bool allow_schema_read_;
  std::set<std::string> created_;  // lower-cased names this statement creates
  bool internal_ddl_ = false;      // an ALTER or DROP is in progress: SQLite edits its schema tables
  bool changes_schema_ = false;
  std::optional<ApiError> denial_;
};

// True for the SQL functions a namespace may call: those Cloudflare D1 documents (core scalar,
// aggregate, window, date/time, JSON, math and FTS5 auxiliary functions) and the internal ones SQLite's
// own ALTER TABLE runs. Compared case-insensitively. Not allowed, among others: load_extension,
// fts3_tokenizer (reads and overwrites native pointers), sqlite_compileoption_*, total_changes (a
// counter of every namespace's writes on a shared connection).
bool is_allowed_function(std::string_view name);

// Checks one statement's text, exactly as SQLite prepared it (from the prepare's start to its tail),
// for what the authorizer is never asked about: VACUUM (VACUUM INTO writes a copy of the whole
// database to a file). Throws ApiError 403.
void check_statement_text(std::string_view sql);

// Brings `registry` in line with the schema of `db` for namespace `ns` after a statement that
// changed it: unowned objects that carry the exact "ns_" prefix are ns's new objects; ns's objects no
// longer in the schema are gone. Returns the changes for the caller to apply and persist. Throws
// ApiError 403 reserved_name when a new object takes a reserved name (ALTER TABLE ... RENAME TO is
// not reported to the authorizer): the caller rolls back.
struct SchemaDiff {
  std::vector<SchemaObject> added;
  std::vector<std::string> removed;
};
SchemaDiff diff_schema(sqlite3* db, std::string_view ns, const ObjectOwners& owners,
                       const std::vector<SchemaObject>& known);

// Proves every view and trigger of `ns` still compiles and stays inside the namespace (SQLite accepts
// views over missing tables; a broken view or trigger makes every later ALTER TABLE ... RENAME in the
// whole database fail), that every foreign key of its tables references a table `ns` owns (a
// reference to a name `ns` does not own could later resolve to another namespace's table, which
// would then be unable to delete or update its own rows), and that column DEFAULT expressions call
// only allowed functions (SQLite's authorizer never sees a DEFAULT). Throws ApiError 409 naming the
// broken object: the caller rolls back. Runs SQLite's PRAGMA statements, never a pragma function, so
// no name a tenant created can stand in for them.
void check_dependents(sqlite3* db, std::string_view ns, const ObjectOwners& owners,
                      const std::vector<SchemaObject>& objects);

// The connection settings the guard relies on: no extension loading, no two-argument fts3_tokenizer()
// (it overwrites a native pointer), defensive mode (no writes to the schema tables even with
// writable_schema), untrusted schema, no attached databases. Every connection that prepares or runs
// tenant SQL (local D1's reader and writer connections, the cloudflare shadow) must be hardened.
void harden_connection(sqlite3* db);

}  // namespace era::sql
