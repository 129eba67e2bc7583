// Contract suites: the promises each store interface makes (the comments in store/*.h), checked through
// the interfaces only — KvStore&, ObjectStore&, SqlStore&, ResourceRegistry& — against whichever backend
// the configuration names. ctest runs them twice: `contract_local` (the embedded backend in a temporary
// data dir) and `contract_cloudflare` (under tests/e2e/with_emulator.py, which points ERA_PROXY_BACKEND
// and every ERA_CF_* setting at Cloudflare's emulator). The plain unit run leaves them out (-tse=contract).
//
// Every test uses namespaces of its own (a random suffix), so a run against a shared emulator starts
// from nothing that another test left.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "app/backends.h"
#include "config/config.h"
#include "support.h"
#include "util/md5.h"

using namespace era;
using era::test::status_of;

namespace {

std::string suffix() {
  static std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(hex[rng() % 16]);
  return s;
}

// The backend the environment names (local unless ERA_PROXY_BACKEND says otherwise), on a fresh
// data dir. Opened once per test: the cloudflare backend starts background work that close() ends.
struct Contract {
  era::test::TempDir tmp{"contract"};
  std::unique_ptr<Backend> backend;
  std::string run = suffix();

  Contract() : Contract(std::string()) {}
  // `data_dir` "": its own fresh one; else a second instance on another's data (a second replica).
  explicit Contract(const std::string& data_dir) {
    FlagValues flags{{"data-dir", data_dir.empty() ? tmp.str() : data_dir}};
    Config config = load_config("", flags, [](const char* name) { return std::getenv(name); });
    backend = open_backend(config);
  }
  ~Contract() {
    if (backend) backend->close();
  }
  bool cloudflare() const {
    const char* b = std::getenv("ERA_PROXY_BACKEND");
    return b && std::string(b) == "cloudflare";
  }
  std::string ns(const std::string& base) const { return base + "_" + run; }
  KvStore& kv() { return backend->kv(); }
  ObjectStore& r2() { return backend->r2(); }
  SqlStore& d1() { return backend->d1(); }
  ResourceRegistry& registry() { return backend->registry(); }
};

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

ChunkSource chunks(const std::string& data, size_t chunk = 1000) {
  return [data, chunk](const ChunkSink& sink) {
    for (size_t i = 0; i < data.size(); i += chunk)
      if (!sink(data.data() + i, std::min(chunk, data.size() - i))) return;
  };
}

std::string read_all(ObjectReader& r) {
  std::string out, buf(4096, '\0');
  while (size_t n = r.read(buf.data(), buf.size())) out.append(buf.data(), n);
  return out;
}

std::vector<std::string> kv_names(KvStore& kv, const std::string& ns, const std::string& prefix, int limit) {
  std::vector<std::string> out;
  std::string cursor;
  for (int pages = 0; pages < 1000; ++pages) {
    KvPage p = kv.list(ns, prefix, limit, cursor);
    CHECK(int(p.keys.size()) <= limit);
    for (auto& k : p.keys) out.push_back(k.name);
    if (p.complete) {
      CHECK(p.cursor.empty());
      return out;
    }
    REQUIRE_FALSE(p.cursor.empty());
    cursor = p.cursor;
  }
  FAIL("the listing never completed");
  return out;
}

int64_t int_of(const SqlValue& v) { return std::get<int64_t>(v); }

}  // namespace

