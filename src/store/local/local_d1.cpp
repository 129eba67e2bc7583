#include "store/local/local_d1.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <optional>

#include "ns/names.h"
#include "store/sql/guarded_sql.h"
#include "util/error.h"
#include "util/log.h"

namespace era {

using sqlfront::Clock;

namespace {

namespace fs = std::filesystem;

// Interrupts the statement running on `db` once `at` has passed (SQLITE_INTERRUPT), so one runaway
// query (a recursive CTE bomb) cannot hold a connection past its statement or call budget.
class Interrupt {
 public:
  Interrupt(sqlite3* db, Clock::time_point at) : db_(db), at_(at) {
    sqlite3_progress_handler(db_, 1000, &Interrupt::check, this);
  }
  ~Interrupt() { sqlite3_progress_handler(db_, 0, nullptr, nullptr); }
  Interrupt(const Interrupt&) = delete;
  Interrupt& operator=(const Interrupt&) = delete;
  bool fired() const { return fired_; }

 private:
  static int check(void* self) {
    auto* d = static_cast<Interrupt*>(self);
    if (Clock::now() < d->at_) return 0;
    d->fired_ = true;
    return 1;
  }
  sqlite3* db_;
  Clock::time_point at_;
  bool fired_ = false;
};

void bind(sqlite3_stmt* s, int i, const SqlValue& v) {
  int rc = SQLITE_OK;
  if (std::holds_alternative<std::nullptr_t>(v)) rc = sqlite3_bind_null(s, i);
  else if (auto n = std::get_if<int64_t>(&v)) rc = sqlite3_bind_int64(s, i, *n);
  else if (auto d = std::get_if<double>(&v)) rc = sqlite3_bind_double(s, i, *d);
  else if (auto t = std::get_if<std::string>(&v))
    rc = sqlite3_bind_text64(s, i, t->data(), t->size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  else {
    const auto& b = std::get<SqlBlob>(v).bytes;
    rc = sqlite3_bind_blob64(s, i, b.empty() ? "" : b.data(), b.size(), SQLITE_TRANSIENT);
  }
  if (rc == SQLITE_TOOBIG)
    throw ApiError(413, "value_too_large", "parameter " + std::to_string(i) + " is over 2000000 bytes");
  if (rc != SQLITE_OK) throw ApiError(400, "sql_error", "cannot bind parameter " + std::to_string(i));
}

SqlValue column(sqlite3_stmt* s, int i) {
  switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER: return sqlite3_column_int64(s, i);
    case SQLITE_FLOAT: return sqlite3_column_double(s, i);
    case SQLITE_TEXT: {
      auto p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
      return std::string(p, static_cast<size_t>(sqlite3_column_bytes(s, i)));
    }
    case SQLITE_BLOB: {
      auto p = static_cast<const char*>(sqlite3_column_blob(s, i));
      const int n = sqlite3_column_bytes(s, i);
      return SqlBlob{p ? std::string(p, static_cast<size_t>(n)) : std::string()};
    }
    default: return nullptr;
  }
}

size_t value_bytes(const SqlValue& v) {
  if (auto t = std::get_if<std::string>(&v)) return t->size() + 8;
  if (auto b = std::get_if<SqlBlob>(&v)) return b->bytes.size() * 4 + 8;  // a JSON array of numbers
  return 16;
}

// The database's size now: page_count * page_size. (SQLite prepares a PRAGMA statement again at
// every run, cached or not: it is marked to run only once.)
int64_t database_size(sqlite::Db& db) {
  sqlite::StmtUse pages(db.cached("PRAGMA page_count"));
  int64_t size = pages->step() ? pages->int64(0) : 0;
  sqlite::StmtUse page_size(db.cached("PRAGMA page_size"));
  return size * (page_size->step() ? page_size->int64(0) : 0);
}

// The "data version" of the connection's view of its file: it changes whenever the content it sees
// changes, by its own commits or (noticed when it next starts reading) by another connection's.
uint32_t data_version(sqlite3* db) {
  unsigned int v = 0;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_DATA_VERSION, &v) != SQLITE_OK) return 0;
  return v;
}

}  // namespace

// One connection to a namespace's file, and the statements kept on it across calls.
struct LocalD1::Conn {
  Conn(const std::string& path, bool read_only) : db(path, read_only) {}
  sqlite::Db db;
  sqlfront::StatementCache statements;  // after `db`: finalized before the connection closes
  // A reader's last database size, and the data version it was measured at.
  std::optional<std::pair<uint32_t, int64_t>> size;
};

