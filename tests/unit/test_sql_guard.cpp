// The guard on its own, without the rewriter, on an in-memory schema (as the cloudflare backend uses
// it on a shadow of D1's schema): raw SQL naming other namespaces' objects is denied by SQLite's
// authorizer whatever the rewriter would have done.
#include <doctest/doctest.h>

#include <memory>

#include "ns/sql_guard.h"

using namespace era;
using namespace era::sql;

namespace {

struct Shadow {
  sqlite3* db = nullptr;
  ObjectRegistry owners;
  Shadow() {
    sqlite3_open(":memory:", &db);
    harden_connection(db);
    sqlite3_exec(db,
                 "CREATE TABLE a_t (x); CREATE TABLE b_t (id INTEGER PRIMARY KEY AUTOINCREMENT, y UNIQUE); "
                 "CREATE INDEX b_i ON b_t (y); CREATE VIEW a_v AS SELECT x FROM a_t;",
                 nullptr, nullptr, nullptr);
    owners.add({"a_t", "a", "table"});
    owners.add({"a_v", "a", "view"});
    owners.add({"b_t", "b", "table"});
    owners.add({"b_i", "b", "index"});
  }
  ~Shadow() { sqlite3_close(db); }

  // The denial's status, 0 if SQLite prepared the statement under the guard, -1 if SQLite itself
  // refused it (syntax, missing object) without the guard objecting.
  int prepare(const std::string& ns, const std::string& sql, bool schema_read = false) {
    Guard guard(db, ns, owners, schema_read);
    guard.begin_statement();
    sqlite3_stmt* s = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr);
    sqlite3_finalize(s);
    if (guard.denial()) return guard.denial()->status();
    return rc == SQLITE_OK ? 0 : -1;
  }
  // The rows of a statement prepared and run under the guard (each row's first column as text).
  std::vector<std::string> rows(const std::string& ns, const std::string& sql) {
    Guard guard(db, ns, owners, false);
    guard.begin_statement();
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    REQUIRE_FALSE(guard.denial());
    std::vector<std::string> out;
    while (sqlite3_step(s) == SQLITE_ROW) {
      auto t = sqlite3_column_text(s, 0);
      out.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
    }
    sqlite3_finalize(s);
    return out;
  }
};

}  // namespace

TEST_CASE("guard: a namespace reaches its own objects and nothing else") {
  Shadow s;
  CHECK(s.prepare("b", "SELECT * FROM b_t") == 0);
  CHECK(s.prepare("b", "INSERT INTO b_t (y) VALUES (1)") == 0);
  CHECK(s.prepare("b", "SELECT * FROM b_t INDEXED BY b_i") == 0);
  CHECK(s.prepare("b", "PRAGMA table_info(b_t)") == 0);
  CHECK(s.prepare("b", "CREATE TABLE b_new (z)") == 0);
  CHECK(s.prepare("b", "WITH b_c AS (SELECT 1) SELECT count(*) FROM b_c") == 0);  // a CTE, as the rewriter names it
  CHECK(s.prepare("b", "SELECT * FROM json_each('[1]')") == 0);
  CHECK(s.prepare("b", "DROP INDEX b_i") == 0);
  CHECK(s.prepare("a", "SELECT * FROM a_v") == 0);

  for (const char* sql :
       {"SELECT * FROM a_t", "SELECT * FROM \"a_t\"", "SELECT * FROM [A_T]", "SELECT * FROM main.a_t",
        "SELECT * FROM a_v", "SELECT (SELECT x FROM a_t)", "INSERT INTO a_t VALUES (1)", "UPDATE a_t SET x = 1",
        "DELETE FROM a_t", "DROP TABLE a_t", "DROP VIEW a_v", "ALTER TABLE a_t RENAME TO b_x",
        "ALTER TABLE a_t ADD COLUMN z", "CREATE INDEX b_j ON a_t (x)", "CREATE TRIGGER b_tr AFTER INSERT ON a_t BEGIN SELECT 1; END",
        "PRAGMA foreign_key_check(a_t)", "PRAGMA table_info(a_t)", "PRAGMA index_list(a_t)",
        "PRAGMA table_info(nowhere)", "SELECT * FROM pragma_table_info('b_t')", "SELECT name FROM sqlite_master",
        "ATTACH ':memory:' AS x", "BEGIN", "SAVEPOINT s", "PRAGMA writable_schema = 1", "PRAGMA journal_mode",
        "CREATE TEMP TABLE b_tmp (x)", "CREATE TABLE unprefixed (x)", "CREATE TABLE a_mine (x)",
        "SELECT load_extension('x')", "ANALYZE b_t", "DELETE FROM sqlite_sequence"}) {
    const std::string text = sql;
    CAPTURE(text);
    CHECK(s.prepare("b", sql) > 0);
  }
  CHECK(s.rows("b", "PRAGMA table_info(b_t)").size() == 2);
  // A name another namespace owns, in any letter case, is a conflict.
  CHECK(s.prepare("a", "CREATE TABLE a_T (x)") == -1);  // a's own name: SQLite says it exists
  s.owners.add({"A_q", "A", "table"});
  CHECK(s.prepare("a", "CREATE TABLE a_q (x)") == 409);
  // sqlite_master is readable only when the rewriter emitted its filtered subquery.
  CHECK(s.prepare("b", "SELECT name FROM main.sqlite_master WHERE name IN ('b_t')", true) == 0);
}

