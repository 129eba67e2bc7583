// The rewriter and the guard together, run the way both D1 stores run them (rewrite, prepare each
// statement under the guard, step, then diff the schema and prove dependents, all inside a savepoint
// rolled back on any error), against hostile tenants. Two oracles:
// - nothing changes: the database's bytes (sqlite3_serialize) are identical after a refused statement;
// - a denial looks the same whether the foreign object exists or not: every statement runs in two
//   worlds, one where another namespace holds the table it aims at and one where nothing does, and
//   must get the same status, code and message in both.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "ns/names.h"
#include "ns/sql_guard.h"
#include "ns/sql_rewrite.h"

using namespace era;
using namespace era::sql;

namespace {

struct Answer {
  int status = 200;
  std::string code, message;
  std::vector<std::string> rows;  // each row's columns joined by '|'
  bool operator==(const Answer& o) const {
    return status == o.status && code == o.code && message == o.message && rows == o.rows;
  }
};

std::string describe(const Answer& a) {
  std::string s = std::to_string(a.status) + " " + a.code + " " + a.message + " [";
  for (const auto& r : a.rows) s += r + ";";
  return s + "]";
}

struct World {
  sqlite3* db = nullptr;
  ObjectRegistry reg;

  World() {
    REQUIRE(sqlite3_open(":memory:", &db) == SQLITE_OK);
    harden_connection(db);
    sqlite3_exec(db, "PRAGMA foreign_keys=ON", nullptr, nullptr, nullptr);
  }
  ~World() { sqlite3_close(db); }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  std::string bytes() {
    sqlite3_int64 n = 0;
    unsigned char* p = sqlite3_serialize(db, "main", &n, 0);
    std::string out(reinterpret_cast<char*>(p), static_cast<size_t>(n));
    sqlite3_free(p);
    return out;
  }

  // Runs `sql` for namespace `ns` as the stores do. A failure rolls back the database and the registry.
  Answer run(const std::string& ns, const std::string& sql) {
    Answer out;
    const auto saved = reg.all();
    sqlite3_exec(db, "SAVEPOINT w", nullptr, nullptr, nullptr);
    try {
      const Rewritten rw = rewrite(sql, ns, [&] { return reg.owned_by(ns); });
      const char* p = rw.sql.data();
      const char* end = p + rw.sql.size();
      while (p < end) {
        bool schema = false;
        {
          Guard guard(db, ns, reg, rw.reads_schema);
          guard.begin_statement();
          sqlite3_stmt* st = nullptr;
          const char* tail = nullptr;
          const int rc = sqlite3_prepare_v3(db, p, static_cast<int>(end - p), 0, &st, &tail);
          std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> owned(st, sqlite3_finalize);
          if (guard.denial()) throw *guard.denial();
          if (rc != SQLITE_OK) throw ApiError(400, "sql_error", user_message(sqlite3_errmsg(db), ns));
          const std::string_view text(p, static_cast<size_t>(tail - p));
          p = tail;
          if (!st) continue;
          check_statement_text(text);
          int step;
          while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            std::string row;
            for (int i = 0; i < sqlite3_column_count(st); ++i) {
              auto t = sqlite3_column_text(st, i);
              row += (i ? "|" : "") + std::string(t ? reinterpret_cast<const char*>(t) : "NULL");
            }
            out.rows.push_back(row);
          }
          if (guard.denial()) throw *guard.denial();
          if (step != SQLITE_DONE) throw ApiError(400, "sql_error", user_message(sqlite3_errmsg(db), ns));
          schema = guard.changes_schema();
        }
        if (schema) {
          const SchemaDiff diff = diff_schema(db, ns, reg, reg.objects_of(ns));
          for (const auto& o : diff.added) reg.add(o);
          for (const auto& name : diff.removed) reg.remove(name);
          check_dependents(db, ns, reg, reg.objects_of(ns));
        }
      }
      sqlite3_exec(db, "RELEASE w", nullptr, nullptr, nullptr);
      return out;
    } catch (const ApiError& e) {
      sqlite3_exec(db, "ROLLBACK TO w; RELEASE w", nullptr, nullptr, nullptr);
      reg.replace_all(saved);
      return {e.status(), e.code(), e.what(), {}};
    }
  }

