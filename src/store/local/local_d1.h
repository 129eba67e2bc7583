// The local D1: every namespace's tables in one SQLite file, data_dir/d1.sqlite3, apart from
// meta.sqlite3 so that a long D1 write never blocks KV or R2 writers.
//
// Reads (query() of a read-only statement) run on a pool of read-only connections, concurrently
// with writes (WAL). Everything else runs on the file's single writer thread (sqlite::Writer), so
// concurrent writers never see "database is locked"; each call is one savepoint there, so a failing
// call (or any statement of a batch) changes nothing.
//
// Object ownership (which namespace owns each physical name) is kept in the table "era:d1_objects"
// of the same file, written in the same transaction as the DDL that changed it, and mirrored in
// memory for the guard.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ns/sql_guard.h"
#include "ns/sql_rewrite.h"
#include "store/local/sqlite.h"
#include "store/sql_store.h"

namespace era {

struct D1Limits {
  size_t max_sql_bytes = 100000;
  int max_params = 100;
  int statement_timeout_ms = 30000;
  int64_t max_result_bytes = 50000000;
};

class LocalD1 : public SqlStore {
 public:
  LocalD1(const std::string& path, const D1Limits& limits, size_t readers = 8);
  ~LocalD1() override;

  SqlResult query(const std::string& ns, const SqlStatement& statement) override;
  SqlResult exec(const std::string& ns, const SqlStatement& statement, int& statements) override;
  std::vector<SqlResult> batch(const std::string& ns, const std::vector<SqlStatement>& statements) override;
  std::vector<SqlTable> tables(const std::string& ns) override;
  std::vector<std::pair<std::string, std::string>> all_tables() override;
  std::vector<std::string> namespaces() override;

  // Finishes queued writes and stops the writer thread.
  void close();

 private:
  // Registry changes made inside the current writer job, undone if the job fails.
  struct Undo {
    std::vector<sql::SchemaObject> added, removed;
    bool touched = false;
  };
  struct Budget {
    int64_t result_bytes = 0;
  };

  sql::Rewritten rewrite(const std::string& ns, const SqlStatement& st) const;
  // Runs every statement of `rw` on `db`. With undo == nullptr (a reader), throws NeedsWriter at the
  // first statement that is not read-only.
  // read_only: refuse (403) a statement that would write, before it runs.
  std::vector<SqlResult> run(sqlite::Db& db, const std::string& ns, const sql::Rewritten& rw,
                             const std::vector<SqlValue>& params, bool read_only, Undo* undo, Budget& budget);
  SqlResult step_all(sqlite::Db& db, sqlite3_stmt* stmt, const std::string& ns, const std::vector<SqlValue>& params,
                     Budget& budget);
  void schema_changed(sqlite::Db& db, const std::string& ns, Undo& undo);
  void revert(const Undo& undo);
  void load_registry(sqlite::Db& db);
  // Runs fn on the writer; keeps the in-memory registry equal to what committed.
  template <typename F>
  auto on_writer(F&& fn);
  void finish_meta(sqlite::Db& db, std::vector<SqlResult>& results);

  D1Limits limits_;
  sql::ObjectRegistry registry_;
  std::unique_ptr<sqlite::Writer> writer_;
  std::unique_ptr<sqlite::ReaderPool> readers_;
};

}  // namespace era