namespace {

// meta.size_after of a call's results. A read-only connection whose view of the file has not changed
// since it last measured (same data version: nothing committed that it has seen) answers from that
// measure; the writer, whose uncommitted pages the version does not count, always measures.
void finish_meta(LocalD1::Conn& conn, bool reader, std::vector<SqlResult>& results) {
  int64_t size = 0;
  const uint32_t version = reader ? data_version(conn.db.handle()) : 0;
  if (reader && conn.size && conn.size->first == version) {
    size = conn.size->second;
  } else {
    size = database_size(conn.db);
    // Measured in a read of its own, which may have seen a newer commit: keyed by the version after.
    if (reader) conn.size.emplace(data_version(conn.db.handle()), size);
  }
  for (auto& r : results) r.meta.size_after = size;
}

std::vector<sql::SchemaObject> read_objects(sqlite::Db& db) {
  std::vector<sql::SchemaObject> out;
  sqlite::Stmt s(db, (std::string("SELECT physical, ns, type FROM ") + sqlfront::kObjectsTable).c_str());
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2)});
  return out;
}

const std::string kCreateObjects = std::string("CREATE TABLE IF NOT EXISTS ") + sqlfront::kObjectsTable +
                                   " (physical TEXT PRIMARY KEY COLLATE NOCASE, ns TEXT NOT NULL, type TEXT NOT NULL) "
                                   "WITHOUT ROWID";

}  // namespace

// One namespace's file and its connections.
struct LocalD1::Space {
  std::string path;
  std::once_flag opened;
  std::unique_ptr<Conn> writer;
  std::mutex mu;  // guards the fields below
  bool writing = false;  // a call holds `writer` for its whole transaction (WriteTurn)
  std::condition_variable write_cv;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Conn>> idle;
  size_t readers_open = 0;
  int in_flight = 0;
};

// Admission of one call of a namespace: at most max_concurrent_per_namespace at once.
class LocalD1::Use {
 public:
  Use(Space& s, int max) : s_(s) {
    std::lock_guard<std::mutex> lock(s_.mu);
    if (s_.in_flight >= max) {
      ApiError e(429, "d1_busy",
                 "this namespace already has " + std::to_string(max) + " D1 calls running; retry when one finished");
      e.retry_after_s = 1;  // meaning; http/ writes the header
      throw e;
    }
    ++s_.in_flight;
  }
  ~Use() {
    std::lock_guard<std::mutex> lock(s_.mu);
    --s_.in_flight;
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

 private:
  Space& s_;
};

// The namespace's writer, taken for one call's transaction; waiting for it counts against the call's
// budget. (A flag and a condition variable rather than std::timed_mutex, whose timed lock
// ThreadSanitizer cannot follow.)
class LocalD1::WriteTurn {
 public:
  WriteTurn(Space& s, const sqlfront::Deadline& deadline) : s_(s) {
    std::unique_lock<std::mutex> lock(s_.mu);
    if (!s_.write_cv.wait_until(lock, deadline.at(), [&] { return !s_.writing; })) throw deadline.timeout();
    s_.writing = true;
  }
  ~WriteTurn() {
    {
      std::lock_guard<std::mutex> lock(s_.mu);
      s_.writing = false;
    }
    s_.write_cv.notify_one();
  }
  WriteTurn(const WriteTurn&) = delete;
  WriteTurn& operator=(const WriteTurn&) = delete;

 private:
  Space& s_;
};

// A read-only connection of one namespace, given back when it leaves scope.
class LocalD1::Reader {
 public:
  Reader(Space& s, std::unique_ptr<Conn> db) : s_(s), db_(std::move(db)) {}
  ~Reader() {
    {
      std::lock_guard<std::mutex> lock(s_.mu);
      s_.idle.push_back(std::move(db_));
    }
    s_.cv.notify_one();
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  Conn& operator*() { return *db_; }
  Conn* operator->() { return db_.get(); }

 private:
  Space& s_;
  std::unique_ptr<Conn> db_;
};

// Runs each guarded statement on a real connection of the namespace's file.
class LocalD1::Exec : public sqlfront::Executor {
 public:
  Exec(Conn& conn, bool writer, const std::string& ns, const D1Limits& limits, const sqlfront::Deadline& deadline)
      : db_(conn.db), statements_(conn.statements), writer_(writer), ns_(ns), limits_(limits), deadline_(deadline) {}

