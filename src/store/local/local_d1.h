// The local D1: each namespace's tables in a SQLite file of its own, <dir>/<ns>.sqlite3, apart from
// meta.sqlite3 so that a long D1 write never blocks KV or R2 writers.
//
// Why a file per namespace (defence in depth): the guard (ns/sql_guard.h) still proves every
// statement, and tables keep their physical names `ns_table`, so behaviour predicts cloudflare mode
// (one shared D1 database) exactly. But should the guard ever have a gap, another tenant's data is
// not in the file a statement runs on; and one namespace's writes never queue behind another's.
//
// Concurrency: per namespace, one write connection (a call takes it for its whole transaction, for
// at most the call's time budget) and up to `readers_per_namespace` read-only connections (WAL, so
// reads run beside the write). At most `max_concurrent_per_namespace` calls of one namespace are
// admitted at once (more get 429 d1_busy), so one namespace cannot occupy the server's workers. Open
// files are bounded: past `max_open_namespaces`, the least recently used idle namespace is closed.
//
// Ownership: every namespace's physical names live in one in-memory registry (ns/sql_guard.h's
// ObjectRegistry) so that a name another namespace owns is refused exactly as in cloudflare mode
// (`a_b`+`c` and `a`+`b_c` are both `a_b_c`). Each file persists its own namespace's rows in the
// table "era:d1_objects", in the same transaction as the DDL; the registry is their union, read at
// start. A new name is claimed in the registry before its transaction commits (so two namespaces'
// writers cannot both take it); a dropped name is released after.
//
// Each call is one transaction: a failing call (or any statement of a batch) changes nothing.
#pragma once

#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ns/sql_guard.h"
#include "store/sql/guarded_sql.h"
#include "store/sql/sqlite.h"
#include "store/sql_store.h"

namespace era {

struct LocalD1Options {
  size_t readers_per_namespace = 4;
  size_t max_open_namespaces = 64;
  int max_concurrent_per_namespace = 8;
  // The WAL of a namespace's file is truncated back to this after a call left it larger (a big
  // write, or a rolled-back one) and no reader holds it.
  int64_t journal_limit_bytes = 64ll << 20;
};

class LocalD1 : public sqlfront::GuardedSqlStore {
 public:
  // `dir`: the directory of the namespace files (created if missing).
  LocalD1(const std::string& dir, const D1Limits& limits, const LocalD1Options& options = {});
  ~LocalD1() override;

  std::vector<SqlTable> tables(const std::string& ns) override;
  std::vector<std::pair<std::string, std::string>> all_tables() override;
  std::vector<std::string> namespaces() override;

  // Calls of `ns` being served right now (admitted, not yet finished).
  int calls_in_flight(const std::string& ns);

  // Waits for running calls' connections to be given back, then closes every file; later calls
  // get 503.
  void close();

  // The file of namespace `ns` in `dir`.
  static std::string file_of(const std::string& dir, const std::string& ns);

  // Moves every namespace of a single-file D1 database (the layout before one file per namespace:
  // data_dir/d1.sqlite3) into `dir`, one file per namespace, then renames the old file to
  // <old>.migrated. Safe to run again after a crash: it starts over from the old file.
  static void migrate_single_file(const std::string& old_path, const std::string& dir);

  // One connection to a namespace's file, with what it keeps across calls (local_d1.cpp).
  struct Conn;

 protected:
  const sql::ObjectOwners& owners_for(const std::string& ns) override;
  std::vector<SqlResult> execute(sqlfront::CallKind kind, const std::string& ns,
                                 const std::vector<sqlfront::Unit>& units, const sqlfront::Deadline& deadline) override;

 private:
  struct Space;
  class Use;
  class Exec;
  class Reader;
  class WriteTurn;

  std::shared_ptr<Space> space(const std::string& ns);
  // A read-only connection of `s`, waiting at most until the call's deadline for one to be free.
  std::unique_ptr<Reader> read_lease(Space& s, const sqlfront::Deadline& deadline);
  std::vector<SqlResult> call(const std::string& ns, const std::vector<sqlfront::Unit>& units,
                              const sqlfront::Deadline& deadline, bool try_reader);
  std::vector<SqlResult> write(Space& s, const std::string& ns, const std::vector<sqlfront::Unit>& units,
                               const sqlfront::Deadline& deadline);
  void claim(const std::string& ns, const sqlfront::Overlay& overlay, std::vector<sql::SchemaObject>& claimed);
  void trim_journal(Space& s);
  void load_registry();

  std::string dir_;
  LocalD1Options options_;
  sql::ObjectRegistry registry_;
  std::mutex claim_mu_;  // a new name is checked and claimed in one step

  std::mutex mu_;  // guards open_, lru_, closed_
  std::map<std::string, std::pair<std::shared_ptr<Space>, std::list<std::string>::iterator>> open_;
  std::list<std::string> lru_;  // most recently used first
  bool closed_ = false;
};

}  // namespace era