  void ok(const std::string& ns, const std::string& sql) {
    const Answer a = run(ns, sql);
    INFO(sql, " -> ", describe(a));
    REQUIRE(a.status == 200);
  }
};

// Namespace "a" (the attacker) holds `mine`; in the populated world "a_b" holds `q` (physically a_b_q,
// which is also what "a" gets for a table it calls "b_q") and "v" holds `secret`.
struct Worlds {
  World with, without;
  Worlds() {
    for (World* w : {&with, &without}) w->ok("a", "CREATE TABLE mine (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO mine VALUES (1, 'm')");
    with.ok("a_b", "CREATE TABLE q (k INTEGER PRIMARY KEY, s TEXT); INSERT INTO q VALUES (7, 'a_b secret')");
    with.ok("v", "CREATE TABLE secret (id INTEGER PRIMARY KEY, s TEXT); INSERT INTO secret VALUES (1, 'v secret')");
  }

  // Runs `sql` as "a" in both worlds: the answers must agree and be a 4xx, and neither database may
  // change by a byte.
  Answer refused(const std::string& sql) {
    const std::string b1 = with.bytes(), b2 = without.bytes();
    const Answer x = with.run("a", sql), y = without.run("a", sql);
    INFO(sql, "\n  with the foreign table:    ", describe(x), "\n  without the foreign table: ", describe(y));
    CHECK(x == y);
    CHECK(x.status >= 400);
    CHECK(x.status < 500);
    CHECK(with.bytes() == b1);
    CHECK(without.bytes() == b2);
    return x;
  }
};

}  // namespace

TEST_CASE("hostile: another namespace's rows and tables are out of reach and out of sight (issue 12 #6)") {
  Worlds w;
  const char* corpus[] = {
      // The reproduction, and the rewriter positions it found unprefixed.
      "SELECT count(*) FROM (SELECT 1) AS s JOIN mine ON 1, b_q",
      "SELECT count(*) FROM mine JOIN mine AS m2 USING (k), b_q",
      "SELECT count(*) FROM mine, (WITH b_q AS (SELECT 1) SELECT * FROM b_q) AS x, b_q",
      "SELECT count(*) FROM b_q, (WITH b_q AS (SELECT 1) SELECT * FROM b_q)",
      "SELECT count(*) FROM 'b_q'",
      "SELECT * FROM mine JOIN 'b_q' ON 1",
      "SELECT 1 WHERE 7 IN b_q",
      "SELECT 1 WHERE 7 NOT IN main.b_q",
      "SELECT 1 WHERE 7 IN 'b_q'",
      "SELECT (SELECT count(*) FROM b_q)",
      "SELECT count(*) FROM main.B_Q",
      "SELECT s FROM b_q",
      "INSERT INTO b_q VALUES (8, 'x')",
      "UPDATE b_q SET s = 'x'",
      "DELETE FROM b_q",
      "DROP TABLE b_q",
      "ALTER TABLE b_q ADD COLUMN z",
      "ALTER TABLE b_q RENAME TO gone",
      "CREATE INDEX i ON b_q (s)",
      "CREATE TRIGGER tr AFTER INSERT ON b_q BEGIN SELECT 1; END",
      "PRAGMA foreign_key_check(b_q)",
      "PRAGMA table_info(b_q)",
      "PRAGMA table_xinfo('b_q')",
      "PRAGMA index_list(b_q)",
      "PRAGMA foreign_key_list(b_q)",
      // Views and triggers built that way are refused, not left to track the victim.
      "CREATE VIEW leak AS SELECT count(*) FROM (SELECT 1) AS s JOIN mine ON 1, b_q",
      "CREATE VIEW leak AS SELECT 1 WHERE 7 IN b_q",
      "CREATE TRIGGER tr AFTER INSERT ON mine BEGIN DELETE FROM b_q; END",
      "CREATE TRIGGER tr AFTER INSERT ON mine BEGIN INSERT INTO mine SELECT k + 100, s FROM b_q; END",
      // References to a table the namespace does not own (issue 12 #9), however written.
      "CREATE TABLE r (k REFERENCES b_q (k))",
      "CREATE TABLE r (k INTEGER, FOREIGN KEY (k) REFERENCES 'b_q' (k) ON UPDATE CASCADE)",
      "ALTER TABLE mine ADD COLUMN z REFERENCES b_q (k)",
      // Raw physical names reach nothing either: they are read as the attacker's own.
      "SELECT count(*) FROM v_secret",
      "SELECT count(*) FROM \"v_secret\"",
      "SELECT count(*) FROM main.[v_secret]",
      "SELECT 1 WHERE 1 IN v_secret",
  };
  for (const char* sql : corpus) {
    CAPTURE(sql);
    w.refused(sql);
  }
  // The message is SQLite's own for a missing name, with the attacker's names.
  CHECK(w.refused("SELECT 1 WHERE 7 IN b_q").message == "no such table: b_q");
  CHECK(w.refused("CREATE TABLE r (k REFERENCES b_q (k))").code == "broken_dependency");
  // The victims still have everything.
  CHECK(w.with.run("a_b", "SELECT s FROM q").rows == std::vector<std::string>{"a_b secret"});
  CHECK(w.with.run("v", "SELECT s FROM secret").rows == std::vector<std::string>{"v secret"});
}

