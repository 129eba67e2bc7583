// The guarded SQL front shared by both D1 stores (store/sql/guarded_sql.h), through a recording
// executor on an in-memory schema: the call rules, the statement loop, ownership changes.
#include <doctest/doctest.h>

#include "store/sql/guarded_sql.h"
#include "store/sql/sqlite.h"
#include "util/error.h"

using namespace era;
using namespace era::sqlfront;

namespace {

// Records what the front hands over and steps DDL (as both stores must, so the front sees it).
class Recorder : public Executor {
 public:
  explicit Recorder(sqlite::Db& db) : db_(db) {}
  sqlite3* schema() override { return db_.handle(); }
  bool run(size_t unit, std::string_view text, sqlite3_stmt* stmt, const SqlStatement&, bool ddl) override {
    if (stop_at_ddl && ddl) return false;
    seen.emplace_back(unit, std::string(text));
    while (sqlite3_step(stmt) == SQLITE_ROW) {
    }
    return true;
  }
  bool stop_at_ddl = false;
  std::vector<std::pair<size_t, std::string>> seen;

 private:
  sqlite::Db& db_;
};

std::string code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    return e.code();
  }
  return "";
}

}  // namespace

TEST_CASE("the statement loop always advances: text SQLite cannot read is refused, not spun on") {
  sqlite::Db db(":memory:");
  configure_connection(db.handle(), {});
  sql::ObjectRegistry registry;
  Overlay overlay(registry);
  Recorder rec(db);
  const D1Limits limits;
  const Deadline deadline(limits);
  const SqlStatement st{"x", {}};
  // Text with a NUL never gets here through check_and_rewrite; fed in directly, the loop must stop.
  for (std::string text : {std::string("SELECT 1;\0", 10), std::string("SELECT 1 \0", 10), std::string("\0", 1),
                           std::string("SELECT 1; \0 SELECT 2", 20)}) {
    Unit u{{text, 1, false}, &st};
    CHECK(code_of([&] { run_guarded("n", {u}, rec, overlay, deadline); }) == "sql_error");
  }
}

TEST_CASE("call rules: NUL, sizes, statement counts, exec's params, batch entries named") {
  sql::ObjectRegistry registry;
  D1Limits limits;
  limits.max_statements = 3;
  auto check = [&](CallKind kind, std::vector<SqlStatement> sts) {
    std::vector<const SqlStatement*> list;
    for (const auto& s : sts) list.push_back(&s);
    return code_of([&] { check_and_rewrite(kind, "n", list, limits, registry); });
  };
  CHECK(check(CallKind::query, {{std::string("SELECT 1\0", 9), {}}}) == "nul_in_sql");
  CHECK(check(CallKind::query, {{"SELECT 1; SELECT 2", {}}}) == "multiple_statements");
  CHECK(check(CallKind::query, {{"-- only a comment", {}}}) == "empty_sql");
  CHECK(check(CallKind::exec, {{"SELECT 1; SELECT 2; SELECT 3", {}}}).empty());
  CHECK(check(CallKind::exec, {{"SELECT 1; SELECT 2; SELECT 3; SELECT 4", {}}}) == "too_many_statements");
  CHECK(check(CallKind::exec, {{"SELECT ?; SELECT 2", {int64_t(1)}}}) == "params_with_multiple_statements");
  CHECK(check(CallKind::batch, {{"SELECT 1", {}}, {"SELECT 1", {}}, {"SELECT 1", {}}, {"SELECT 1", {}}}) ==
        "too_many_statements");
  CHECK(check(CallKind::batch, {{"SELECT 1", {}}, {"SELECT 1; SELECT 2", {}}}) == "multiple_statements");
  CHECK(check(CallKind::query, {{std::string(100001, ' ') + "SELECT 1", {}}}) == "sql_too_long");
  std::vector<const SqlStatement*> list;
  SqlStatement a{"SELECT 1", {}}, b{std::string("SELECT \0", 8), {}};
  list = {&a, &b};
  try {
    check_and_rewrite(CallKind::batch, "n", list, limits, registry);
    FAIL("accepted");
  } catch (const ApiError& e) {
    CHECK(std::string(e.what()).rfind("statement 1: ", 0) == 0);
  }
}

