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
