#include <doctest/doctest.h>

#include <filesystem>
#include <thread>

#include "store/sql/sqlite.h"
#include "support.h"

using namespace era;

TEST_CASE("Writer: a failing job rolls back alone; results come back after commit") {
  const era::test::TempDir tmp("sqlite");
  std::string dir = tmp.str();
  {
    sqlite::Writer w(dir + "/db.sqlite3");
    w.submit([](sqlite::Db& db) { db.exec("CREATE TABLE t (x INTEGER UNIQUE)"); });
    int64_t id = w.submit([](sqlite::Db& db) {
      db.exec("INSERT INTO t VALUES (1)");
      return db.last_insert_rowid();
    });
    CHECK(id == 1);
    CHECK_THROWS_AS(w.submit([](sqlite::Db& db) {
      db.exec("INSERT INTO t VALUES (2)");
      db.exec("INSERT INTO t VALUES (1)");  // UNIQUE violation: the whole job is undone
    }),
                    sqlite::Error);
    std::vector<std::thread> threads;
    for (int i = 10; i < 30; ++i)
      threads.emplace_back([&, i] { w.submit([i](sqlite::Db& db) { db.exec("INSERT INTO t VALUES (" + std::to_string(i) + ")"); }); });
    for (auto& t : threads) t.join();
    sqlite::ReaderPool r(dir + "/db.sqlite3", 1);
    auto db = r.lease();
    sqlite::StmtUse st(db->cached("SELECT count(*), sum(x = 2) FROM t"));
    REQUIRE(st->step());
    CHECK(st->int64(0) == 21);
    CHECK(st->int64(1) == 0);
    w.stop();
    CHECK_THROWS_AS(w.submit([](sqlite::Db&) {}), sqlite::Error);
  }
}