TEST_CASE("hostile: the guard alone denies foreign names, without telling whether they exist") {
  // No rewriter: raw physical names, as a gap in the rewriter would leave them. Namespace "a" aims at
  // a_b_q, which exists (owned by "a_b") in one world and not in the other.
  World with, without;
  for (World* w : {&with, &without}) w->ok("a", "CREATE TABLE t (k)");
  with.ok("a_b", "CREATE TABLE q (k INTEGER PRIMARY KEY, s TEXT); INSERT INTO q VALUES (1, 's')");
  auto guarded = [](World& w, const std::string& sql) {
    Guard guard(w.db, "a", w.reg, false);
    guard.begin_statement();
    sqlite3_stmt* st = nullptr;
    const int rc = sqlite3_prepare_v2(w.db, sql.c_str(), -1, &st, nullptr);
    std::string rows;
    if (rc == SQLITE_OK && !guard.denial())
      while (sqlite3_step(st) == SQLITE_ROW) rows += "row;";
    sqlite3_finalize(st);
    if (guard.denial()) return std::to_string(guard.denial()->status()) + " " + guard.denial()->what();
    if (rc != SQLITE_OK) return "400 " + user_message(sqlite3_errmsg(w.db), "a");
    return "200 " + rows;
  };
  for (const char* sql :
       {"SELECT count(*) FROM a_b_q", "SELECT count(*) FROM A_B_Q", "SELECT * FROM a_b_q", "SELECT s FROM main.a_b_q",
        "SELECT count(*) FROM main.a_b_q", "SELECT count(*) FROM a_t JOIN a_t AS x ON 1, a_b_q",
        "SELECT 1 WHERE 1 IN a_b_q", "SELECT 1 WHERE 1 IN main.a_b_q", "INSERT INTO a_b_q (k) VALUES (2)",
        "DELETE FROM a_b_q", "UPDATE a_b_q SET s = 1", "DROP TABLE a_b_q", "ALTER TABLE a_b_q ADD COLUMN z",
        "CREATE INDEX a_i ON a_b_q (s)", "CREATE TRIGGER a_tr AFTER INSERT ON a_b_q BEGIN SELECT 1; END",
        "PRAGMA table_info(a_b_q)", "PRAGMA index_list(a_b_q)", "PRAGMA foreign_key_check(a_b_q)"}) {
    CAPTURE(sql);
    const std::string x = guarded(with, sql), y = guarded(without, sql);
    CHECK(x == y);
    CHECK(x.rfind("200 row", 0) != 0);
  }
  // A count over an unused FROM item is a read like any other: only a CTE (prefixed by the rewriter)
  // passes without an owner.
  CHECK(guarded(with, "WITH a_c AS (SELECT 1) SELECT count(*) FROM a_c") == "200 row;");
  CHECK(guarded(with, "WITH c AS (SELECT 1) SELECT count(*) FROM c").rfind("400 ", 0) == 0);
}

