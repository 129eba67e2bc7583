#include "store/local/local_d1.h"

#include <algorithm>
#include <chrono>

#include "ns/sql_tokenizer.h"
#include "util/error.h"

namespace era {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kObjectsTable = "\"era:d1_objects\"";
constexpr int kMaxValueBytes = 2000000;  // D1: a string, BLOB or row is at most 2,000,000 bytes

// Thrown on a reader connection by the first statement that would write: the call moves to the writer.
struct NeedsWriter {};

struct StmtCloser {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtCloser>;

// Interrupts the statement running on `db` once the deadline has passed (SQLITE_INTERRUPT), so one
// runaway query (a recursive CTE bomb) cannot hold a connection or the writer for ever.
class Deadline {
 public:
  Deadline(sqlite3* db, int ms) : db_(db), at_(Clock::now() + std::chrono::milliseconds(ms)) {
    sqlite3_progress_handler(db_, 1000, &Deadline::check, this);
  }
  ~Deadline() { sqlite3_progress_handler(db_, 0, nullptr, nullptr); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  bool fired() const { return fired_; }

 private:
  static int check(void* self) {
    auto* d = static_cast<Deadline*>(self);
    if (Clock::now() < d->at_) return 0;
    d->fired_ = true;
    return 1;
  }
  sqlite3* db_;
  Clock::time_point at_;
  bool fired_ = false;
};

ApiError sql_error(sqlite3* db, const std::string& ns, int timeout_ms, bool timed_out) {
  const int code = sqlite3_extended_errcode(db);
  if (timed_out || (code & 0xff) == SQLITE_INTERRUPT)
    return ApiError(408, "statement_timeout",
                    "the statement ran longer than " + std::to_string(timeout_ms) + " ms and was interrupted");
  std::string msg = sql::user_message(sqlite3_errmsg(db), ns);
  if ((code & 0xff) == SQLITE_TOOBIG)
    return ApiError(413, "value_too_large", msg + " (a string, BLOB or row is at most 2000000 bytes)");
  if ((code & 0xff) == SQLITE_FULL || (code & 0xff) == SQLITE_IOERR || (code & 0xff) == SQLITE_CORRUPT)
    return ApiError(500, "storage_error", msg);
  return ApiError(400, "sql_error", msg);
}

void configure(sqlite::Db& db, const D1Limits& limits) {
  sqlite3* h = db.handle();
  sql::harden_connection(h);
  sqlite3_limit(h, SQLITE_LIMIT_VARIABLE_NUMBER, limits.max_params);
  sqlite3_limit(h, SQLITE_LIMIT_LENGTH, kMaxValueBytes);
  db.exec("PRAGMA foreign_keys=ON");  // D1's default
}

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

}  // namespace

LocalD1::LocalD1(const std::string& path, const D1Limits& limits, size_t readers) : limits_(limits) {
  // One call per transaction (no group commit): interrupting a runaway write makes SQLite roll back
  // the whole transaction, which must never take other clients' writes with it.
  writer_ = std::make_unique<sqlite::Writer>(path, 1, [&](sqlite::Db& db) {
    db.exec(std::string("CREATE TABLE IF NOT EXISTS ") + kObjectsTable +
            " (physical TEXT PRIMARY KEY COLLATE NOCASE, ns TEXT NOT NULL, type TEXT NOT NULL) WITHOUT ROWID");
    configure(db, limits_);
    load_registry(db);
  });
  readers_ = std::make_unique<sqlite::ReaderPool>(path, readers, [&](sqlite::Db& db) { configure(db, limits_); });
}

LocalD1::~LocalD1() { close(); }

void LocalD1::close() {
  if (writer_) writer_->stop();
}

void LocalD1::load_registry(sqlite::Db& db) {
  registry_.clear();
  StmtPtr s;
  sqlite3_stmt* raw = nullptr;
  const std::string sql = std::string("SELECT physical, ns, type FROM ") + kObjectsTable;
  if (sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &raw, nullptr) != SQLITE_OK)
    throw sqlite::Error(sqlite3_extended_errcode(db.handle()), sqlite3_errmsg(db.handle()));
  s.reset(raw);
  auto text = [&](int i) { return std::string(reinterpret_cast<const char*>(sqlite3_column_text(raw, i))); };
  while (sqlite3_step(raw) == SQLITE_ROW) registry_.add({text(0), text(1), text(2)});
}

sql::Rewritten LocalD1::rewrite(const std::string& ns, const SqlStatement& st) const {
  if (st.sql.size() > limits_.max_sql_bytes)
    throw bad_request("sql_too_long", "SQL is " + std::to_string(st.sql.size()) + " bytes; the limit is " +
                                          std::to_string(limits_.max_sql_bytes));
  if (st.params.size() > static_cast<size_t>(limits_.max_params))
    throw bad_request("too_many_params", std::to_string(st.params.size()) + " parameters; a statement takes at most " +
                                             std::to_string(limits_.max_params));
  sql::Rewritten rw = sql::rewrite(st.sql, ns, [&] { return registry_.owned_by(ns); });
  if (rw.statements == 0) throw bad_request("empty_sql", "the SQL holds no statement");
  return rw;
}

SqlResult LocalD1::step_all(sqlite::Db& db, sqlite3_stmt* stmt, const std::string& ns,
                            const std::vector<SqlValue>& params, Budget& budget) {
  sqlite3* h = db.handle();
  const int wanted = sqlite3_bind_parameter_count(stmt);
  if (static_cast<int>(params.size()) != wanted)
    throw bad_request("param_count", "the statement has " + std::to_string(wanted) + " parameter(s) but " +
                                         std::to_string(params.size()) + " value(s) were given");
  for (size_t i = 0; i < params.size(); ++i) bind(stmt, static_cast<int>(i + 1), params[i]);

  SqlResult r;
  const int ncol = sqlite3_column_count(stmt);
  for (int i = 0; i < ncol; ++i) r.columns.emplace_back(sqlite3_column_name(stmt, i));
  const bool readonly = sqlite3_stmt_readonly(stmt);
  const auto start = Clock::now();
  const int64_t total_before = sqlite3_total_changes64(h);
  Deadline deadline(h, limits_.statement_timeout_ms);
  for (;;) {
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) throw sql_error(h, ns, limits_.statement_timeout_ms, deadline.fired());
    std::vector<SqlValue> row;
    row.reserve(static_cast<size_t>(ncol));
    for (int i = 0; i < ncol; ++i) {
      row.push_back(column(stmt, i));
      budget.result_bytes += static_cast<int64_t>(value_bytes(row.back()));
    }
    if (budget.result_bytes > limits_.max_result_bytes)
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
  }
  r.meta.last_row_id = sqlite3_last_insert_rowid(h);
  r.meta.rows_read = static_cast<int64_t>(r.rows.size()) +
                     sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0);
  return r;
}