TEST_CASE("DDL: ownership changes land in the overlay; an executor may send the call elsewhere") {
  sqlite::Db db(":memory:");
  configure_connection(db.handle(), {});
  sql::ObjectRegistry registry;
  const D1Limits limits;
  const Deadline deadline(limits);
  SqlStatement st{"CREATE TABLE t (x); CREATE INDEX i ON t (x); CREATE VIEW v AS SELECT x FROM t", {}};
  std::vector<const SqlStatement*> list{&st};
  auto units = check_and_rewrite(CallKind::exec, "n", list, limits, registry);
  {
    Overlay overlay(registry);
    Recorder rec(db);
    rec.stop_at_ddl = true;
    CHECK(run_guarded("n", units, rec, overlay, deadline) == Outcome::elsewhere);
    CHECK(rec.seen.empty());
    CHECK(overlay.empty());
  }
  Overlay overlay(registry);
  Recorder rec(db);
  REQUIRE(run_guarded("n", units, rec, overlay, deadline) == Outcome::done);
  CHECK(rec.seen.size() == 3);
  auto added = overlay.added();
  REQUIRE(added.size() == 3);
  for (const auto& o : added) registry.add(o);
  CHECK(registry.owner_of("N_T") == std::optional<std::string>("n"));
  // Another namespace cannot touch it: its name is read as that namespace's own (no such table), and
  // a name that reaches it all the same is denied by the guard, as if it did not exist.
  SqlStatement steal{"SELECT * FROM \"n_t\"", {}};
  list = {&steal};
  units = check_and_rewrite(CallKind::query, "m", list, limits, registry);
  Overlay theirs(registry);
  CHECK(code_of([&] { run_guarded("m", units, rec, theirs, deadline); }) == "sql_error");
  Unit raw{{"SELECT * FROM \"n_t\"", 1, false}, &steal};
  CHECK(code_of([&] { run_guarded("m", {raw}, rec, theirs, deadline); }) == "sql_error");
  // Dropping the table under the view is refused by the dependents check.
  SqlStatement drop{"DROP TABLE t", {}};
  list = {&drop};
  units = check_and_rewrite(CallKind::exec, "n", list, limits, registry);
  Overlay again(registry);
  CHECK(code_of([&] { run_guarded("n", units, rec, again, deadline); }) == "broken_dependency");
}

TEST_CASE("last_row_id is reported for inserts only") {
  CHECK(inserts_rows("INSERT INTO t VALUES (1)"));
  CHECK(inserts_rows("  /* c */ replace into t values (1)"));
  CHECK(!inserts_rows("UPDATE t SET x = 1"));
  CHECK(!inserts_rows("WITH a AS (SELECT 1) SELECT * FROM a"));
  CHECK(inserts_rows("WITH a(x) AS (SELECT 1), b AS MATERIALIZED (SELECT 2) INSERT INTO t SELECT x FROM a"));
  CHECK(!inserts_rows("WITH a AS (INSERT INTO t VALUES (1)) DELETE FROM t"));
  CHECK(!inserts_rows("SELECT 'INSERT'"));
}

TEST_CASE("a batch entry's error is named and keeps what it means (a throttle's delay)") {
  // The cloudflare executor throws upstream_rate_limited with a delay while sending: naming the entry
  // ("statement 1: ...") must not lose the delay that http/ turns into Retry-After.
  class Throttled : public Executor {
   public:
    explicit Throttled(sqlite::Db& db) : db_(db) {}
    sqlite3* schema() override { return db_.handle(); }
    bool run(size_t unit, std::string_view, sqlite3_stmt*, const SqlStatement&, bool) override {
      if (unit == 0) return true;
      ApiError e(503, "upstream_rate_limited", "throttled");
      e.retry_after_s = 7;
      throw e;
    }

   private:
    sqlite::Db& db_;
  };
  sqlite::Db db(":memory:");
  configure_connection(db.handle(), {});
  sql::ObjectRegistry registry;
  const D1Limits limits;
  const Deadline deadline(limits);
  SqlStatement a{"SELECT 1", {}}, b{"SELECT 2", {}};
  std::vector<const SqlStatement*> list{&a, &b};
  auto units = check_and_rewrite(CallKind::batch, "n", list, limits, registry);
  Overlay overlay(registry);
  Throttled ex(db);
  try {
    run_guarded("n", units, ex, overlay, deadline);
    FAIL("accepted");
  } catch (const ApiError& e) {
    CHECK(e.status() == 503);
    CHECK(e.code() == "upstream_rate_limited");
    CHECK(std::string(e.what()) == "statement 1: throttled");
    CHECK(e.retry_after_s == 7);
  }
}

