#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "store/local/local_kv.h"
#include "util/error.h"
#include "support.h"

using namespace era;

namespace {
struct Fixture {
  era::test::TempDir tmp{"kv"};
  std::string dir;
  std::atomic<int64_t> now{1'000'000};
  std::unique_ptr<sqlite::Writer> writer;
  std::unique_ptr<sqlite::ReaderPool> readers;
  std::unique_ptr<LocalKv> kv;

  Fixture() {
    dir = tmp.str();
    writer = std::make_unique<sqlite::Writer>(dir + "/meta.sqlite3");
    readers = std::make_unique<sqlite::ReaderPool>(dir + "/meta.sqlite3", 2);
    kv = std::make_unique<LocalKv>(*writer, *readers, [this] { return now.load() * 1000; });
  }
  ~Fixture() {
    kv.reset();
    readers.reset();
    writer.reset();
  }
};
}  // namespace

TEST_CASE("put/get/remove, values are bytes") {
  Fixture f;
  std::string bytes("a\0b\xff", 4);
  f.kv->put("ns", "k", {bytes, std::string("{\"a\":1}"), std::nullopt});
  auto v = f.kv->get("ns", "k");
  REQUIRE(v);
  CHECK(v->value == bytes);
  CHECK(v->metadata == std::string("{\"a\":1}"));
  CHECK_FALSE(f.kv->get("other", "k"));
  f.kv->remove("ns", "k");
  CHECK_FALSE(f.kv->get("ns", "k"));
  CHECK_NOTHROW(f.kv->remove("ns", "k"));
}

TEST_CASE("expired entries vanish from get and list, and the sweep deletes them") {
  Fixture f;
  f.kv->put("ns", "short", {"v", std::nullopt, f.now + 60});
  f.kv->put("ns", "long", {"v", std::nullopt, f.now + 3600});
  f.kv->put("ns", "forever", {"v", std::nullopt, std::nullopt});
  CHECK(f.kv->get("ns", "short"));
  f.now += 60;
  CHECK_FALSE(f.kv->get("ns", "short"));
  auto page = f.kv->list("ns", "", 1000, "");
  REQUIRE(page.keys.size() == 2);
  CHECK(page.keys[0].name == "forever");
  CHECK(page.keys[1].name == "long");
  CHECK(page.keys[1].expiration == f.now - 60 + 3600);
  CHECK(f.kv->sweep_expired() == 1);
  f.now += 10000;
  CHECK(f.kv->sweep_expired() == 1);
  CHECK(f.kv->list("ns", "", 1000, "").keys.size() == 1);
}

TEST_CASE("list: byte order, prefix isolation, cursor paging") {
  Fixture f;
  for (const char* k : {"b", "a", "a/b", "\xc3\xa9", "ab", "B"}) f.kv->put("ns", k, {"v", {}, {}});
  f.kv->put("ns2", "a", {"v", {}, {}});
  f.kv->put("n", "s:a", {"v", {}, {}});  // "n:s:a" must not appear in "ns"
  auto all = f.kv->list("ns", "", 1000, "");
  std::vector<std::string> names;
  for (auto& k : all.keys) names.push_back(k.name);
  CHECK(names == std::vector<std::string>{"B", "a", "a/b", "ab", "b", "\xc3\xa9"});
  CHECK(all.complete);
  auto p1 = f.kv->list("ns", "a", 2, "");
  REQUIRE(p1.keys.size() == 2);
  CHECK_FALSE(p1.complete);
  auto p2 = f.kv->list("ns", "a", 2, p1.cursor);
  REQUIRE(p2.keys.size() == 1);
  CHECK(p2.keys[0].name == "ab");
  CHECK(p2.complete);
  CHECK(p2.cursor.empty());
  CHECK_THROWS_AS(f.kv->list("ns", "", 10, "!!!"), ApiError);
}

TEST_CASE("concurrent writers share commits and none is lost") {
  Fixture f;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) f.kv->put("ns", std::to_string(t) + "-" + std::to_string(i), {"v", {}, {}});
    });
  for (auto& t : threads) t.join();
  CHECK(f.kv->list("ns", "", 1000, "").keys.size() == 800);
}