std::vector<SqlResult> LocalD1::run(sqlite::Db& db, const std::string& ns, const sql::Rewritten& rw,
                                    const std::vector<SqlValue>& params, bool read_only, Undo* undo,
                                    Budget& budget) {
  sqlite3* h = db.handle();
  std::vector<SqlResult> out;
  const char* p = rw.sql.data();
  const char* end = p + rw.sql.size();
  while (p < end) {
    bool schema = false;
    {
      // The guard is installed for the statement's whole life: SQLite re-prepares a statement whose
      // schema changed under it, and that re-prepare is checked too.
      sql::Guard guard(h, ns, registry_, rw.reads_schema);
      guard.begin_statement();
      sqlite3_stmt* raw = nullptr;
      const char* tail = nullptr;
      const int rc = sqlite3_prepare_v3(h, p, static_cast<int>(end - p), 0, &raw, &tail);
      StmtPtr stmt(raw);
      if (guard.denial()) throw *guard.denial();
      if (rc != SQLITE_OK) throw sql_error(h, ns, limits_.statement_timeout_ms, false);
      const std::string_view text(p, static_cast<size_t>(tail - p));
      p = tail;
      if (!stmt) continue;  // only whitespace or comments were left
      sql::check_statement_text(text);
      if (read_only && !sqlite3_stmt_readonly(stmt.get()))
        throw ApiError(403, "read_only_token", "this session's token is read-only: the statement would write");
      if (!undo && !sqlite3_stmt_readonly(stmt.get())) throw NeedsWriter{};
      out.push_back(step_all(db, stmt.get(), ns, params, budget));
      schema = guard.changes_schema();
    }
    if (schema) {
      if (!undo) throw NeedsWriter{};
      schema_changed(db, ns, *undo);
    }
  }
  return out;
}

void LocalD1::schema_changed(sqlite::Db& db, const std::string& ns, Undo& undo) {
  const auto known = registry_.objects_of(ns);
  const sql::SchemaDiff diff = sql::diff_schema(db.handle(), ns, registry_, known);
  undo.touched = true;
  for (const auto& o : diff.added) {
    registry_.add(o);
    undo.added.push_back(o);
    sqlite::StmtUse s(db.cached("INSERT OR REPLACE INTO \"era:d1_objects\" (physical, ns, type) VALUES (?1, ?2, ?3)"));
    s->bind_text(1, o.physical).bind_text(2, o.ns).bind_text(3, o.type).run();
  }
  for (const auto& name : diff.removed) {
    for (const auto& o : known)
      if (o.physical == name) undo.removed.push_back(o);
    registry_.remove(name);
    sqlite::StmtUse s(db.cached("DELETE FROM \"era:d1_objects\" WHERE physical = ?1"));
    s->bind_text(1, name).run();
  }
  // Views and triggers must still compile inside the namespace: a DROP or RENAME that breaks one is
  // refused (rolled back), and so is a CREATE of a broken one.
  sql::check_dependents(db.handle(), ns, registry_, registry_.objects_of(ns));
}