namespace {

// A Recorder whose connection keeps statements (as local D1's connections do); records the handles.
class Keeper : public Recorder {
 public:
  explicit Keeper(sqlite::Db& db, size_t capacity = 32) : Recorder(db), cache(capacity) {}
  StatementCache* statements() override { return &cache; }
  bool run(size_t, std::string_view, sqlite3_stmt* stmt, const SqlStatement& st, bool) override {
    handles.push_back(stmt);
    for (size_t i = 0; i < st.params.size(); ++i)
      sqlite3_bind_int64(stmt, static_cast<int>(i + 1), std::get<int64_t>(st.params[i]));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) throw sql_error(sqlite3_db_handle(stmt), "n");
    return true;
  }
  StatementCache cache;
  std::vector<sqlite3_stmt*> handles;
};

}  // namespace

TEST_CASE("kept statements: reused while the guard's decision holds, checked again when it may not") {
  sqlite::Db db(":memory:");
  configure_connection(db.handle(), {});
  sql::ObjectRegistry registry;
  const D1Limits limits;
  const Deadline deadline(limits);
  Keeper ex(db);
  auto call = [&](const std::string& ns, const std::string& sql, std::vector<SqlValue> params = {},
                  bool read_only = false) {
    SqlStatement st{sql, std::move(params)};
    st.read_only = read_only;
    std::vector<const SqlStatement*> list{&st};
    auto units = check_and_rewrite(CallKind::exec, ns, list, limits, registry);
    Overlay overlay(registry);
    run_guarded(ns, units, ex, overlay, deadline);
    for (const auto& o : overlay.added()) registry.add(o);
    for (const auto& o : overlay.removed()) registry.remove(o.physical);
  };
  call("n", "CREATE TABLE t (x)");
  CHECK(ex.cache.size() == 0);  // DDL is never kept
  ex.handles.clear();
  call("n", "SELECT x FROM t WHERE x = ?", {int64_t(1)});
  call("n", "SELECT x FROM t WHERE x = ?", {int64_t(2)});
  REQUIRE(ex.handles.size() == 2);
  CHECK(ex.handles[0] == ex.handles[1]);  // the second call reused the first one's statement
  CHECK(ex.cache.size() == 1);
  // The per-use checks still run on a kept statement.
  CHECK(code_of([&] { call("n", "SELECT x FROM t WHERE x = ?"); }) == "param_count");
  call("n", "INSERT INTO t VALUES (?)", {int64_t(1)});
  CHECK(code_of([&] { call("n", "INSERT INTO t VALUES (?)", {int64_t(1)}, true); }) == "read_only_token");
  // Statements a guard refused, and statements reading the schema table, are never kept.
  const size_t kept = ex.cache.size();
  registry.add({"m_t", "m", "table"});
  sqlite3_exec(db.handle(), "CREATE TABLE m_t (x)", nullptr, nullptr, nullptr);
  for (int i = 0; i < 2; ++i) {
    CHECK(code_of([&] { call("n", "SELECT * FROM \"m_t\""); }) == "sql_error");  // no rewrite: raw name
    CHECK(code_of([&] { call("n", "SELECT era_guard_slot()"); }) == "function_denied");
    call("n", "SELECT name FROM sqlite_master");
  }
  CHECK(ex.cache.size() == kept);
  // Nor are long texts (memory: every connection of every open namespace keeps some).
  call("n", "SELECT 1" + std::string(StatementCache::kMaxText, ' '));
  CHECK(ex.cache.size() == kept);

  // A change of ownership anywhere retires every kept statement: SQLite would not prepare it again
  // (this connection's schema did not change), the registry version makes the front do it. Here a
  // CTE named like nobody's object is allowed; once another namespace owns that name, it is not.
  ex.handles.clear();
  call("n", "WITH b_c AS (SELECT 1) SELECT 1 FROM b_c");
  call("n", "WITH b_c AS (SELECT 1) SELECT 1 FROM b_c");
  REQUIRE(ex.handles.size() == 2);
  CHECK(ex.handles[0] == ex.handles[1]);
  registry.add({"n_b_c", "n_b", "table"});
  CHECK(code_of([&] { call("n", "WITH b_c AS (SELECT 1) SELECT 1 FROM b_c"); }) == "sql_error");

  // DDL of the connection's schema: SQLite prepares the kept statement again at its next step, under
  // the guard of the call that steps it.
  call("n", "SELECT x FROM t");
  call("n", "ALTER TABLE t RENAME TO u");
  CHECK(code_of([&] { call("n", "SELECT x FROM t"); }) == "sql_error");
  call("n", "CREATE TABLE t (y)");
  CHECK(code_of([&] { call("n", "SELECT x FROM t"); }) == "sql_error");  // no such column
  call("n", "SELECT y FROM t");
  call("n", "DROP TABLE t");
  CHECK(code_of([&] { call("n", "SELECT y FROM t"); }) == "sql_error");
}

