// CloudflareD1: the user's SQL over the one D1 database (D1Client, /raw), with the same namespace rules
// as local mode (the shared front, store/sql/guarded_sql.h), proven here before anything is sent.
//
// Every statement is rewritten (ns/sql_rewrite.h) and prepared under the guard (ns/sql_guard.h) on an
// in-memory "shadow" of the namespace's schema: the CREATE statements of the namespace's own objects,
// read from D1's sqlite_master and cached per replica. A denied or unpreparable statement never
// leaves the proxy. A statement that changes the schema is also run on the shadow (inside a savepoint
// rolled back afterwards) to learn what it creates or drops and to prove dependent views and triggers
// still compile; the registry rows for those objects travel upstream in the same D1 batch as the DDL,
// so they commit (or fail) together.
//
// Ownership lives in the D1 table "era:d1_objects" (physical name, case-insensitive primary key):
// shared by every replica, outside every user namespace (':' never appears in a physical name).
// The cache is reloaded before any DDL, after it, and once whenever the shadow refuses a statement
// (another replica may have changed the schema).
//
// Concurrency: a plan holds only its namespace's shadow lock (other namespaces plan meanwhile); the
// upstream call holds no lock at all.
//
// Parameters: D1's /raw takes strings only. Strings are sent as parameters (renumbered ?1..?K);
// integers, reals and NULL are written into the SQL as literals by us (exact, typed); BLOBs as
// unhex(?K) of a hex parameter. User text never becomes SQL.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ns/sql_guard.h"
#include "store/cloudflare/d1_client.h"
#include "store/sql/guarded_sql.h"
#include "store/sql_store.h"

namespace era::cf {

class CloudflareD1 : public sqlfront::GuardedSqlStore {
 public:
  CloudflareD1(D1Client& client, const D1Limits& limits);
  ~CloudflareD1() override;

  std::vector<SqlTable> tables(const std::string& ns) override;
  std::vector<std::string> namespaces() override;
  std::vector<std::pair<std::string, std::string>> all_tables() override;

 protected:
  // Loads ns's schema first when this replica holds no current copy.
  const sql::ObjectOwners& owners_for(const std::string& ns) override;
  std::vector<SqlResult> execute(sqlfront::CallKind kind, const std::string& ns,
                                 const std::vector<sqlfront::Unit>& units, const sqlfront::Deadline& deadline) override;

 private:
  struct Shadow;
  struct Plan;
  class Planner;

  std::vector<SqlResult> run(const std::string& ns, const std::vector<sqlfront::Unit>& units, bool one_per_unit,
                             const sqlfront::Deadline& deadline);
  // The upstream statements for `units`, proven on ns's shadow under ns's lock (other namespaces plan
  // meanwhile; nothing is sent under a lock). Empty when `fresh` is false and the call holds DDL:
  // DDL is planned only on a schema read just now.
  std::optional<Plan> plan(const std::string& ns, const std::vector<sqlfront::Unit>& units, bool fresh,
                           const sqlfront::Deadline& deadline);
  // Reads the registry (every namespace) and `ns`'s schema from D1 and rebuilds the shadow.
  void reload(const std::string& ns);
  // reload() if this replica has no current copy of ns's schema.
  void load(const std::string& ns);
  void mark_stale(const std::string& ns);
  // Under registry_mu_ and the reloaded namespace's shadow lock (reload): takes the read's entries for
  // every namespace not in `keep` (the reloaded one is never in it), keeps those of the ones in `keep`
  // (current_shadows(): each as its own load installed them).
  void install_registry(const std::vector<sql::SchemaObject>& read, const std::set<std::string>& keep);
  // The namespaces other than `except` whose shadow is current (locking each shadow in turn).
  std::set<std::string> current_shadows(const std::string& except);
  Shadow& shadow(const std::string& ns);
  void ensure_schema();
  std::vector<sql::SchemaObject> read_registry();

  D1Client& d1_;
  sql::ObjectRegistry registry_;
  std::mutex mu_;  // guards shadows_ and schema_ready_
  // One install at a time; taken before any shadow's lock. No thread holds two shadow locks at once.
  std::mutex registry_mu_;
  std::map<std::string, std::unique_ptr<Shadow>> shadows_;
  bool schema_ready_ = false;
};

}  // namespace era::cf
