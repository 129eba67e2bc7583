// Per-namespace quotas (store/quota.h), over the real local backend. KV and R2 are also tested end to
// end in both backends (tests/e2e/test_kv.py, test_r2.py); D1's quota is local-only.
#include <doctest/doctest.h>

#include "store/local/local_backend.h"
#include "store/quota.h"
#include "support.h"
#include "util/error.h"

using namespace era;

namespace {

struct Quota {
  test::TempDir tmp;
  std::unique_ptr<Backend> backend;

  Quota(const std::string& name, QuotaLimits limits) : tmp("quota-" + name) {
    backend = with_quotas(std::make_unique<LocalBackend>(LocalOptions{tmp.str(), {}, {}}), limits);
  }
  ~Quota() { backend->close(); }
};

std::string code_of(const std::function<void()>& f) {
  std::string code;
  const int status = test::status_of(f, &code);
  return status == 200 ? "" : std::to_string(status) + " " + code;
}

SqlStatement st(std::string sql, std::vector<SqlValue> params = {}) {
  SqlStatement s;
  s.sql = std::move(sql);
  s.params = std::move(params);
  return s;
}

}  // namespace

TEST_CASE("quotas are off unless one is set") {
  CHECK_FALSE(QuotaLimits{}.any());
  CHECK(QuotaLimits{0, 0, 1}.any());
}

TEST_CASE("D1 quota: past it, writes are 507 before they run; reads, DELETE and DROP still run") {
  Quota q("d1", {0, 0, 64 * 1024});
  SqlStore& d1 = q.backend->d1();
  int n = 0;
  d1.exec("a", st("CREATE TABLE t (b BLOB)"), n);
  d1.query("a", st("INSERT INTO t VALUES (?)", {SqlBlob{std::string(100000, 'x')}}));  // under: runs, overshoots
  CHECK(code_of([&] { d1.query("a", st("INSERT INTO t VALUES (1)")); }) == "507 quota_exceeded");
  CHECK(code_of([&] { d1.exec("a", st("CREATE TABLE u (x)"), n); }) == "507 quota_exceeded");
  CHECK(code_of([&] { d1.exec("a", st("DELETE FROM t; INSERT INTO t VALUES (1)"), n); }) == "507 quota_exceeded");
  CHECK(code_of([&] { d1.batch("a", {st("SELECT 1"), st("INSERT INTO t VALUES (2)")}); }) == "507 quota_exceeded");
  CHECK(d1.query("a", st("SELECT count(*) FROM t")).rows.at(0).at(0) == SqlValue(int64_t(1)));  // nothing ran
  CHECK(d1.tables("a").size() == 1);
  // Another namespace is not held back.
  d1.exec("b", st("CREATE TABLE t (x)"), n);
  // Freeing space works, and then writes do again.
  d1.query("a", st("DELETE FROM t"));
  d1.query("a", st("INSERT INTO t VALUES (3)"));
  d1.exec("a", st("DROP TABLE t"), n);
}

TEST_CASE("KV and R2 quotas over the local backend: 507, nothing changed, deletes free space") {
  Quota q("kvr2", {100, 100, 0});
  KvStore& kv = q.backend->kv();
  kv.put("a", "k", KvValue{std::string(100, 'v'), std::nullopt, std::nullopt});
  CHECK(code_of([&] { kv.put("a", "k2", KvValue{"v", std::nullopt, std::nullopt}); }) == "507 quota_exceeded");
  CHECK_FALSE(kv.get("a", "k2").has_value());
  kv.put("a", "k", KvValue{std::string(60, 'v'), std::nullopt, std::nullopt});  // replacing frees the old bytes
  kv.put("a", "k2", KvValue{std::string(40, 'v'), std::nullopt, std::nullopt});
  ObjectStore& r2 = q.backend->r2();
  auto put = [&](const std::string& key, size_t size, bool declared) {
    PutOptions o;
    if (declared) o.size = size;
    const std::string bytes(size, 'o');
    return r2.put("a", key, o, [&](const ChunkSink& sink) {
      for (size_t i = 0; i < bytes.size(); i += 7) sink(bytes.data() + i, std::min<size_t>(7, bytes.size() - i));
    });
  };
  put("o", 100, true);
  CHECK(code_of([&] { put("p", 1, true); }) == "507 quota_exceeded");
  CHECK(code_of([&] { put("p", 1, false); }) == "507 quota_exceeded");
  CHECK(code_of([&] { put("o", 101, false); }) == "507 quota_exceeded");
  CHECK(r2.head("a", "o")->size == 100);
  CHECK_FALSE(r2.head("a", "p").has_value());
  r2.remove("a", "o");
  put("p", 100, false);
}