TEST_CASE("StatementCache: found only for its namespace and registry version; bounded, least recent out") {
  sqlite::Db db(":memory:");
  StatementCache cache(2);
  auto prepare = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db.handle(), sql, -1, &s, nullptr) == SQLITE_OK);
    return sqlite::StmtPtr(s);
  };
  size_t length = 0;
  cache.add("SELECT 1", "a", 7, 8, prepare("SELECT 1"));
  CHECK(cache.acquire("SELECT 1", "b", 7, length) == nullptr);  // another namespace: dropped
  CHECK(cache.size() == 0);
  cache.add("SELECT 1", "a", 7, 8, prepare("SELECT 1"));
  CHECK(cache.acquire("SELECT 1", "a", 8, length) == nullptr);  // ownership changed since: dropped
  CHECK(cache.size() == 0);
  cache.add("SELECT 1", "a", 7, 8, prepare("SELECT 1"));
  sqlite3_stmt* s = cache.acquire("SELECT 1", "a", 7, length);
  REQUIRE(s);
  CHECK(length == 8);
  CHECK(cache.acquire("SELECT 1", "a", 7, length) == nullptr);  // in use
  cache.release("SELECT 1", true);
  CHECK(cache.acquire("SELECT 1", "a", 7, length) == s);
  cache.release("SELECT 1", false);  // an error: dropped
  CHECK(cache.size() == 0);
  cache.add("SELECT 1", "a", 7, 8, prepare("SELECT 1"));
  cache.add("SELECT 2", "a", 7, 8, prepare("SELECT 2"));
  REQUIRE(cache.acquire("SELECT 1", "a", 7, length));
  cache.release("SELECT 1", true);
  cache.add("SELECT 3", "a", 7, 8, prepare("SELECT 3"));
  CHECK(cache.size() == 2);
  CHECK(cache.acquire("SELECT 2", "a", 7, length) == nullptr);  // the least recently used went
  CHECK(cache.acquire("SELECT 1", "a", 7, length) != nullptr);
  cache.release("SELECT 1", true);
}

TEST_CASE("RewriteCache: the same rewrite as without it, per namespace; schema reads never kept") {
  sql::ObjectRegistry registry;
  registry.add({"a_t", "a", "table"});
  const sql::OwnedObjects none;
  RewriteCache cache(4);
  const char* texts[] = {"SELECT * FROM t", "SELECT * FROM t JOIN u ON t.x = u.x", "INSERT INTO t VALUES (1)",
                         "WITH c AS (SELECT 1) SELECT * FROM c", "CREATE TABLE v (x)", "SELECT 'FROM t' FROM t"};
  for (int round = 0; round < 2; ++round)
    for (const char* t : texts)
      for (const char* ns : {"a", "b", "a_b"}) {
        const auto kept = cache.rewrite(t, ns, none);
        const auto fresh = sql::rewrite(t, ns, none);
        CHECK(kept.sql == fresh.sql);
        CHECK(kept.statements == fresh.statements);
        CHECK(kept.reads_schema == fresh.reads_schema);
      }
  CHECK(cache.size() == 4);  // bounded
  // A schema read lists the owners of its moment: computed each time, never kept.
  RewriteCache schema_reads;
  auto owned = [&] { return registry.owned_by("a"); };
  const auto before = schema_reads.rewrite("SELECT name FROM sqlite_master", "a", owned);
  CHECK(before.reads_schema);
  registry.add({"a_u", "a", "table"});
  const auto after = schema_reads.rewrite("SELECT name FROM sqlite_master", "a", owned);
  CHECK(after.sql != before.sql);
  CHECK(after.sql == sql::rewrite("SELECT name FROM sqlite_master", "a", owned).sql);
  CHECK(schema_reads.size() == 0);
  // Texts over the bound are rewritten, not kept.
  RewriteCache small;
  small.rewrite("SELECT * FROM t" + std::string(RewriteCache::kMaxText, ' '), "a", none);
  CHECK(small.size() == 0);
}