  sqlite3* schema() override { return db_.handle(); }
  sqlfront::StatementCache* statements() override { return &statements_; }

  bool run(size_t, std::string_view, sqlite3_stmt* stmt, const SqlStatement& st, bool changes_schema) override {
    const bool readonly = sqlite3_stmt_readonly(stmt);
    if (!writer_ && (changes_schema || !readonly)) return false;  // the call moves to the writer
    sqlite3* h = db_.handle();
    for (size_t i = 0; i < st.params.size(); ++i) bind(stmt, static_cast<int>(i + 1), st.params[i]);
    SqlResult r;
    const int ncol = sqlite3_column_count(stmt);
    for (int i = 0; i < ncol; ++i) r.columns.emplace_back(sqlite3_column_name(stmt, i));
    sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);  // from zero, cached or not
    const auto start = Clock::now();
    const int64_t total_before = sqlite3_total_changes64(h);
    // last_row_id is this statement's own insert or 0: never an earlier call's.
    sqlite3_set_last_insert_rowid(h, 0);
    Interrupt interrupt(h, deadline_.within(limits_.statement_timeout_ms));
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        if (interrupt.fired() || (sqlite3_extended_errcode(h) & 0xff) == SQLITE_INTERRUPT) {
          if (deadline_.passed()) throw deadline_.timeout();
          throw ApiError(408, "statement_timeout", "the statement ran longer than " +
                                                       std::to_string(limits_.statement_timeout_ms) +
                                                       " ms and was interrupted");
        }
        throw sqlfront::sql_error(h, ns_);
      }
      std::vector<SqlValue> row;
      row.reserve(static_cast<size_t>(ncol));
      for (int i = 0; i < ncol; ++i) {
        row.push_back(column(stmt, i));
        result_bytes_ += static_cast<int64_t>(value_bytes(row.back()));
      }
      if (result_bytes_ > limits_.max_result_bytes)
        throw bad_request("result_too_large", "the result is over " + std::to_string(limits_.max_result_bytes) +
                                                  " bytes; select fewer rows (LIMIT) or columns");
      r.rows.push_back(std::move(row));
    }
    r.meta.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (!readonly) {
      r.meta.rows_written = sqlite3_total_changes64(h) - total_before;  // includes trigger and FK changes
      // sqlite3_changes64 keeps the last INSERT/UPDATE/DELETE's count through other statements (DDL).
      r.meta.changes = r.meta.rows_written ? sqlite3_changes64(h) : 0;
      r.meta.changed_db = true;
      r.meta.last_row_id = sqlite3_last_insert_rowid(h);
    }
    // Read and reset: a statement kept in the cache counts on from its last run otherwise.
    r.meta.rows_read = static_cast<int64_t>(r.rows.size()) +
                       sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);
    results.push_back(std::move(r));
    return true;
  }

  std::vector<SqlResult> results;

 private:
  sqlite::Db& db_;
  sqlfront::StatementCache& statements_;
  bool writer_;
  const std::string& ns_;
  const D1Limits& limits_;
  const sqlfront::Deadline& deadline_;
  int64_t result_bytes_ = 0;
};

std::string LocalD1::file_of(const std::string& dir, const std::string& ns) { return dir + "/" + ns + ".sqlite3"; }

LocalD1::LocalD1(const std::string& dir, const D1Limits& limits, const LocalD1Options& options)
    : GuardedSqlStore(limits), dir_(dir), options_(options) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("cannot create the D1 directory " + dir_ + ": " + ec.message());
  load_registry();
}

LocalD1::~LocalD1() { close(); }

void LocalD1::close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  open_.clear();  // a Space still in use closes when its last call lets go of it
  lru_.clear();
}

int LocalD1::calls_in_flight(const std::string& ns) {
  std::shared_ptr<Space> s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = open_.find(ns);
    if (it == open_.end()) return 0;
    s = it->second.first;
  }
  std::lock_guard<std::mutex> lock(s->mu);
  return s->in_flight;
}

void LocalD1::load_registry() {
  std::vector<sql::SchemaObject> all;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    const fs::path& p = entry.path();
    if (p.extension() != ".sqlite3" || !entry.is_regular_file()) continue;
    const std::string ns = p.stem().string();
    try {
      ns::check_namespace(ns);
    } catch (const ApiError&) {
      continue;  // not a namespace's file
    }
    sqlite::Db db(p.string());
    db.exec(kCreateObjects);
    for (auto& o : read_objects(db)) {
      if (o.ns != ns) continue;  // a file holds only its own namespace's objects
      all.push_back(std::move(o));
    }
  }
  // Two files cannot claim one name (claims are checked in one step); if a copied-in file does,
  // the first in byte order of namespace keeps it and the other's statements on it are refused.
  std::sort(all.begin(), all.end(), [](const sql::SchemaObject& a, const sql::SchemaObject& b) { return a.ns > b.ns; });
  registry_.replace_all(all);
}

