// Small RAII layer over SQLite, shared by both backends (the local store's files, the cloudflare
// store's in-memory schema shadow): a database handle, prepared statements, a pool of reader connections
// with a per-connection statement cache, and a single writer thread that commits in groups.
//
// Why a single writer: SQLite allows one writer at a time. Funnelling every write through one thread
// means no request ever sees SQLITE_BUSY ("database is locked"), and it lets many concurrent writes
// share one COMMIT and one fsync (group commit) while each is still acknowledged only once durable.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "util/sqlite_handle.h"

namespace era::sqlite {

// Thrown for SQLite failures; `code` is the extended result code.
class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

class Stmt;

// StmtPtr and DbPtr (util/sqlite_handle.h) own the raw handles.

// One connection. Not thread-safe: one thread uses it at a time.
class Db {
 public:
  // Opens (creating if needed) the database at `path` in WAL mode with synchronous=FULL, so a commit
  // that returned is on disk. ":memory:" opens a private in-memory database.
  explicit Db(const std::string& path, bool read_only = false);
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* handle() const { return db_.get(); }
  void exec(const std::string& sql);
  // A prepared statement from this connection's cache (reset and with bindings cleared). The
  // reference stays valid for the connection's life; use it from one place at a time.
  Stmt& cached(const char* sql);
  int64_t changes() const { return sqlite3_changes64(db_.get()); }
  int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_.get()); }

 private:
  DbPtr db_;
  std::unordered_map<std::string, std::unique_ptr<Stmt>> cache_;
};

class Stmt {
 public:
  Stmt(Db& db, const char* sql);
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::nullptr_t);
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind_text(int i, std::string_view v);
  Stmt& bind_blob(int i, std::string_view v);
  Stmt& bind_opt_text(int i, const std::optional<std::string>& v);
  Stmt& bind_opt_int(int i, const std::optional<int64_t>& v);

  // Steps once: true while a row is available, false when done. Throws sqlite::Error.
  bool step();
  // Runs to completion (for statements without rows).
  void run();
  void reset();

  bool is_null(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  double real(int col) const { return sqlite3_column_double(stmt_.get(), col); }
  std::string text(int col) const;  // TEXT or BLOB bytes
  std::optional<std::string> opt_text(int col) const;
  std::optional<int64_t> opt_int(int col) const;
  sqlite3_stmt* handle() const { return stmt_.get(); }

 private:
  sqlite3* db_;
  StmtPtr stmt_;
};

// Resets a statement when it leaves scope, so a cached statement never holds a read transaction open.
class StmtUse {
 public:
  explicit StmtUse(Stmt& s) : s_(s) {}
  ~StmtUse() { s_.reset(); }
  Stmt* operator->() { return &s_; }
  Stmt& operator*() { return s_; }

 private:
  Stmt& s_;
};

// A fixed set of read-only connections. lease() blocks until one is free.
class ReaderPool {
 public:
  // on_open, if given, configures each connection once after it is opened.
  ReaderPool(const std::string& path, size_t size, const std::function<void(Db&)>& on_open = nullptr);

  class Lease {
   public:
    Lease(ReaderPool& pool, std::unique_ptr<Db> db) : pool_(&pool), db_(std::move(db)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (db_) pool_->give_back(std::move(db_));
    }
    Db& operator*() { return *db_; }
    Db* operator->() { return db_.get(); }

   private:
    ReaderPool* pool_;
    std::unique_ptr<Db> db_;
  };
  Lease lease();

 private:
  void give_back(std::unique_ptr<Db> db);
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Db>> free_;
};

// The single writer. submit() queues a job and blocks until the transaction holding it has committed
// (the job's result) or failed (the job's exception). Jobs that arrive together share one
// transaction; each runs inside its own savepoint, so one failing job does not undo the others.
class Writer {
 public:
  // on_open, if given, configures the connection before the writer thread starts (outside any
  // transaction, so connection-level PRAGMAs such as foreign_keys take effect).
  explicit Writer(const std::string& path, size_t max_batch = 512,
                  const std::function<void(Db&)>& on_open = nullptr);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Runs fn(db) on the writer thread inside a transaction and returns its result once that
  // transaction has committed. Rethrows fn's exception (its changes rolled back) or the commit's.
  template <typename F>
  auto submit(F&& fn) -> std::invoke_result_t<F, Db&> {
    using R = std::invoke_result_t<F, Db&>;
    if constexpr (std::is_void_v<R>) {
      run_job([&](Db& db) { fn(db); });
    } else {
      std::optional<R> out;
      run_job([&](Db& db) { out.emplace(fn(db)); });
      return std::move(*out);
    }
  }

  // Finishes the queued jobs and stops the thread; later submits throw.
  void stop();

 private:
  struct Job {
    const std::function<void(Db&)>* fn;
    std::promise<void> done;
  };
  void run_job(const std::function<void(Db&)>& fn);
  void loop();

  std::unique_ptr<Db> db_;
  size_t max_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace era::sqlite