TEST_SUITE("contract") {

// ---------------------------------------------------------------- KvStore

TEST_CASE("KvStore: values are bytes; put replaces value, metadata and expiration together") {
  Contract c;
  const std::string ns = c.ns("kv");
  const int64_t later = int64_t(std::time(nullptr)) + 3600;
  c.kv().put(ns, "k", {all_bytes(), std::string("{\"a\":1}"), later});
  auto v = c.kv().get(ns, "k");
  REQUIRE(v);
  CHECK(v->value == all_bytes());
  CHECK(v->metadata == std::string("{\"a\":1}"));
  CHECK(v->expiration == later);
  c.kv().put(ns, "k", {"second", std::nullopt, std::nullopt});
  v = c.kv().get(ns, "k");
  REQUIRE(v);
  CHECK(v->value == "second");
  CHECK_FALSE(v->metadata);
  CHECK_FALSE(v->expiration);
  c.kv().put(ns, "empty", {"", std::nullopt, std::nullopt});
  REQUIRE(c.kv().get(ns, "empty"));
  CHECK(c.kv().get(ns, "empty")->value.empty());
}

TEST_CASE("KvStore: another instance of the backend (no shared memory) reads value, metadata and expiration") {
  Contract c;
  const std::string ns = c.ns("kvx");
  const int64_t later = int64_t(std::time(nullptr)) + 7200;
  c.kv().put(ns, "text", {"plain text ✓", std::string("{\"m\":[1,2]}"), later});
  c.kv().put(ns, "bytes", {all_bytes(), std::nullopt, std::nullopt});
  if (!c.cloudflare()) {
    // Local: one process at a time owns a data dir (store/local/dir_lock.h), so a second instance is
    // refused while the first is open; it reads everything once the first has closed.
    std::string refused;
    try {
      Contract second(c.tmp.str());
    } catch (const std::runtime_error& e) {
      refused = e.what();
    }
    CHECK(refused.find("is in use by another era-storage-proxy") != std::string::npos);
    c.backend->close();
    c.backend.reset();
  }
  Contract other(c.tmp.str());
  auto t = other.kv().get(ns, "text");
  REQUIRE(t);
  CHECK(t->value == "plain text ✓");
  CHECK(t->metadata == std::string("{\"m\":[1,2]}"));
  CHECK(t->expiration == later);
  auto b = other.kv().get(ns, "bytes");
  REQUIRE(b);
  CHECK(b->value == all_bytes());
  CHECK_FALSE(b->metadata);
  other.kv().remove(ns, "text");
  CHECK_FALSE(other.kv().get(ns, "text"));  // the writer sees its delete at once
}

TEST_CASE("KvStore: a missing key is none; deleting it is not an error") {
  Contract c;
  const std::string ns = c.ns("kv");
  CHECK_FALSE(c.kv().get(ns, "missing"));
  CHECK_NOTHROW(c.kv().remove(ns, "missing"));
  c.kv().put(ns, "k", {"v", std::nullopt, std::nullopt});
  c.kv().remove(ns, "k");
  CHECK_FALSE(c.kv().get(ns, "k"));
  CHECK(kv_names(c.kv(), ns, "", 10).empty());
}

TEST_CASE("KvStore: cached() answers exactly as get() would at that moment, or not at all") {
  Contract c;
  const std::string ns = c.ns("kvc");
  const int64_t later = int64_t(std::time(nullptr)) + 7200;
  // Whatever the store keeps in memory, a cached answer is never older than an acknowledged write.
  auto same_as_get = [&](const std::string& key) {
    std::optional<KvValue> cached;
    if (!c.kv().cached(ns, key, cached)) return;
    auto got = c.kv().get(ns, key);
    REQUIRE(cached.has_value() == got.has_value());
    if (!got) return;
    CHECK(cached->value == got->value);
    CHECK(cached->metadata == got->metadata);
    CHECK(cached->expiration == got->expiration);
  };
  c.kv().put(ns, "k", {"one", std::string("{\"v\":1}"), later});
  c.kv().get(ns, "k");
  same_as_get("k");
  c.kv().put(ns, "k", {"two", std::nullopt, std::nullopt});
  same_as_get("k");
  CHECK(c.kv().get(ns, "k")->value == "two");
  same_as_get("k");
  c.kv().remove(ns, "k");
  same_as_get("k");
  CHECK_FALSE(c.kv().get(ns, "k"));
  same_as_get("k");
  std::optional<KvValue> none;
  if (c.kv().cached(ns, "never-written", none)) CHECK_FALSE(none);
  // Another namespace's entry is never an answer.
  c.kv().put(ns, "mine", {"x", std::nullopt, std::nullopt});
  c.kv().get(ns, "mine");
  std::optional<KvValue> other;
  if (c.kv().cached(c.ns("kvd"), "mine", other)) CHECK_FALSE(other);
}

TEST_CASE("KvStore: under concurrent readers, no read returns less than a write acknowledged before it began") {
  Contract c;
  const std::string ns = c.ns("kvr");
  // Cloudflare spaces writes to one key (cloudflare.kv_same_key_interval_ms): a few suffice there.
  const int writes = c.cloudflare() ? 3 : 200;
  c.kv().put(ns, "hot", {"0", std::nullopt, std::nullopt});
  std::atomic<int> acked{0}, stale{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&, t] {
      while (!stop.load()) {
        const int floor = acked.load();
        std::optional<KvValue> v;
        if (t % 2 == 0 || !c.kv().cached(ns, "hot", v)) v = c.kv().get(ns, "hot");
        if (!v || std::stoi(v->value) < floor) stale.fetch_add(1);
        if (c.cloudflare()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  for (int i = 1; i <= writes; ++i) {
    c.kv().put(ns, "hot", {std::to_string(i), std::nullopt, std::nullopt});
    acked.store(i);
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  CHECK(stale.load() == 0);
  CHECK(c.kv().get(ns, "hot")->value == std::to_string(writes));
}

TEST_CASE("KvStore: namespaces never see each other's keys, prefixes of each other included") {
  Contract c;
  const std::string a = c.ns("a"), ab = c.ns("a") + "_b";
  c.kv().put(a, "b_k", {"in a", std::nullopt, std::nullopt});
  c.kv().put(ab, "k", {"in a_b", std::nullopt, std::nullopt});
  CHECK(c.kv().get(a, "b_k")->value == "in a");
  CHECK(c.kv().get(ab, "k")->value == "in a_b");
  CHECK_FALSE(c.kv().get(ab, "b_k"));
  CHECK_FALSE(c.kv().get(a, "k"));
  CHECK(kv_names(c.kv(), a, "", 100) == std::vector<std::string>{"b_k"});
  CHECK(kv_names(c.kv(), ab, "", 100) == std::vector<std::string>{"k"});
  c.kv().remove(a, "b_k");
  CHECK(c.kv().get(ab, "k"));
}

TEST_CASE("KvStore: list is in byte order, honours prefix and limit, and pages without skips or repeats") {
  Contract c;
  const std::string ns = c.ns("kvl");
  std::vector<std::string> names;
  for (int i = 0; i < 23; ++i) names.push_back("p:" + std::string(1, char('a' + i)) + std::to_string(i));
  names.push_back("p:\xc3\xa9");  // UTF-8 sorts after ASCII by bytes
  names.push_back("q:other");
  for (const auto& n : names) c.kv().put(ns, n, {"v", std::nullopt, std::nullopt});
  std::vector<std::string> want(names.begin(), names.end() - 1);
  std::sort(want.begin(), want.end());
  CHECK(kv_names(c.kv(), ns, "p:", 5) == want);
  CHECK(kv_names(c.kv(), ns, "p:", 1000) == want);
  KvPage first = c.kv().list(ns, "", 3, "");
  CHECK(first.keys.size() == 3);
  CHECK_FALSE(first.complete);
  // Writes during the walk: keys present for the whole walk are each seen exactly once.
  std::vector<std::string> seen;
  std::string cursor;
  int step = 0;
  for (;;) {
    KvPage p = c.kv().list(ns, "p:", 4, cursor);
    for (auto& k : p.keys) seen.push_back(k.name);
    c.kv().put(ns, "p:zz-new" + std::to_string(step++), {"v", std::nullopt, std::nullopt});
    if (p.complete) break;
    cursor = p.cursor;
    REQUIRE(step < 100);
  }
  for (const auto& n : want) CHECK_MESSAGE(std::count(seen.begin(), seen.end(), n) == 1, n);
}

// ---------------------------------------------------------------- ObjectStore

TEST_CASE("ObjectStore: streamed put and get are byte-exact; etag is the MD5; type and metadata kept") {
  Contract c;
  const std::string ns = c.ns("r2");
  std::string data;
  for (int i = 0; i < 300; ++i) data += all_bytes();
  PutOptions o;
  o.content_type = "image/png";
  o.custom_metadata = {{"user_id", "123"}, {"empty", ""}};
  o.size = data.size();
  ObjectInfo info = c.r2().put(ns, "dir/a.bin", o, chunks(data, 777));
  CHECK(info.size == data.size());
  CHECK(info.etag == Md5::hex_of(data));
  auto r = c.r2().get(ns, "dir/a.bin");
  REQUIRE(r);
  CHECK(r->has_body());
  CHECK(read_all(*r) == data);
  auto h = c.r2().head(ns, "dir/a.bin");
  REQUIRE(h);
  CHECK(h->content_type == "image/png");
  CHECK(h->custom_metadata == o.custom_metadata);
  CHECK(h->etag == info.etag);
  CHECK_FALSE(c.r2().get(ns, "dir/missing"));
  CHECK_FALSE(c.r2().head(ns, "dir/missing"));
}

TEST_CASE("ObjectStore: a failed put stores nothing and keeps the previous object") {
  Contract c;
  const std::string ns = c.ns("r2f");
  c.r2().put(ns, "k", {}, chunks("old"));
  CHECK_THROWS(c.r2().put(ns, "k", {}, [](const ChunkSink& sink) {
    sink("new-part", 8);
    throw std::runtime_error("the client went away");
  }));
  PutOptions sized;
  sized.size = 10;
  CHECK(status_of([&] { c.r2().put(ns, "k", sized, chunks("short")); }) == 400);
  auto r = c.r2().get(ns, "k");
  REQUIRE(r);
  CHECK(read_all(*r) == "old");
  CHECK_THROWS(c.r2().put(ns, "fresh", {}, [](const ChunkSink&) { throw std::runtime_error("nothing"); }));
  CHECK_FALSE(c.r2().head(ns, "fresh"));
}

TEST_CASE("ObjectStore: preconditions are compare-and-swap; a failed one is 412 and changes nothing") {
  Contract c;
  const std::string ns = c.ns("r2p");
  PutOptions create_only;
  create_only.precondition.if_none_match = std::vector<std::string>{"*"};
  ObjectInfo first = c.r2().put(ns, "k", create_only, chunks("one"));
  CHECK(status_of([&] { c.r2().put(ns, "k", create_only, chunks("two")); }) == 412);
  PutOptions match;
  match.precondition.if_match = std::vector<std::string>{"0123456789abcdef0123456789abcdef"};
  CHECK(status_of([&] { c.r2().put(ns, "k", match, chunks("three")); }) == 412);
  match.precondition.if_match = std::vector<std::string>{first.etag};
  CHECK(c.r2().put(ns, "k", match, chunks("four")).etag == Md5::hex_of("four"));
  auto r = c.r2().get(ns, "k");
  REQUIRE(r);
  CHECK(read_all(*r) == "four");
  GetOptions cond;
  cond.only_if.if_match = std::vector<std::string>{first.etag};  // no longer current
  auto nobody = c.r2().get(ns, "k", cond);
  REQUIRE(nobody);
  CHECK_FALSE(nobody->has_body());
  CHECK(nobody->info().etag == Md5::hex_of("four"));
}

TEST_CASE("ObjectStore: ranges (offset, length, suffix); one past the end is 416") {
  Contract c;
  const std::string ns = c.ns("r2r");
  const std::string data = "0123456789";
  c.r2().put(ns, "k", {}, chunks(data));
  auto ranged = [&](ByteRange br) {
    GetOptions g;
    g.range = br;
    auto r = c.r2().get(ns, "k", g);
    REQUIRE(r);
    return read_all(*r);
  };
  CHECK(ranged({2, 3, std::nullopt}) == "234");
  CHECK(ranged({7, std::nullopt, std::nullopt}) == "789");
  CHECK(ranged({8, 100, std::nullopt}) == "89");
  CHECK(ranged({std::nullopt, std::nullopt, 4}) == "6789");
  std::string code;
  CHECK(status_of([&] { ranged({10, std::nullopt, std::nullopt}); }, &code) == 416);
  CHECK(code == "range_not_satisfiable");
}

TEST_CASE("ObjectStore: list in byte order with delimiter roll-up and paging; namespaces apart") {
  Contract c;
  const std::string ns = c.ns("r2l"), other = c.ns("r2l") + "x";
  for (const std::string k : {"a/1", "a/2", "a/b/3", "b", "c/4", "c/5"}) c.r2().put(ns, k, {}, chunks(k));
  c.r2().put(other, "a/9", {}, chunks("x"));
  ListOptions lo;
  lo.delimiter = "/";
  ObjectPage top = c.r2().list(ns, lo);
  std::vector<std::string> keys;
  for (auto& o : top.objects) keys.push_back(o.key);
  CHECK(keys == std::vector<std::string>{"b"});
  CHECK(top.delimited_prefixes == std::vector<std::string>{"a/", "c/"});
  lo.prefix = "a/";
  ObjectPage in_a = c.r2().list(ns, lo);
  keys.clear();
  for (auto& o : in_a.objects) keys.push_back(o.key);
  CHECK(keys == std::vector<std::string>{"a/1", "a/2"});
  CHECK(in_a.delimited_prefixes == std::vector<std::string>{"a/b/"});
  // Paging two at a time without a delimiter: every key once, in order.
  ListOptions paged;
  paged.limit = 2;
  keys.clear();
  for (int pages = 0; pages < 10; ++pages) {
    ObjectPage p = c.r2().list(ns, paged);
    CHECK(p.objects.size() <= 2);
    for (auto& o : p.objects) keys.push_back(o.key);
    if (!p.truncated) break;
    paged.cursor = p.cursor;
  }
  CHECK(keys == std::vector<std::string>{"a/1", "a/2", "a/b/3", "b", "c/4", "c/5"});
  c.r2().remove(ns, "b");
  CHECK_FALSE(c.r2().head(ns, "b"));
  CHECK(c.r2().head(other, "a/9"));
}

// ---------------------------------------------------------------- SqlStore

TEST_CASE("SqlStore: values keep SQLite's types exactly") {
  Contract c;
  const std::string ns = c.ns("d1");
  int n = 0;
  c.d1().exec(ns, {"CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, z)", {}}, n);
  const int64_t big = 9007199254740993;  // not representable as a double
  c.d1().query(ns, {"INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                    {big, 2.5, std::string("t\xc3\xa9xt"), SqlBlob{std::string("\0\x01\xff", 3)}, nullptr}});
  SqlResult r = c.d1().query(ns, {"SELECT i, r, s, b, z FROM t", {}});
  CHECK(r.columns == std::vector<std::string>{"i", "r", "s", "b", "z"});
  REQUIRE(r.rows.size() == 1);
  if (c.cloudflare()) {
    // D1 answers in JavaScript numbers: beyond 2^53 an integer is stored exactly but read back rounded;
    // CAST AS TEXT reads it exactly (docs/api.md, "cloudflare backend").
    CHECK(std::get<std::string>(c.d1().query(ns, {"SELECT CAST(i AS TEXT) FROM t", {}}).rows.at(0).at(0)) ==
          std::to_string(big));
  } else {
    CHECK(int_of(r.rows[0][0]) == big);
  }
  CHECK(std::get<double>(r.rows[0][1]) == 2.5);
  CHECK(std::get<std::string>(r.rows[0][2]) == "t\xc3\xa9xt");
  CHECK(std::get<SqlBlob>(r.rows[0][3]).bytes == std::string("\0\x01\xff", 3));
  CHECK(std::holds_alternative<std::nullptr_t>(r.rows[0][4]));
}

TEST_CASE("SqlStore: columns come in the SELECT's order, not sorted") {
  Contract c;
  const std::string ns = c.ns("d1");
  CHECK(c.d1().query(ns, {"SELECT 2 AS b, 1 AS a", {}}).columns == std::vector<std::string>{"b", "a"});
  int n = 0;
  c.d1().exec(ns, {"CREATE TABLE t (zeta, alpha, mid)", {}}, n);
  c.d1().query(ns, {"INSERT INTO t VALUES (1, 2, 3)", {}});
  const std::vector<std::string> table_order{"zeta", "alpha", "mid"};
  CHECK(c.d1().query(ns, {"SELECT * FROM t", {}}).columns == table_order);
  auto results = c.d1().batch(ns, {{"SELECT mid, zeta FROM t", {}}, {"SELECT * FROM t", {}}});
  REQUIRE(results.size() == 2);
  CHECK(results[0].columns == std::vector<std::string>{"mid", "zeta"});
  CHECK(results[1].columns == table_order);
  REQUIRE(results[1].rows.size() == 1);
  CHECK(int_of(results[1].rows[0][0]) == 1);  // values line up with their columns
  CHECK(int_of(results[1].rows[0][1]) == 2);
}

TEST_CASE("SqlStore: a batch is all or nothing; a failing exec changes nothing") {
  Contract c;
  const std::string ns = c.ns("d1b");
  int n = 0;
  c.d1().exec(ns, {"CREATE TABLE t (x INTEGER PRIMARY KEY)", {}}, n);
  c.d1().batch(ns, {{"INSERT INTO t VALUES (1)", {}}, {"INSERT INTO t VALUES (2)", {}}});
  CHECK(status_of([&] {
          c.d1().batch(ns, {{"INSERT INTO t VALUES (3)", {}}, {"INSERT INTO t VALUES (1)", {}}});
        }) >= 400);
  // Production D1 runs a batch as one transaction; Cloudflare's emulator runs it statement by statement
  // and keeps those before the failing one (docs/api.md, "cloudflare backend"): checked in local mode.
  if (!c.cloudflare()) CHECK(int_of(c.d1().query(ns, {"SELECT count(*) FROM t", {}}).rows.at(0).at(0)) == 2);
  CHECK(status_of([&] { c.d1().exec(ns, {"INSERT INTO t VALUES (4); INSERT INTO nope VALUES (1)", {}}, n); }) >= 400);
  CHECK(int_of(c.d1().query(ns, {"SELECT count(*) FROM t WHERE x = 4", {}}).rows.at(0).at(0)) == 0);
}

TEST_CASE("SqlStore: a read-only statement that would write is 403 and changes nothing") {
  Contract c;
  const std::string ns = c.ns("d1ro");
  int n = 0;
  c.d1().exec(ns, {"CREATE TABLE t (x); INSERT INTO t VALUES (1)", {}}, n);
  SqlStatement w{"DELETE FROM t", {}};
  w.read_only = true;
  CHECK(status_of([&] { c.d1().query(ns, w); }) == 403);
  SqlStatement r{"SELECT count(*) FROM t", {}};
  r.read_only = true;
  CHECK(int_of(c.d1().query(ns, r).rows.at(0).at(0)) == 1);
}

TEST_CASE("SqlStore: namespaces are apart; tables(), namespaces() and all_tables() agree") {
  Contract c;
  const std::string a = c.ns("d1a"), b = c.ns("d1a") + "_b";
  int n = 0;
  c.d1().exec(a, {"CREATE TABLE secret (v); INSERT INTO secret VALUES ('a-only')", {}}, n);
  c.d1().exec(b, {"CREATE TABLE mine (v)", {}}, n);
  // b cannot name a's table, whatever the spelling; the answer is the same as for a missing table.
  const int foreign = status_of([&] { c.d1().query(b, {"SELECT * FROM secret", {}}); });
  const int missing = status_of([&] { c.d1().query(b, {"SELECT * FROM no_such_table", {}}); });
  CHECK(foreign >= 400);
  CHECK(foreign == missing);
  CHECK(status_of([&] { c.d1().query(b, {"SELECT * FROM " + a + "_secret", {}}); }) >= 400);
  std::vector<std::string> ta, tb;
  for (auto& t : c.d1().tables(a)) ta.push_back(t.name);
  for (auto& t : c.d1().tables(b)) tb.push_back(t.name);
  CHECK(ta == std::vector<std::string>{"secret"});
  CHECK(tb == std::vector<std::string>{"mine"});
  auto spaces = c.d1().namespaces();
  CHECK(std::count(spaces.begin(), spaces.end(), a) == 1);
  CHECK(std::count(spaces.begin(), spaces.end(), b) == 1);
  CHECK(std::is_sorted(spaces.begin(), spaces.end()));
  auto all = c.d1().all_tables();
  CHECK(std::count(all.begin(), all.end(), std::make_pair(a, std::string("secret"))) == 1);
  CHECK(std::count(all.begin(), all.end(), std::make_pair(b, std::string("mine"))) == 1);
  CHECK(std::is_sorted(all.begin(), all.end()));
}

// ---------------------------------------------------------------- ResourceRegistry

TEST_CASE("ResourceRegistry: lists and counts exactly what the stores hold, in type order, paged") {
  Contract c;
  const std::string ns = c.ns("reg");
  int n = 0;
  c.kv().put(ns, "k1", {"12345", std::nullopt, std::nullopt});
  c.kv().put(ns, "k2", {"1", std::string("{\"m\":true}"), std::nullopt});
  c.r2().put(ns, "o/1", {}, chunks("abc"));
  c.d1().exec(ns, {"CREATE TABLE t (x)", {}}, n);
  ResourceQuery q;
  q.ns = ns;
  ResourcePage all = c.registry().list(q);
  std::vector<std::string> got;
  for (auto& r : all.resources) got.push_back(r.type + ":" + r.key);
  CHECK(got == std::vector<std::string>{"d1:t", "kv:k1", "kv:k2", "r2:o/1"});
  CHECK(all.total == 4);
  CHECK_FALSE(all.has_more);
  ResourceStats s = c.registry().stats(ns, std::nullopt);
  CHECK(s.total == 4);
  CHECK(s.by_type.at("kv") == 2);
  CHECK(s.by_type.at("d1") == 1);
  CHECK(s.by_type.at("r2") == 1);
  // Paging one at a time: every resource once.
  q.limit = 1;
  got.clear();
  for (int pages = 0; pages < 10; ++pages) {
    ResourcePage p = c.registry().list(q);
    for (auto& r : p.resources) got.push_back(r.type + ":" + r.key);
    if (!p.has_more) break;
    q.cursor = p.cursor;
  }
  CHECK(got == std::vector<std::string>{"d1:t", "kv:k1", "kv:k2", "r2:o/1"});
  // Deletes leave the registry in step.
  c.kv().remove(ns, "k1");
  c.r2().remove(ns, "o/1");
  s = c.registry().stats(ns, std::nullopt);
  CHECK(s.by_type.at("kv") == 1);
  CHECK(s.by_type.at("r2") == 0);
  // A scope without the namespace sees none of it.
  ResourceQuery scoped;
  scoped.ns = ns;
  scoped.scope = std::set<std::string>{c.ns("elsewhere")};
  CHECK(c.registry().list(scoped).resources.empty());
}

TEST_CASE("ResourceRegistry: concurrent puts and deletes of one key leave it in step with the store") {
  Contract c;
  const std::string ns = c.ns("race");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        if ((i + t) % 2) c.kv().put(ns, "k", {"v" + std::to_string(i), std::nullopt, std::nullopt});
        else c.kv().remove(ns, "k");
      }
    });
  for (auto& t : threads) t.join();
  const bool in_store = bool(c.kv().get(ns, "k"));
  ResourceQuery q;
  q.ns = ns;
  q.type = "kv";
  CHECK(c.registry().list(q).resources.size() == (in_store ? 1u : 0u));
  CHECK(c.registry().reindex().repairs.empty());
}

TEST_CASE("SessionStore: a revocation moves the version stamp; an unchanged stamp reads no set") {
  Contract c;
  SessionStore& store = c.backend->sessions();
  const int64_t now = 1'900'000'000;
  int64_t stamp = -1;
  auto first = store.revoked_if_changed(now, stamp);
  REQUIRE(first.has_value());  // the first read always reads the set
  const int64_t seen = stamp;
  const std::string id = "stamp-" + c.run;
  store.revoke(id, now, now + 3600);
  auto after = store.revoked_if_changed(now, stamp);
  REQUIRE(after.has_value());
  CHECK(std::find(after->begin(), after->end(), id) != after->end());
  if (c.cloudflare()) {
    CHECK(stamp != seen);
    // Nothing revoked since: one cheap read, no set (the background check of an idle replica).
    CHECK_FALSE(store.revoked_if_changed(now, stamp).has_value());
    // A session written here makes a sweep due once it has expired, not before.
    SessionRecord r;
    r.id = "sweep-" + c.run;
    r.language = "python";
    r.all_namespaces = true;
    r.permissions = "read";
    r.created_at = now;
    r.expires_at = now + 10;
    store.create(r);
    CHECK_FALSE(store.sweep_due(now));
    CHECK(store.sweep_due(now + 10 + 600));
    store.sweep(now + 10 + 600);
    CHECK_FALSE(store.sweep_due(now + 10 + 600));
  }
}

TEST_CASE("ResourceRegistry: stats see this replica's writes at once") {
  Contract c;
  const std::string ns = c.ns("statscache");
  CHECK(c.registry().stats(ns, std::nullopt).total == 0);
  c.kv().put(ns, "a", KvValue{"12345", std::nullopt, std::nullopt});
  CHECK(c.registry().stats(ns, std::nullopt).total == 1);
  CHECK(c.registry().stats(ns, std::nullopt).total_size == 5);
  c.kv().remove(ns, "a");
  CHECK(c.registry().stats(ns, std::nullopt).total == 0);
  int n = 0;
  c.d1().exec(ns, SqlStatement{"CREATE TABLE t (x)", {}}, n);
  auto s = c.registry().stats(std::nullopt, std::set<std::string>{ns});
  CHECK(s.by_type["d1"] == 1);
  CHECK(s.by_namespace[ns] == 1);
  c.d1().exec(ns, SqlStatement{"DROP TABLE t", {}}, n);
  CHECK(c.registry().stats(ns, std::nullopt).total == 0);
}

}  // TEST_SUITE("contract")