TEST_CASE("hostile: fts3_tokenizer and every function D1 does not document are refused (issue 12 #2)") {
  Worlds w;
  int on = -1;
  sqlite3_db_config(w.with.db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, -1, &on);
  CHECK(on == 0);
  const char* corpus[] = {
      "SELECT hex(fts3_tokenizer('simple'))",
      "SELECT fts3_tokenizer('simple', x'4141414141414141')",
      "SELECT FTS3_Tokenizer('porter')",
      "SELECT * FROM fts3tokenize('simple', 'x')",
      "SELECT count(*) FROM fts3tokenize('simple', 'x')",
      "SELECT * FROM mine WHERE k IN (SELECT 1 FROM fts3tokenize('simple', 'x'))",
      // Inside objects, where the function would run later: views, triggers, CHECK, DEFAULT,
      // generated columns, index expressions.
      "CREATE VIEW f AS SELECT hex(fts3_tokenizer('simple')) AS p",
      "CREATE TRIGGER tr AFTER INSERT ON mine BEGIN SELECT fts3_tokenizer('simple'); END",
      "CREATE TABLE c1 (x CHECK (fts3_tokenizer('simple') IS NOT NULL))",
      "CREATE TABLE c2 (x DEFAULT (sqlite_version()))",
      "CREATE TABLE c3 (x, y AS (sqlite_version()))",
      "CREATE INDEX i ON mine (sqlite_version())",
      "ALTER TABLE mine ADD COLUMN d DEFAULT (sqlite_source_id())",
      // Other functions off the allow-list, and table-valued functions other than json_each/json_tree.
      "SELECT load_extension('/tmp/x.so')",
      "SELECT sqlite_version()",
      "SELECT sqlite_compileoption_get(0)",
      "SELECT total_changes()",
      "SELECT matchinfo(1)",
      "SELECT * FROM pragma_table_list",
      "SELECT count(*) FROM pragma_table_list",
      "SELECT * FROM pragma_function_list",
      "SELECT count(*) FROM dbstat",
      "SELECT * FROM main.dbstat",
      "SELECT count(*) FROM sqlite_dbpage",
      "SELECT count(*) FROM sqlite_stmt",
      "SELECT count(*) FROM generate_series(1, 10)",
      "CREATE VIRTUAL TABLE t USING fts3tokenize(simple)",
      "CREATE VIRTUAL TABLE t USING fts4(x)",
      "CREATE VIRTUAL TABLE t USING dbstat",
  };
  for (const char* sql : corpus) {
    CAPTURE(sql);
    w.refused(sql);
  }
  CHECK(w.refused("SELECT hex(fts3_tokenizer('simple'))").code == "function_denied");
  CHECK(w.refused("SELECT hex(fts3_tokenizer('simple'))").status == 403);
  // The connection setting holds even without the guard: the two-argument form is off.
  char* err = nullptr;
  CHECK(sqlite3_exec(w.with.db, "SELECT fts3_tokenizer('simple', x'4141414141414141')", nullptr, nullptr, &err) !=
        SQLITE_OK);
  sqlite3_free(err);
  // What D1 documents still works.
  const Answer a = w.with.run(
      "a", "SELECT abs(-1), json_extract('{\"x\":2}', '$.x'), '{\"y\":3}' ->> '$.y', date('2024-01-02'), "
           "iif(1, 'y', 'n'), printf('%d', 4), sqrt(16), row_number() OVER (), count(*) FROM mine");
  REQUIRE(a.status == 200);
  CHECK(a.rows == std::vector<std::string>{"1|2|3|2024-01-02|y|4|4.0|1|1"});
  CHECK(w.with.run("a", "SELECT count(*) FROM json_each('[1,2,3]')").rows == std::vector<std::string>{"3"});
  CHECK(w.with.run("a", "SELECT count(*) FROM json_tree('[1]')").rows == std::vector<std::string>{"2"});
  CHECK(w.with.run("a", "SELECT 2 IN (SELECT value FROM json_each('[1,2]'))").rows == std::vector<std::string>{"1"});
  w.with.ok("a", "CREATE TABLE d (x DEFAULT (datetime('now')), y DEFAULT CURRENT_TIMESTAMP, z DEFAULT abc, "
                "q DEFAULT \"w\", n DEFAULT -1, b DEFAULT x'00', t DEFAULT TRUE)");
  w.with.ok("a", "INSERT INTO d DEFAULT VALUES");
  CHECK(w.with.run("a", "SELECT z, q, n, hex(b), t FROM d").rows == std::vector<std::string>{"abc|w|-1|00|1"});
  CHECK(is_allowed_function("JSON_EXTRACT"));
  CHECK_FALSE(is_allowed_function("fts3_tokenizer"));
  CHECK_FALSE(is_allowed_function("load_extension"));
}