TEST_CASE("the read cache answers a read again from memory, and a write or delete drops the key's entry") {
  Fixture f;
  std::optional<KvValue> out;
  CHECK_FALSE(f.kv->cached("ns", "k", out));  // never read: only get() can answer
  f.kv->put("ns", "k", {"one", std::string("{\"m\":1}"), f.now + 3600});
  CHECK_FALSE(f.kv->cached("ns", "k", out));  // a write leaves nothing cached
  REQUIRE(f.kv->get("ns", "k"));
  REQUIRE(f.kv->cached("ns", "k", out));
  REQUIRE(out);
  CHECK(out->value == "one");
  CHECK(out->metadata == std::string("{\"m\":1}"));
  CHECK(out->expiration == f.now + 3600);
  // From memory indeed: a row changed behind the store's back (what a second process would do, and
  // why the data dir is locked to one) is not seen while the entry lives.
  f.writer->submit([](sqlite::Db& db) { db.exec("UPDATE kv SET value = CAST('behind' AS BLOB)"); });
  REQUIRE(f.kv->cached("ns", "k", out));
  CHECK(out->value == "one");
  CHECK(f.kv->get("ns", "k")->value == "one");
  // A write through the store drops it: the next read asks the database.
  f.kv->put("ns", "k", {"two", std::nullopt, std::nullopt});
  CHECK_FALSE(f.kv->cached("ns", "k", out));
  CHECK(f.kv->get("ns", "k")->value == "two");
  REQUIRE(f.kv->cached("ns", "k", out));
  CHECK(out->value == "two");
  CHECK_FALSE(out->metadata);
  f.kv->remove("ns", "k");
  CHECK_FALSE(f.kv->cached("ns", "k", out));
  CHECK_FALSE(f.kv->get("ns", "k"));
  // A known absence is cached too, and namespaces stay apart.
  REQUIRE(f.kv->cached("ns", "k", out));
  CHECK_FALSE(out);
  CHECK_FALSE(f.kv->cached("other", "k", out));
}

TEST_CASE("the read cache keeps an entry's expiration: it reads as absent from that second, like the row") {
  Fixture f;
  f.kv->put("ns", "short", {"v", std::nullopt, f.now + 60});
  REQUIRE(f.kv->get("ns", "short"));
  std::optional<KvValue> out;
  REQUIRE(f.kv->cached("ns", "short", out));
  CHECK(out);
  f.now += 59;
  CHECK(f.kv->get("ns", "short"));
  f.now += 1;
  CHECK_FALSE(f.kv->get("ns", "short"));
  REQUIRE(f.kv->cached("ns", "short", out));
  CHECK_FALSE(out);
  // An expired row read from the database answers absent too, and is cached as what it is.
  f.kv->put("ns", "old", {"v", std::nullopt, f.now - 1});
  CHECK_FALSE(f.kv->get("ns", "old"));
  REQUIRE(f.kv->cached("ns", "old", out));
  CHECK_FALSE(out);
}

TEST_CASE("the read cache off (0 bytes): every read asks the database") {
  era::test::TempDir tmp{"kv-nocache"};
  sqlite::Writer writer(tmp.str() + "/meta.sqlite3");
  sqlite::ReaderPool readers(tmp.str() + "/meta.sqlite3", 2);
  LocalKv kv(writer, readers, [] { return int64_t(1'000'000'000); }, 0);
  kv.put("ns", "k", {"v", std::nullopt, std::nullopt});
  CHECK(kv.get("ns", "k")->value == "v");
  std::optional<KvValue> out;
  CHECK_FALSE(kv.cached("ns", "k", out));
  writer.submit([](sqlite::Db& db) { db.exec("UPDATE kv SET value = CAST('w' AS BLOB)"); });
  CHECK(kv.get("ns", "k")->value == "w");
}

TEST_CASE("the read cache under concurrent reads and writes: a read never returns less than an acknowledged write") {
  Fixture f;
  std::atomic<int> acked{0};
  std::atomic<bool> stop{false};
  std::atomic<int> stale{0}, reads{0};
  const int kWrites = 300;
  f.kv->put("ns", "hot", {"0", std::nullopt, std::nullopt});
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t)
    readers.emplace_back([&, t] {
      while (!stop.load()) {
        const int floor = acked.load();  // acknowledged before this read began
        std::optional<KvValue> v;
        if (t % 2 == 0 || !f.kv->cached("ns", "hot", v)) v = f.kv->get("ns", "hot");
        if (!v || std::stoi(v->value) < floor) stale.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  for (int i = 1; i <= kWrites; ++i) {
    f.kv->put("ns", "hot", {std::to_string(i), std::nullopt, std::nullopt});
    acked.store(i);
    if (i % 3 == 0) f.kv->put("ns", "other" + std::to_string(i), {"x", std::nullopt, std::nullopt});
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  CHECK(stale.load() == 0);
  CHECK(reads.load() > kWrites);
  CHECK(f.kv->get("ns", "hot")->value == std::to_string(kWrites));
}
