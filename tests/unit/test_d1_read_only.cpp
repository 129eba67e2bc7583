// SqlStatement::read_only on the local D1 (what a read-only session token gets): statements that
// only read run; one that would write is refused with 403 before it runs, and nothing changes.
#include <doctest/doctest.h>

#include <filesystem>

#include "store/local/local_d1.h"
#include "util/error.h"
#include "support.h"

using era::test::status_of;

using namespace era;

namespace {

struct ReadOnlyFixture {
  era::test::TempDir tmp{"d1ro"};
  std::string dir;
  std::unique_ptr<LocalD1> d1;
  ReadOnlyFixture() {
    dir = tmp.str();
    d1 = std::make_unique<LocalD1>(dir + "/d1", D1Limits{});
    int n = 0;
    d1->exec("app", {"CREATE TABLE t (v TEXT); INSERT INTO t (v) VALUES ('orig')", {}}, n);
  }
  ~ReadOnlyFixture() {
    d1.reset();
  }
  SqlStatement ro(const std::string& sql) {
    SqlStatement s{sql, {}};
    s.read_only = true;
    return s;
  }
  int64_t count() { return std::get<int64_t>(d1->query("app", {"SELECT count(*) FROM t", {}}).rows.at(0).at(0)); }
};


}  // namespace

TEST_CASE("read_only statements: reads run, writes are refused with nothing changed") {
  ReadOnlyFixture f;
  CHECK(f.d1->query("app", f.ro("SELECT v FROM t")).rows.size() == 1);
  int n = 0;
  CHECK(status_of([&] { f.d1->exec("app", f.ro("SELECT 1; SELECT v FROM t"), n); }) == 200);
  CHECK(f.d1->batch("app", {f.ro("SELECT 1"), f.ro("SELECT v FROM t")}).size() == 2);

  std::string code;
  for (const char* sql : {"INSERT INTO t (v) VALUES ('x')", "DELETE FROM t", "UPDATE t SET v = 'x'",
                          "CREATE TABLE u (a)", "DROP TABLE t", "CREATE INDEX ti ON t (v)"}) {
    CAPTURE(sql);
    CHECK(status_of([&] { f.d1->query("app", f.ro(sql)); }, &code) == 403);
    CHECK(code == "read_only_token");
    CHECK(status_of([&] { f.d1->exec("app", f.ro(sql), n); }) == 403);
  }
  // A read before the write in the same call does not let the write through; the batch is all or nothing.
  CHECK(status_of([&] { f.d1->exec("app", f.ro("SELECT 1; INSERT INTO t (v) VALUES ('x')"), n); }) == 403);
  CHECK(status_of([&] { f.d1->batch("app", {f.ro("SELECT 1"), f.ro("INSERT INTO t (v) VALUES ('x')")}); }) == 403);
  CHECK(f.count() == 1);
  CHECK(f.d1->tables("app").size() == 1);
  // Without read_only the same write goes through (so the refusals above are the flag's doing).
  f.d1->exec("app", {"INSERT INTO t (v) VALUES ('x')", {}}, n);
  CHECK(f.count() == 2);
}
