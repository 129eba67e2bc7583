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