void LocalD1::revert(const Undo& undo) {
  for (const auto& o : undo.added) registry_.remove(o.physical);
  for (const auto& o : undo.removed) registry_.add(o);
}

template <typename F>
auto LocalD1::on_writer(F&& fn) {
  Undo undo;
  try {
    return writer_->submit([&](sqlite::Db& db) {
      try {
        return fn(db, undo);
      } catch (...) {
        revert(undo);
        undo = Undo{};
        throw;
      }
    });
  } catch (const ApiError&) {
    throw;
  } catch (...) {
    // The commit itself failed: what the registry holds may not have committed. Reload it from the
    // committed table (a reader sees only committed data).
    if (undo.touched) {
      auto lease = readers_->lease();
      load_registry(*lease);
    }
    throw;
  }
}

void LocalD1::finish_meta(sqlite::Db& db, std::vector<SqlResult>& results) {
  sqlite::StmtUse pages(db.cached("PRAGMA page_count"));
  int64_t size = pages->step() ? pages->int64(0) : 0;
  sqlite::StmtUse page_size(db.cached("PRAGMA page_size"));
  size *= page_size->step() ? page_size->int64(0) : 0;
  for (auto& r : results) r.meta.size_after = size;
}

SqlResult LocalD1::query(const std::string& ns, const SqlStatement& st) {
  const sql::Rewritten rw = rewrite(ns, st);
  if (rw.statements != 1)
    throw bad_request("multiple_statements", "query runs exactly one statement; use exec for several");
  {
    auto lease = readers_->lease();
    try {
      Budget budget;
      auto out = run(*lease, ns, rw, st.params, st.read_only, nullptr, budget);
      finish_meta(*lease, out);
      return out.empty() ? SqlResult{} : std::move(out.front());
    } catch (const NeedsWriter&) {
    }
  }
  auto out = on_writer([&](sqlite::Db& db, Undo& undo) {
    Budget budget;
    auto r = run(db, ns, rw, st.params, st.read_only, &undo, budget);
    finish_meta(db, r);
    return r;
  });
  return out.empty() ? SqlResult{} : std::move(out.front());
}

SqlResult LocalD1::exec(const std::string& ns, const SqlStatement& st, int& statements) {
  const sql::Rewritten rw = rewrite(ns, st);
  if (rw.statements > 1 && !st.params.empty())
    throw bad_request("params_with_multiple_statements",
                      "params apply to a single statement; this SQL holds " + std::to_string(rw.statements) +
                          " (send them one by one, or use batch)");
  auto results = on_writer([&](sqlite::Db& db, Undo& undo) {
    Budget budget;
    auto r = run(db, ns, rw, st.params, st.read_only, &undo, budget);
    finish_meta(db, r);
    return r;
  });
  statements = static_cast<int>(results.size());
  SqlResult sum;
  sum.meta = summed_meta(results);
  return sum;
}

std::vector<SqlResult> LocalD1::batch(const std::string& ns, const std::vector<SqlStatement>& statements) {
  std::vector<sql::Rewritten> rws;
  for (size_t i = 0; i < statements.size(); ++i) {
    try {
      rws.push_back(rewrite(ns, statements[i]));
    } catch (const ApiError& e) {
      throw ApiError(e.status(), e.code(), "statement " + std::to_string(i) + ": " + e.what());
    }
    if (rws.back().statements != 1)
      throw bad_request("multiple_statements", "statement " + std::to_string(i) + " holds " +
                                                   std::to_string(rws.back().statements) +
                                                   " statements; each batch entry is exactly one");
  }
  return on_writer([&](sqlite::Db& db, Undo& undo) {
    Budget budget;
    std::vector<SqlResult> out;
    for (size_t i = 0; i < rws.size(); ++i) {
      try {
        auto r = run(db, ns, rws[i], statements[i].params, statements[i].read_only, &undo, budget);
        out.push_back(r.empty() ? SqlResult{} : std::move(r.front()));
      } catch (const ApiError& e) {
        throw ApiError(e.status(), e.code(), "statement " + std::to_string(i) + ": " + e.what());
      }
    }
    finish_meta(db, out);
    return out;
  });
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
  auto lease = readers_->lease();
  for (const auto& o : registry_.objects_of(ns)) {
    if (o.type != "table") continue;
    SqlTable t{o.physical.substr(prefix.size()), std::nullopt};
    // dbstat: the pages of the table and of its indexes.
    try {
      sqlite::StmtUse s(lease->cached(
          "SELECT SUM(pgsize) FROM dbstat WHERE name = ?1 OR name IN "
          "(SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1)"));
      s->bind_text(1, o.physical);
      if (s->step() && !s->is_null(0)) t.bytes = s->int64(0);
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