std::shared_ptr<LocalD1::Space> LocalD1::space(const std::string& ns) {
  std::shared_ptr<Space> s;
  std::vector<std::shared_ptr<Space>> closing;  // closed after the lock is let go (a close may checkpoint)
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) throw ApiError(503, "shutting_down", "the D1 store is shutting down");
    auto it = open_.find(ns);
    if (it != open_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.second);
      s = it->second.first;
    } else {
      s = std::make_shared<Space>();
      s->path = file_of(dir_, ns);
      lru_.push_front(ns);
      open_.emplace(ns, std::make_pair(s, lru_.begin()));
      // Close the least recently used namespaces no call is using, down to the bound.
      for (auto victim = lru_.end(); open_.size() > options_.max_open_namespaces && victim != lru_.begin();) {
        --victim;
        auto v = open_.find(*victim);
        if (v->second.first.use_count() > 1) continue;
        closing.push_back(std::move(v->second.first));
        open_.erase(v);
        victim = lru_.erase(victim);
      }
    }
  }
  std::call_once(s->opened, [&] {
    auto db = std::make_unique<Conn>(s->path, false);
    sqlfront::configure_connection(db->db.handle(), limits_);
    db->db.exec("PRAGMA journal_size_limit=" + std::to_string(options_.journal_limit_bytes));
    db->db.exec(kCreateObjects);
    s->writer = std::move(db);
  });
  return s;
}