TEST_CASE("guard: dependents are proven, schema changes are attributed") {
  Shadow s;
  sqlite3_exec(s.db, "CREATE VIEW b_broken AS SELECT * FROM b_missing", nullptr, nullptr, nullptr);
  SchemaDiff d = diff_schema(s.db, "b", s.owners, s.owners.objects_of("b"));
  REQUIRE(d.added.size() == 1);
  CHECK(d.added[0].physical == "b_broken");
  CHECK(d.added[0].type == "view");
  s.owners.add(d.added[0]);
  CHECK_THROWS_AS(check_dependents(s.db, "b", s.owners, s.owners.objects_of("b")), ApiError);
  sqlite3_exec(s.db, "DROP VIEW b_broken; CREATE VIEW b_sneaky AS SELECT * FROM a_t", nullptr, nullptr, nullptr);
  d = diff_schema(s.db, "b", s.owners, s.owners.objects_of("b"));
  CHECK(d.removed == std::vector<std::string>{"b_broken"});
  s.owners.remove("b_broken");
  for (auto& o : d.added) s.owners.add(o);
  try {
    check_dependents(s.db, "b", s.owners, s.owners.objects_of("b"));
    FAIL("a view over another namespace's table must be refused");
  } catch (const ApiError& e) {
    CHECK(e.status() == 409);
    CHECK(std::string(e.what()) == "view sneaky would be broken: no such table: a_t");
  }
  CHECK_THROWS_AS(check_statement_text("  -- x\n VACUUM INTO '/tmp/f'"), ApiError);
  CHECK_NOTHROW(check_statement_text("SELECT 'VACUUM'"));
}

TEST_CASE("the authorizer is installed once per connection: guards switch it, cached plans stay valid") {
  Shadow s;
  CHECK(s.prepare("a", "SELECT * FROM a_t") == 0);  // the first guard installs the authorizer
  // A statement prepared outside any guard (a store's own bookkeeping, cached across calls).
  sqlite3_stmt* own = nullptr;
  REQUIRE(sqlite3_prepare_v3(s.db, "SELECT count(*) FROM b_t", -1, SQLITE_PREPARE_PERSISTENT, &own, nullptr) ==
          SQLITE_OK);
  auto step_own = [&] {
    REQUIRE(sqlite3_step(own) == SQLITE_ROW);
    sqlite3_reset(own);
  };
  step_own();
  for (int i = 0; i < 3; ++i) {
    CHECK(s.prepare("a", "SELECT * FROM b_t") == 400);  // each guard checks
    CHECK(s.prepare("a", "SELECT * FROM a_t") == 0);
    step_own();  // and with no guard alive everything is allowed, as without an authorizer
  }
  // Setting an authorizer expires every statement of the connection: a guard per statement would
  // have made SQLite prepare `own` again at each of its steps.
  CHECK(sqlite3_stmt_status(own, SQLITE_STMTSTATUS_REPREPARE, 0) == 0);
  sqlite3_finalize(own);

  // Guards nest: the inner one checks while it lives, the outer one again after.
  {
    Guard outer(s.db, "a", s.owners, false);
    outer.begin_statement();
    CHECK(s.prepare("b", "SELECT * FROM a_t") == 400);
    CHECK(s.prepare("b", "SELECT * FROM b_t") == 0);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(s.db, "SELECT * FROM b_t", -1, &st, nullptr);
    sqlite3_finalize(st);
    REQUIRE(outer.denial());
    CHECK(outer.denial()->status() == 400);
  }
  // The authorizer's own helper function is no function a statement may call.
  CHECK(s.prepare("a", "SELECT era_guard_slot()") == 403);
}

TEST_CASE("a new connection is always guarded, even at the address of a closed one") {
  // Connections opened and closed in a row often reuse one address: the guard's record of a closed
  // connection must be gone, or a new one would be taken for already having the authorizer.
  for (int i = 0; i < 50; ++i) {
    Shadow s;
    CHECK(s.prepare("a", "SELECT * FROM b_t") == 400);
    CHECK(s.prepare("a", "ATTACH ':memory:' AS x") == 403);
    CHECK(s.prepare("a", "PRAGMA journal_mode=DELETE") == 403);
  }
}
