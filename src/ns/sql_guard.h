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
// - Tables/views/indexes/triggers are allowed only when the registry says the namespace owns them,
//   or when this very statement creates them. A creation must carry the namespace's exact prefix
//   "ns_"; a name (compared case-insensitively, as SQLite does) owned by another namespace is a 409.
// - Denied: ATTACH/DETACH, TEMP objects, virtual tables, transactions and savepoints (use batch),
//   load_extension, PRAGMAs outside a harmless allow-list, table-valued pragma functions, and the
//   schema tables except for what SQLite reads and writes on the user's behalf.
#pragma once

#include <sqlite3.h>

#include <map>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace era::sql {

// Who owns which physical name. Implementations compare names case-insensitively.
class ObjectOwners {
 public:
  virtual ~ObjectOwners() = default;
  virtual std::optional<std::string> owner_of(std::string_view physical) const = 0;
  // The physical names `ns` owns (tables, views, indexes, triggers), in no particular order.
  virtual std::vector<std::string> owned_by(std::string_view ns) const = 0;
};

struct SchemaObject {
  std::string physical;
  std::string ns;
  std::string type;  // "table", "view", "index", "trigger"
};

// An in-memory, thread-safe registry: readers (guards on any thread) share a lock; the one writer
// updates it after a schema change. Persistence is the store's business.
class ObjectRegistry : public ObjectOwners {
 public:
  std::optional<std::string> owner_of(std::string_view physical) const override;
  std::vector<std::string> owned_by(std::string_view ns) const override;
  std::vector<SchemaObject> objects_of(std::string_view ns) const;
  // Every object of every namespace, in no particular order.
  std::vector<SchemaObject> all() const;
  // Namespaces owning at least one object of `type` ("table", ...), sorted.
  std::vector<std::string> namespaces_with(std::string_view type) const;
  void add(const SchemaObject& o);
  void remove(std::string_view physical);
  void clear();
  // Replaces every entry at once (readers see the old set or the new one, never a partial one).
  void replace_all(const std::vector<SchemaObject>& objects);

 private:
  mutable std::shared_mutex mu_;
  std::map<std::string, SchemaObject> by_lower_;  // key: lower-cased physical name
};

// Installs the authorizer on `db` for its lifetime (RAII; the previous authorizer is not restored:
// the guard owns the authorizer slot of its connection while it lives).
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
  bool mine(std::string_view physical) const;

  sqlite3* db_;
  std::string ns_;
  const ObjectOwners& owners_;
  bool allow_schema_read_;
  std::set<std::string> created_;  // lower-cased names this statement creates
  bool internal_ddl_ = false;      // an ALTER or DROP is in progress: SQLite edits its schema tables
  bool changes_schema_ = false;
  std::optional<ApiError> denial_;
};

// Checks one statement's text, exactly as SQLite prepared it (from the prepare's start to its tail),
// for what the authorizer is never asked about: VACUUM (VACUUM INTO writes a copy of the whole
// database to a file). Throws ApiError 403.
void check_statement_text(std::string_view sql);

// Brings `registry` in line with the schema of `db` for namespace `ns` after a statement that
// changed it: unowned objects that carry the exact "ns_" prefix are ns's new objects; ns's objects no
// longer in the schema are gone. Returns the changes for the caller to apply and persist.
struct SchemaDiff {
  std::vector<SchemaObject> added;
  std::vector<std::string> removed;
};
SchemaDiff diff_schema(sqlite3* db, std::string_view ns, const ObjectOwners& owners,
                       const std::vector<SchemaObject>& known);

// Proves every view and trigger of `ns` still compiles and stays inside the namespace (SQLite accepts
// views over missing tables; a broken view or trigger makes every later ALTER TABLE ... RENAME in the
// whole database fail). Throws ApiError 409 naming the broken object: the caller rolls back.
void check_dependents(sqlite3* db, std::string_view ns, const ObjectOwners& owners,
                      const std::vector<SchemaObject>& objects);

// The connection settings the guard relies on: no extension loading, defensive mode (no writes to
// the schema tables even with writable_schema), untrusted schema, no attached databases.
void harden_connection(sqlite3* db);

}  // namespace era::sql