void LocalD1::trim_journal(Space& s) {
  std::error_code ec;
  const auto size = fs::file_size(s.path + "-wal", ec);
  if (ec || static_cast<int64_t>(size) <= options_.journal_limit_bytes) return;
  // Checkpoint and truncate the WAL now (a rolled-back write leaves its spilled pages there, and no
  // commit would ever reset it). Without waiting: a reader in the way means next time.
  sqlite3* h = s.writer->db.handle();
  sqlite3_busy_timeout(h, 0);
  sqlite3_wal_checkpoint_v2(h, "main", SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  sqlite3_busy_timeout(h, 10000);
}

void LocalD1::claim(const std::string& ns, const sqlfront::Overlay& overlay, std::vector<sql::SchemaObject>& claimed) {
  std::lock_guard<std::mutex> lock(claim_mu_);
  for (const auto& o : overlay.added()) {
    auto owner = registry_.owner_of(o.physical);
    if (owner && *owner == ns) continue;
    if (owner)
      throw ApiError(409, "name_conflict",
                     "the name '" + o.physical.substr(std::min(o.physical.size(), ns.size() + 1)) +
                         "' is already used by another namespace (SQLite names compare case-insensitively)");
    registry_.add(o);
    claimed.push_back(o);
  }
}

std::vector<SqlResult> LocalD1::write(Space& s, const std::string& ns, const std::vector<sqlfront::Unit>& units,
                                      const sqlfront::Deadline& deadline) {
  WriteTurn turn(s, deadline);
  sqlite::Db& db = s.writer->db;
  sqlite3* h = db.handle();
  sqlfront::Overlay overlay(registry_);
  std::vector<sql::SchemaObject> claimed;
  Exec ex(*s.writer, true, ns, limits_, deadline);
  try {
    db.exec("BEGIN IMMEDIATE");
    sqlfront::run_guarded(ns, units, ex, overlay, deadline);
    if (!overlay.empty()) {
      claim(ns, overlay, claimed);
      for (const auto& o : overlay.added()) {
        sqlite::StmtUse st(db.cached("INSERT OR REPLACE INTO \"era:d1_objects\" (physical, ns, type) VALUES (?1, ?2, ?3)"));
        st->bind_text(1, o.physical).bind_text(2, o.ns).bind_text(3, o.type).run();
      }
      for (const auto& o : overlay.removed()) {
        sqlite::StmtUse st(db.cached("DELETE FROM \"era:d1_objects\" WHERE physical = ?1"));
        st->bind_text(1, o.physical).run();
      }
    }
    finish_meta(*s.writer, false, ex.results);
    db.exec("COMMIT");
  } catch (...) {
    if (!sqlite3_get_autocommit(h)) {
      try {
        db.exec("ROLLBACK");
      } catch (const std::exception& e) {
        log::warn(std::string("D1 rollback failed: ") + e.what());
      }
    }
    for (const auto& o : claimed) registry_.remove(o.physical);
    trim_journal(s);
    throw;
  }
  // A dropped name is released only now that the drop committed.
  for (const auto& o : overlay.removed()) {
    std::lock_guard<std::mutex> claim_lock(claim_mu_);
    auto owner = registry_.owner_of(o.physical);
    if (owner && *owner == ns) registry_.remove(o.physical);
  }
  trim_journal(s);
  return std::move(ex.results);
}

std::unique_ptr<LocalD1::Reader> LocalD1::read_lease(Space& s, const sqlfront::Deadline& deadline) {
  std::unique_lock<std::mutex> lock(s.mu);
  auto none = [&] { return s.idle.empty() && s.readers_open >= options_.readers_per_namespace; };
  if (!s.cv.wait_until(lock, deadline.at(), [&] { return !none(); })) throw deadline.timeout();
  if (!s.idle.empty()) {
    auto db = std::move(s.idle.back());
    s.idle.pop_back();
    return std::make_unique<Reader>(s, std::move(db));
  }
  ++s.readers_open;
  lock.unlock();
  try {
    auto db = std::make_unique<Conn>(s.path, true);
    sqlfront::configure_connection(db->db.handle(), limits_);
    return std::make_unique<Reader>(s, std::move(db));
  } catch (...) {
    lock.lock();
    --s.readers_open;
    s.cv.notify_one();
    throw;
  }
}

std::vector<SqlResult> LocalD1::call(const std::string& ns, const std::vector<sqlfront::Unit>& units,
                                     const sqlfront::Deadline& deadline, bool try_reader) {
  std::shared_ptr<Space> s = space(ns);
  Use use(*s, options_.max_concurrent_per_namespace);
  if (try_reader) {
    auto reader = read_lease(*s, deadline);
    sqlfront::Overlay overlay(registry_);
    Exec ex(**reader, false, ns, limits_, deadline);
    if (sqlfront::run_guarded(ns, units, ex, overlay, deadline) == sqlfront::Outcome::done) {
      finish_meta(**reader, true, ex.results);
      return std::move(ex.results);
    }
  }
  return write(*s, ns, units, deadline);
}

const sql::ObjectOwners& LocalD1::owners_for(const std::string&) { return registry_; }

std::vector<SqlResult> LocalD1::execute(sqlfront::CallKind kind, const std::string& ns,
                                        const std::vector<sqlfront::Unit>& units, const sqlfront::Deadline& deadline) {
  return call(ns, units, deadline, kind == sqlfront::CallKind::query);
}

std::vector<std::pair<std::string, std::string>> LocalD1::all_tables() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& o : registry_.all())
    if (o.type == "table") out.emplace_back(o.ns, o.physical.substr(o.ns.size() + 1));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<SqlTable> LocalD1::tables(const std::string& ns) {
  std::vector<SqlTable> out;
  const std::string prefix = ns + "_";
  std::vector<sql::SchemaObject> objects;
  for (auto& o : registry_.objects_of(ns))
    if (o.type == "table") objects.push_back(std::move(o));
  if (objects.empty()) return out;  // no file needs opening for a namespace without tables
  const sqlfront::Deadline deadline(limits_);
  std::shared_ptr<Space> s = space(ns);
  Use use(*s, options_.max_concurrent_per_namespace);
  auto reader = read_lease(*s, deadline);
  for (const auto& o : objects) {
    SqlTable t{o.physical.substr(prefix.size()), std::nullopt};
    // dbstat: the pages of the table and of its indexes.
    try {
      sqlite::StmtUse q((*reader)->db.cached(
          "SELECT SUM(pgsize) FROM dbstat WHERE name = ?1 OR name IN "
          "(SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1)"));
      q->bind_text(1, o.physical);
      if (q->step() && !q->is_null(0)) t.bytes = q->int64(0);
    } catch (const sqlite::Error&) {
      // dbstat is optional in SQLite builds: sizes are a bonus, names are the answer.
    }
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(), [](const SqlTable& a, const SqlTable& b) { return a.name < b.name; });
  return out;
}

std::vector<std::string> LocalD1::namespaces() { return registry_.namespaces_with("table"); }

}  // namespace era
