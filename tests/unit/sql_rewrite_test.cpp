#include <doctest/doctest.h>

#include "ns/sql_rewrite.h"
#include "util/error.h"

using era::sql::rewrite;

namespace {
std::string rw(std::string_view sql, std::string_view ns = "app") {
  return rewrite(sql, ns, [] { return std::vector<std::string>{"app_t"}; }).sql;
}
}  // namespace

TEST_CASE("every place a table, index, view or trigger name stands is prefixed") {
  struct Case {
    const char* in;
    const char* out;
  };
  const Case cases[] = {
      {"SELECT * FROM todos", "SELECT * FROM \"app_todos\" AS \"todos\""},
      {"select * from todos t where t.id = 1", "select * from \"app_todos\" t where t.id = 1"},
      {"SELECT * FROM todos AS t", "SELECT * FROM \"app_todos\" AS t"},
      {"SELECT posts.title, comments.content FROM comments JOIN posts ON posts.id = comments.post_id",
       "SELECT posts.title, comments.content FROM \"app_comments\" AS \"comments\" JOIN \"app_posts\" AS \"posts\" "
       "ON posts.id = comments.post_id"},
      {"SELECT * FROM a, b, c WHERE a.x = b.y",
       "SELECT * FROM \"app_a\" AS \"a\", \"app_b\" AS \"b\", \"app_c\" AS \"c\" WHERE a.x = b.y"},
      {"SELECT * FROM a LEFT OUTER JOIN b USING (id) NATURAL JOIN c",
       "SELECT * FROM \"app_a\" AS \"a\" LEFT OUTER JOIN \"app_b\" AS \"b\" USING (id) NATURAL JOIN \"app_c\" AS \"c\""},
      {"SELECT (SELECT max(id) FROM t2) AS m FROM t1",
       "SELECT (SELECT max(id) FROM \"app_t2\" AS \"t2\") AS m FROM \"app_t1\" AS \"t1\""},
      {"SELECT * FROM (SELECT * FROM t) sub", "SELECT * FROM (SELECT * FROM \"app_t\" AS \"t\") sub"},
      {"SELECT * FROM (a JOIN b ON a.id = b.id)",
       "SELECT * FROM (\"app_a\" AS \"a\" JOIN \"app_b\" AS \"b\" ON a.id = b.id)"},
      {"SELECT * FROM t WHERE x IN (SELECT y FROM u)",
       "SELECT * FROM \"app_t\" AS \"t\" WHERE x IN (SELECT y FROM \"app_u\" AS \"u\")"},
      {"INSERT INTO todos (title) VALUES (?)", "INSERT INTO \"app_todos\" AS \"todos\" (title) VALUES (?)"},
      {"INSERT OR REPLACE INTO t VALUES (1)", "INSERT OR REPLACE INTO \"app_t\" AS \"t\" VALUES (1)"},
      {"REPLACE INTO t DEFAULT VALUES", "REPLACE INTO \"app_t\" AS \"t\" DEFAULT VALUES"},
      {"INSERT INTO t SELECT * FROM u", "INSERT INTO \"app_t\" AS \"t\" SELECT * FROM \"app_u\" AS \"u\""},
      {"INSERT INTO t(k, v) VALUES (1, 2) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
       "INSERT INTO \"app_t\" AS \"t\"(k, v) VALUES (1, 2) ON CONFLICT(k) DO UPDATE SET v = excluded.v"},
      {"UPDATE todos SET completed = 1 WHERE id = ?",
       "UPDATE \"app_todos\" AS \"todos\" SET completed = 1 WHERE id = ?"},
      {"UPDATE OR IGNORE t SET a = b.c FROM b WHERE t.id = b.id",
       "UPDATE OR IGNORE \"app_t\" AS \"t\" SET a = b.c FROM \"app_b\" AS \"b\" WHERE t.id = b.id"},
      {"DELETE FROM todos WHERE id = 1", "DELETE FROM \"app_todos\" AS \"todos\" WHERE id = 1"},
      {"CREATE TABLE IF NOT EXISTS todos (id INTEGER PRIMARY KEY)",
       "CREATE TABLE IF NOT EXISTS \"app_todos\" (id INTEGER PRIMARY KEY)"},
      {"CREATE TABLE c (p INTEGER REFERENCES posts(id), FOREIGN KEY (p) REFERENCES posts (id))",
       "CREATE TABLE \"app_c\" (p INTEGER REFERENCES \"app_posts\"(id), FOREIGN KEY (p) REFERENCES \"app_posts\" (id))"},
      {"CREATE TABLE t2 AS SELECT * FROM t1", "CREATE TABLE \"app_t2\" AS SELECT * FROM \"app_t1\" AS \"t1\""},
      {"DROP TABLE IF EXISTS todos", "DROP TABLE IF EXISTS \"app_todos\""},
      {"ALTER TABLE t RENAME TO u", "ALTER TABLE \"app_t\" RENAME TO \"app_u\""},
      {"ALTER TABLE t RENAME COLUMN a TO b", "ALTER TABLE \"app_t\" RENAME COLUMN a TO b"},
      {"ALTER TABLE t RENAME a TO b", "ALTER TABLE \"app_t\" RENAME a TO b"},
      {"ALTER TABLE t ADD COLUMN p REFERENCES q(id)",
       "ALTER TABLE \"app_t\" ADD COLUMN p REFERENCES \"app_q\"(id)"},
      {"CREATE UNIQUE INDEX IF NOT EXISTS idx ON t (a, b)",
       "CREATE UNIQUE INDEX IF NOT EXISTS \"app_idx\" ON \"app_t\" (a, b)"},
      {"DROP INDEX idx", "DROP INDEX \"app_idx\""},
      {"SELECT * FROM t INDEXED BY idx", "SELECT * FROM \"app_t\" AS \"t\" INDEXED BY \"app_idx\""},
      {"CREATE VIEW v AS SELECT id FROM t", "CREATE VIEW \"app_v\" AS SELECT id FROM \"app_t\" AS \"t\""},
      {"DROP VIEW IF EXISTS v", "DROP VIEW IF EXISTS \"app_v\""},
      {"REINDEX idx", "REINDEX \"app_idx\""},
      {"REINDEX nocase", "REINDEX nocase"},
      {"PRAGMA table_info(todos)", "PRAGMA table_info(\"app_todos\")"},
      {"PRAGMA index_list('todos')", "PRAGMA index_list(\"app_todos\")"},
      {"PRAGMA foreign_keys = ON", "PRAGMA foreign_keys = ON"},
      {"SELECT * FROM json_each(?)", "SELECT * FROM json_each(?)"},
      {"SELECT 1 FROM t WHERE a IS NOT DISTINCT FROM b",
       "SELECT 1 FROM \"app_t\" AS \"t\" WHERE a IS NOT DISTINCT FROM b"},
      {"SELECT * FROM main.t", "SELECT * FROM main.\"app_t\" AS \"t\""},
      {"SELECT * FROM 'quoted'", "SELECT * FROM \"app_quoted\" AS \"quoted\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(rw(c.in) == c.out);
  }
}

TEST_CASE("all four quoting styles map to one double-quoted physical name") {
  CHECK(rw("SELECT * FROM \"my table\"") == "SELECT * FROM \"app_my table\" AS \"my table\"");
  CHECK(rw("SELECT * FROM [my table]") == "SELECT * FROM \"app_my table\" AS \"my table\"");
  CHECK(rw("SELECT * FROM `my table`") == "SELECT * FROM \"app_my table\" AS \"my table\"");
  CHECK(rw("SELECT * FROM \"q\"\"t\"") == "SELECT * FROM \"app_q\"\"t\" AS \"q\"\"t\"");
  // A namespace with '-' still yields one valid identifier.
  CHECK(rw("SELECT * FROM t", "my-app") == "SELECT * FROM \"my-app_t\" AS \"t\"");
}

TEST_CASE("CTE names are prefixed like tables; aliases, columns, strings, comments and parameters are left alone") {
  CHECK(rw("WITH recent AS (SELECT * FROM posts) SELECT * FROM recent") ==
        "WITH \"app_recent\" AS (SELECT * FROM \"app_posts\" AS \"posts\") SELECT * FROM \"app_recent\" AS \"recent\"");
  CHECK(rw("WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt LIMIT 5) SELECT x FROM cnt") ==
        "WITH RECURSIVE \"app_cnt\"(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM \"app_cnt\" AS \"cnt\" LIMIT 5) "
        "SELECT x FROM \"app_cnt\" AS \"cnt\"");
  CHECK(rw("WITH a AS (SELECT 1), b AS MATERIALIZED (SELECT 2) SELECT * FROM a, b, c") ==
        "WITH \"app_a\" AS (SELECT 1), \"app_b\" AS MATERIALIZED (SELECT 2) SELECT * FROM \"app_a\" AS \"a\", "
        "\"app_b\" AS \"b\", \"app_c\" AS \"c\"");
  CHECK(rw("SELECT 'FROM other' AS x, \"from\" FROM t -- FROM evil\n") ==
        "SELECT 'FROM other' AS x, \"from\" FROM \"app_t\" AS \"t\" -- FROM evil\n");
  CHECK(rw("SELECT /* FROM x */ a FROM t WHERE b = :name AND c = @c AND d = $d AND e = ?3") ==
        "SELECT /* FROM x */ a FROM \"app_t\" AS \"t\" WHERE b = :name AND c = @c AND d = $d AND e = ?3");
  CHECK(rw("SELECT a, b FROM t ORDER BY a, b LIMIT 1, 2") ==
        "SELECT a, b FROM \"app_t\" AS \"t\" ORDER BY a, b LIMIT 1, 2");
  CHECK(rw("SELECT x'00' FROM t") == "SELECT x'00' FROM \"app_t\" AS \"t\"");
}

TEST_CASE("no table position is left unprefixed (issue 12 #6 and its variants)") {
  struct Case {
    const char* in;
    const char* out;
  };
  const Case cases[] = {
      // FROM items after a join constraint.
      {"SELECT count(*) FROM (SELECT 1) AS s JOIN mine ON 1, victim_secret",
       "SELECT count(*) FROM (SELECT 1) AS s JOIN \"app_mine\" AS \"mine\" ON 1, \"app_victim_secret\" AS "
       "\"victim_secret\""},
      {"SELECT * FROM a JOIN b USING (id), c", "SELECT * FROM \"app_a\" AS \"a\" JOIN \"app_b\" AS \"b\" USING (id), "
                                               "\"app_c\" AS \"c\""},
      {"SELECT * FROM a JOIN b ON a.x IN (1, 2) AND f(a.y, b.y), c, d",
       "SELECT * FROM \"app_a\" AS \"a\" JOIN \"app_b\" AS \"b\" ON a.x IN (1, 2) AND f(a.y, b.y), \"app_c\" AS \"c\", "
       "\"app_d\" AS \"d\""},
      {"SELECT * FROM (a JOIN b ON 1, c) JOIN d ON 1, e",
       "SELECT * FROM (\"app_a\" AS \"a\" JOIN \"app_b\" AS \"b\" ON 1, \"app_c\" AS \"c\") JOIN \"app_d\" AS \"d\" ON 1, "
       "\"app_e\" AS \"e\""},
      // A CTE of an inner scope does not hide an outer table of the same name.
      {"SELECT count(*) FROM victim, (WITH victim AS (SELECT 1) SELECT * FROM victim)",
       "SELECT count(*) FROM \"app_victim\" AS \"victim\", (WITH \"app_victim\" AS (SELECT 1) SELECT * FROM "
       "\"app_victim\" AS \"victim\")"},
      {"SELECT * FROM (WITH a AS (SELECT 1), b AS (SELECT 2) SELECT * FROM a, b)",
       "SELECT * FROM (WITH \"app_a\" AS (SELECT 1), \"app_b\" AS (SELECT 2) SELECT * FROM \"app_a\" AS \"a\", "
       "\"app_b\" AS \"b\")"},
      // 'string' and every quoting style in every position.
      {"SELECT * FROM a JOIN 'victim' ON 1", "SELECT * FROM \"app_a\" AS \"a\" JOIN \"app_victim\" AS \"victim\" ON 1"},
      {"INSERT INTO 'victim' VALUES (1)", "INSERT INTO \"app_victim\" AS \"victim\" VALUES (1)"},
      {"DELETE FROM 'victim'", "DELETE FROM \"app_victim\" AS \"victim\""},
      {"CREATE TABLE 'x' (a REFERENCES 'y')", "CREATE TABLE \"app_x\" (a REFERENCES \"app_y\")"},
      // A table as an operand of IN: prefixed, never aliased.
      {"SELECT 1 WHERE 2 IN victim_secret", "SELECT 1 WHERE 2 IN \"app_victim_secret\""},
      {"SELECT 1 WHERE 2 NOT IN main.'victim'", "SELECT 1 WHERE 2 NOT IN main.\"app_victim\""},
      {"SELECT 1 FROM t WHERE x IN [v] AND y IN (1, 2) AND z IN (SELECT a FROM u)",
       "SELECT 1 FROM \"app_t\" AS \"t\" WHERE x IN \"app_v\" AND y IN (1, 2) AND z IN (SELECT a FROM \"app_u\" AS "
       "\"u\")"},
      {"SELECT 1 WHERE 2 IN json_each('[2]')", "SELECT 1 WHERE 2 IN json_each('[2]')"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(rw(c.in) == c.out);
  }
  CHECK_THROWS_AS(rw("SELECT 1 WHERE 'x' IN sqlite_master"), era::ApiError);
  CHECK_THROWS_AS(rw("SELECT 1 WHERE 'x' IN 'sqlite_schema'"), era::ApiError);
}

TEST_CASE("foreign key clauses keep their actions (issue 12 #10 and the clause's other keywords)") {
  struct Case {
    const char* in;
    const char* out;
  };
  const Case cases[] = {
      {"CREATE TABLE c (p INTEGER REFERENCES t(id) ON UPDATE CASCADE)",
       "CREATE TABLE \"app_c\" (p INTEGER REFERENCES \"app_t\"(id) ON UPDATE CASCADE)"},
      {"CREATE TABLE c (p REFERENCES t ON DELETE CASCADE ON UPDATE SET NULL MATCH SIMPLE DEFERRABLE INITIALLY DEFERRED)",
       "CREATE TABLE \"app_c\" (p REFERENCES \"app_t\" ON DELETE CASCADE ON UPDATE SET NULL MATCH SIMPLE DEFERRABLE "
       "INITIALLY DEFERRED)"},
      {"CREATE TABLE c (p, q, FOREIGN KEY (p, q) REFERENCES t (a, b) ON UPDATE RESTRICT ON DELETE NO ACTION)",
       "CREATE TABLE \"app_c\" (p, q, FOREIGN KEY (p, q) REFERENCES \"app_t\" (a, b) ON UPDATE RESTRICT ON DELETE NO "
       "ACTION)"},
      {"CREATE TABLE c (p REFERENCES t ON UPDATE NO ACTION, q UNIQUE ON CONFLICT REPLACE, r REFERENCES u ON UPDATE "
       "SET DEFAULT NOT DEFERRABLE)",
       "CREATE TABLE \"app_c\" (p REFERENCES \"app_t\" ON UPDATE NO ACTION, q UNIQUE ON CONFLICT REPLACE, r REFERENCES "
       "\"app_u\" ON UPDATE SET DEFAULT NOT DEFERRABLE)"},
      {"ALTER TABLE c ADD COLUMN z REFERENCES t ON UPDATE CASCADE",
       "ALTER TABLE \"app_c\" ADD COLUMN z REFERENCES \"app_t\" ON UPDATE CASCADE"},
      {"CREATE TRIGGER tr AFTER UPDATE ON t BEGIN UPDATE u SET a = 1; END",
       "CREATE TRIGGER \"app_tr\" AFTER UPDATE ON \"app_t\" BEGIN UPDATE \"app_u\" SET a = 1; END"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(rw(c.in) == c.out);
  }
}

TEST_CASE("trigger bodies: prefixed, without aliases on INSERT/UPDATE/DELETE targets") {
  CHECK(rw("CREATE TRIGGER tr AFTER INSERT ON posts BEGIN "
           "INSERT INTO log (id) VALUES (new.id); UPDATE stats SET n = n + 1; DELETE FROM old WHERE id = new.id; "
           "SELECT CASE WHEN 1 THEN 2 END FROM x; END; SELECT 1 FROM y") ==
        "CREATE TRIGGER \"app_tr\" AFTER INSERT ON \"app_posts\" BEGIN "
        "INSERT INTO \"app_log\" (id) VALUES (new.id); UPDATE \"app_stats\" SET n = n + 1; "
        "DELETE FROM \"app_old\" WHERE id = new.id; SELECT CASE WHEN 1 THEN 2 END FROM \"app_x\" AS \"x\"; END; "
        "SELECT 1 FROM \"app_y\" AS \"y\"");
  CHECK(rw("CREATE TRIGGER IF NOT EXISTS tr BEFORE UPDATE OF a, b ON t FOR EACH ROW WHEN new.a > 0 BEGIN "
           "SELECT RAISE(ABORT, 'no'); END") ==
        "CREATE TRIGGER IF NOT EXISTS \"app_tr\" BEFORE UPDATE OF a, b ON \"app_t\" FOR EACH ROW WHEN new.a > 0 "
        "BEGIN SELECT RAISE(ABORT, 'no'); END");
  CHECK(rw("DROP TRIGGER tr") == "DROP TRIGGER \"app_tr\"");
}

TEST_CASE("statements are counted, trigger bodies included in theirs") {
  auto r = rewrite("CREATE TABLE a(x); INSERT INTO a VALUES (1);; -- done\n", "n", nullptr);
  CHECK(r.statements == 2);
  r = rewrite("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END; SELECT 3", "n", nullptr);
  CHECK(r.statements == 2);
  CHECK(rewrite("  /* only a comment */ ", "n", nullptr).statements == 0);
}

TEST_CASE("sqlite_master reads show only the namespace's objects, by their own names") {
  auto r = rewrite("SELECT name FROM sqlite_master WHERE type = 'table'", "app",
                   [] { return std::vector<std::string>{"app_t", "app_it's"}; });
  CHECK(r.reads_schema);
  CHECK(r.sql ==
        "SELECT name FROM (SELECT type, substr(name, 5) AS name, substr(tbl_name, 5) AS tbl_name, rootpage, sql "
        "FROM main.sqlite_master WHERE name IN ('app_t','app_it''s')) AS \"sqlite_master\" WHERE type = 'table'");
  r = rewrite("SELECT name FROM main.SQLITE_SCHEMA s", "app", [] { return std::vector<std::string>{}; });
  CHECK(r.sql ==
        "SELECT name FROM (SELECT type, substr(name, 5) AS name, substr(tbl_name, 5) AS tbl_name, rootpage, sql "
        "FROM main.sqlite_master WHERE 0) s");
  // Anywhere else the schema table is refused.
  CHECK_THROWS_AS(rw("SELECT (sqlite_master) FROM t"), era::ApiError);
  CHECK_THROWS_AS(rw("SELECT * FROM t WHERE x IN \"sqlite_master\""), era::ApiError);
  // In a write position it is just another user name: prefixed.
  CHECK(rw("INSERT INTO sqlite_master VALUES (1)") == "INSERT INTO \"app_sqlite_master\" AS \"sqlite_master\" VALUES (1)");
}

TEST_CASE("error messages show the user's names") {
  using era::sql::user_message;
  CHECK(user_message("no such table: myapp_todos", "myapp") == "no such table: todos");
  // One form for "no such ...": no "main.", lower case (the guard's denials of foreign names read the same).
  CHECK(user_message("no such table: main.MYAPP_todos", "myapp") == "no such table: todos");
  CHECK(user_message("no such table: MYAPP_Todos", "myapp") == "no such table: todos");
  CHECK(user_message("no such index: main.myapp_I", "myapp") == "no such index: i");
  CHECK(user_message("view v would be broken: no such table: main.myapp_B_Q", "myapp") ==
        "view v would be broken: no such table: b_q");
  CHECK(user_message("table \"myapp_t\" already exists", "myapp") == "table \"t\" already exists");
  CHECK(user_message("no such column: xmyapp_y", "myapp") == "no such column: xmyapp_y");
}
