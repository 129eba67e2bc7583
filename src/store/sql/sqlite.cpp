#include "store/sql/sqlite.h"

#include <fcntl.h>
#include <unistd.h>

#include <exception>

namespace era::sqlite {
namespace {

[[noreturn]] void throw_error(sqlite3* db, int rc, const std::string& what) {
  std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw Error(db ? sqlite3_extended_errcode(db) : rc, what + ": " + msg);
}

}  // namespace

Db::Db(const std::string& path, bool read_only) {
  // SQLite creates a database 0644 (less the umask) and gives its -wal and -shm files the database's
  // mode: create it 0600 first, so tenants' data is the proxy's alone whatever the umask. (An empty
  // file is a new database to SQLite; ":memory:" and "" are not files.)
  if (!read_only && !path.empty() && path != ":memory:" && path.rfind("file:", 0) != 0) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) ::close(fd);
  }
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX | (read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  db_.reset(raw);
  if (rc != SQLITE_OK) throw_error(raw, rc, "cannot open " + path);
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 10000);
  if (!read_only) exec("PRAGMA journal_mode=WAL");
  // FULL: a commit that returned has been fsynced; what was acknowledged survives a crash.
  exec("PRAGMA synchronous=FULL");
  exec("PRAGMA temp_store=MEMORY");
  exec("PRAGMA cache_size=-16000");
}

void Db::exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw Error(sqlite3_extended_errcode(db_.get()), msg);
  }
}

Stmt& Db::cached(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) it = cache_.emplace(sql, std::make_unique<Stmt>(*this, sql)).first;
  return *it->second;
}

Stmt::Stmt(Db& db, const char* sql) : db_(db.handle()) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  stmt_.reset(raw);
  if (rc != SQLITE_OK) throw_error(db_, rc, "prepare");
}

#define ERA_BIND(call)                                     \
  do {                                                     \
    int rc_ = (call);                                      \
    if (rc_ != SQLITE_OK) throw_error(db_, rc_, "bind");   \
  } while (0)

Stmt& Stmt::bind(int i, std::nullptr_t) {
  ERA_BIND(sqlite3_bind_null(stmt_.get(), i));
  return *this;
}
Stmt& Stmt::bind(int i, int64_t v) {
  ERA_BIND(sqlite3_bind_int64(stmt_.get(), i, v));
  return *this;
}
Stmt& Stmt::bind(int i, double v) {
  ERA_BIND(sqlite3_bind_double(stmt_.get(), i, v));
  return *this;
}
Stmt& Stmt::bind_text(int i, std::string_view v) {
  ERA_BIND(sqlite3_bind_text64(stmt_.get(), i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}
Stmt& Stmt::bind_blob(int i, std::string_view v) {
  // A zero-length blob must still be a blob, not NULL: pass a non-null pointer.
  ERA_BIND(sqlite3_bind_blob64(stmt_.get(), i, v.empty() ? "" : v.data(), v.size(), SQLITE_TRANSIENT));
  return *this;
}
Stmt& Stmt::bind_opt_text(int i, const std::optional<std::string>& v) {
  return v ? bind_text(i, *v) : bind(i, nullptr);
}
Stmt& Stmt::bind_opt_int(int i, const std::optional<int64_t>& v) { return v ? bind(i, *v) : bind(i, nullptr); }
#undef ERA_BIND

bool Stmt::step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw_error(db_, rc, "step");
}

void Stmt::run() {
  while (step()) {
  }
}

void Stmt::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

std::string Stmt::text(int col) const {
  const void* p = sqlite3_column_blob(stmt_.get(), col);
  int n = sqlite3_column_bytes(stmt_.get(), col);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

std::optional<std::string> Stmt::opt_text(int col) const {
  if (is_null(col)) return std::nullopt;
  return text(col);
}

std::optional<int64_t> Stmt::opt_int(int col) const {
  if (is_null(col)) return std::nullopt;
  return int64(col);
}

ReaderPool::ReaderPool(const std::string& path, size_t size, const std::function<void(Db&)>& on_open) {
  for (size_t i = 0; i < size; ++i) {
    free_.push_back(std::make_unique<Db>(path, true));
    if (on_open) on_open(*free_.back());
  }
}

ReaderPool::Lease ReaderPool::lease() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !free_.empty(); });
  auto db = std::move(free_.back());
  free_.pop_back();
  return Lease(*this, std::move(db));
}

void ReaderPool::give_back(std::unique_ptr<Db> db) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(db));
  }
  cv_.notify_one();
}

namespace {
std::unique_ptr<Db> open_configured(const std::string& path, const std::function<void(Db&)>& on_open) {
  auto db = std::make_unique<Db>(path);
  if (on_open) on_open(*db);
  return db;
}
}  // namespace

Writer::Writer(const std::string& path, size_t max_batch, const std::function<void(Db&)>& on_open)
    : db_(open_configured(path, on_open)), max_batch_(max_batch), thread_([this] { loop(); }) {}

Writer::~Writer() { stop(); }

void Writer::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Writer::run_job(const std::function<void(Db&)>& fn) {
  Job job{&fn, {}};
  auto done = job.done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw Error(SQLITE_MISUSE, "the store is shutting down");
    queue_.push_back(&job);
  }
  cv_.notify_one();
  done.get();
}

void Writer::loop() {
  std::vector<Job*> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every queued job has been served
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    std::vector<Job*> ok;
    sqlite3* h = db_->handle();
    // The savepoint statements run twice per job: prepared once and reused, not re-parsed by
    // sqlite3_exec each time (that parse was a measurable share of a batch's CPU time).
    auto run = [&](const char* sql) {
      StmtUse st(db_->cached(sql));
      st->run();
    };
    for (auto* j : batch) {
      try {
        // A failing job can make SQLite roll back the whole transaction by itself (an interrupted
        // write, SQLITE_FULL, IOERR, NOMEM): then a new one is begun for the jobs that follow.
        if (sqlite3_get_autocommit(h)) db_->exec("BEGIN IMMEDIATE");
        run("SAVEPOINT job");
        try {
          (*j->fn)(*db_);
        } catch (...) {
          if (!sqlite3_get_autocommit(h)) {
            run("ROLLBACK TO job");
            run("RELEASE job");
          } else {
            // The jobs before this one in the lost transaction were undone with it: not acknowledged.
            auto lost = std::make_exception_ptr(
                Error(SQLITE_ABORT, "the transaction was rolled back by another statement; nothing was applied"));
            for (auto* o : ok) o->done.set_exception(lost);
            ok.clear();
          }
          throw;
        }
        run("RELEASE job");
        ok.push_back(j);
      } catch (...) {
        j->done.set_exception(std::current_exception());
      }
    }
    if (sqlite3_get_autocommit(h)) {  // nothing left to commit: the last transaction was lost
      auto lost = std::make_exception_ptr(Error(SQLITE_ABORT, "the transaction was rolled back; nothing was applied"));
      for (auto* j : ok) j->done.set_exception(lost);
      batch.clear();
      continue;
    }
    try {
      db_->exec("COMMIT");
      for (auto* j : ok) j->done.set_value();
    } catch (...) {
      auto err = std::current_exception();
      try {
        db_->exec("ROLLBACK");
      } catch (...) {
      }
      for (auto* j : ok) j->done.set_exception(err);
    }
    batch.clear();
  }
}

}  // namespace era::sqlite