TEST_CASE("hostile: no tenant can create a name SQLite or the proxy resolves on its own (issue 12 #7)") {
  World w;
  // The reproduction and its family: every physical name that would shadow a built-in is refused.
  const std::pair<const char*, const char*> corpus[] = {
      {"pragma", "CREATE VIEW foreign_key_list AS SELECT 1 AS x"},
      {"pragma", "CREATE TABLE table_info (x)"},
      {"PRAGMA", "CREATE VIEW Foreign_Key_List AS SELECT 1"},
      {"json", "CREATE TABLE each (x)"},
      {"JSON", "CREATE VIEW tree AS SELECT 1"},
      {"jsonb", "CREATE TABLE each (x)"},
      {"generate", "CREATE TABLE series (x)"},
      {"sqlite", "CREATE TABLE master2 (x)"},
      {"pragma", "CREATE TABLE t (x); CREATE INDEX table_list ON t (x)"},
      {"pragma", "CREATE TABLE t (x); CREATE TRIGGER table_list AFTER INSERT ON t BEGIN SELECT 1; END"},
  };
  for (const auto& [ns, sql] : corpus) {
    CAPTURE(sql);
    const std::string before = w.bytes();
    const Answer a = w.run(ns, sql);
    CHECK(a.status >= 400);
    CHECK(a.status < 500);
    CHECK(w.bytes() == before);
  }
  CHECK(w.run("json", "CREATE TABLE each (x)").code == "reserved_name");
  // RENAME TO is not reported to the authorizer: the schema diff refuses it.
  w.ok("generate", "CREATE TABLE data (x)");
  const std::string before = w.bytes();
  CHECK(w.run("generate", "ALTER TABLE data RENAME TO series").code == "reserved_name");
  CHECK(w.run("pragma", "CREATE TABLE t0 (x); ALTER TABLE t0 RENAME TO foreign_key_list").code == "reserved_name");
  CHECK(w.bytes() == before);
  CHECK(ns::is_reserved_sql_name("Pragma_Foreign_Key_List"));
  CHECK(ns::is_reserved_sql_name("json_each"));
  CHECK(ns::is_reserved_sql_name("dbstat"));
  CHECK_FALSE(ns::is_reserved_sql_name("myapp_json_each"));
  CHECK_FALSE(ns::is_reserved_sql_name("jsonx_t"));

  // Even with such objects already in the schema (made before this rule), the proxy's own bookkeeping
  // (PRAGMA statements, main.sqlite_master) is untouched by them: schema changes keep working.
  REQUIRE(sqlite3_exec(w.db,
                       "CREATE VIEW pragma_foreign_key_list AS SELECT 1 AS x; CREATE VIEW pragma_table_info AS "
                       "SELECT 1 AS x; CREATE TABLE pragma_table_xinfo (x)",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  w.ok("x", "CREATE TABLE p (id INTEGER PRIMARY KEY, v DEFAULT 0)");
  w.ok("x", "CREATE TABLE c (id INTEGER PRIMARY KEY, p REFERENCES p (id) ON UPDATE CASCADE)");
  w.ok("x", "CREATE TRIGGER tr AFTER UPDATE ON p BEGIN SELECT 1; END");
  w.ok("x", "ALTER TABLE c ADD COLUMN z");
  w.ok("x", "DROP TRIGGER tr");
  w.ok("x", "DROP TABLE c");
}

TEST_CASE("hostile: prefix namespaces cannot tie each other's tables (issue 12 #9)") {
  for (bool b_first : {false, true}) {
    CAPTURE(b_first);
    World w;
    w.ok("a", "CREATE TABLE mine (x)");
    if (b_first) w.ok("a_b", "CREATE TABLE q (k INTEGER PRIMARY KEY)");
    // "a" names a_b's table (or the name a_b will take): refused, whether or not it exists yet.
    const std::string before = w.bytes();
    const Answer r = w.run("a", "CREATE TABLE r (k REFERENCES b_q (k))");
    CHECK(r.status == 409);
    CHECK(r.message ==
          "table r would be broken: its foreign key references b_q, which is not a table of this namespace (a "
          "foreign key may only reference a table the namespace already has)");
    CHECK(w.run("a", "CREATE TABLE r2 (k); ALTER TABLE r2 ADD COLUMN j REFERENCES b_q").status == 409);
    CHECK(w.bytes() == before);
    if (!b_first) w.ok("a_b", "CREATE TABLE q (k INTEGER PRIMARY KEY)");
    // a_b keeps full use of its own table.
    w.ok("a_b", "INSERT INTO q VALUES (1), (2)");
    w.ok("a_b", "UPDATE q SET k = 3 WHERE k = 2");
    w.ok("a_b", "DELETE FROM q");
    w.ok("a_b", "DROP TABLE q");
  }
  // References inside one namespace keep working, the table's own name included.
  World w;
  w.ok("a", "CREATE TABLE p (id INTEGER PRIMARY KEY)");
  w.ok("a", "CREATE TABLE tree (id INTEGER PRIMARY KEY, parent REFERENCES tree (id), p REFERENCES p)");
  // A reference to a table the namespace does not have (yet) is refused too: the name could be
  // another namespace's tomorrow.
  CHECK(w.run("a", "CREATE TABLE early (x REFERENCES later (id))").status == 409);
}

TEST_CASE("foreign key actions survive the rewrite and work (issue 12 #10)") {
  World w;
  w.ok("n", "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT UNIQUE)");
  w.ok("n", "CREATE TABLE c (id INTEGER PRIMARY KEY, pname TEXT REFERENCES p (name) ON UPDATE CASCADE ON DELETE "
            "SET NULL MATCH SIMPLE DEFERRABLE INITIALLY DEFERRED)");
  w.ok("n", "CREATE TABLE d (id INTEGER PRIMARY KEY, pid INTEGER, FOREIGN KEY (pid) REFERENCES p (id) ON UPDATE "
            "RESTRICT ON DELETE NO ACTION)");
  w.ok("n", "INSERT INTO p VALUES (1, 'x'); INSERT INTO c VALUES (1, 'x')");
  w.ok("n", "UPDATE p SET name = 'y' WHERE id = 1");
  CHECK(w.run("n", "SELECT pname FROM c").rows == std::vector<std::string>{"y"});
  w.ok("n", "DELETE FROM p");
  CHECK(w.run("n", "SELECT pname IS NULL FROM c").rows == std::vector<std::string>{"1"});
}

TEST_CASE("CTEs, joins and IN over the namespace's own tables keep working after the rewrite") {
  World w;
  w.ok("n", "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b')");
  CHECK(w.run("n", "WITH t AS (SELECT 5 AS k) SELECT k FROM t").rows == std::vector<std::string>{"5"});
  CHECK(w.run("n", "WITH c AS (SELECT 1) SELECT count(*) FROM c").rows == std::vector<std::string>{"1"});
  CHECK(w.run("n", "SELECT count(*) FROM t, (WITH t AS (SELECT 1) SELECT * FROM t)").rows ==
        std::vector<std::string>{"2"});
  CHECK(w.run("n", "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 4) SELECT sum(x) FROM r")
            .rows == std::vector<std::string>{"10"});
  CHECK(w.run("n", "SELECT count(*) FROM (SELECT 1) AS s JOIN t ON 1, t AS u").rows == std::vector<std::string>{"4"});
  w.ok("n", "CREATE TABLE ks (k)");
  w.ok("n", "INSERT INTO ks VALUES (2)");
  CHECK(w.run("n", "SELECT 2 IN ks, 3 IN ks").rows == std::vector<std::string>{"1|0"});
  CHECK(w.run("n", "WITH ks AS (SELECT 2) SELECT v FROM t WHERE k IN ks").rows == std::vector<std::string>{"b"});
  CHECK(w.run("n", "SELECT count(*) FROM t").rows == std::vector<std::string>{"2"});
}
