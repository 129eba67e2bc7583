#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "store/local/local_kv.h"
#include "ns/names.h"
#include "store/local/local_registry.h"
#include "util/encoding.h"
#include "util/error.h"
#include "support.h"

using namespace era;

namespace {
struct Fixture {
  era::test::TempDir tmp{"registry"};
  std::string dir;
  std::atomic<int64_t> now{2'000'000};  // seconds
  std::unique_ptr<sqlite::Writer> writer;
  std::unique_ptr<sqlite::ReaderPool> readers;
  std::unique_ptr<LocalKv> kv;
  std::unique_ptr<ResourceWalk> registry;

  Fixture() {
    dir = tmp.str();
    writer = std::make_unique<sqlite::Writer>(dir + "/meta.sqlite3");
    readers = std::make_unique<sqlite::ReaderPool>(dir + "/meta.sqlite3", 4);
    kv = std::make_unique<LocalKv>(*writer, *readers, [this] { return now.load() * 1000; });
    std::vector<std::unique_ptr<ResourceSource>> sources;
    sources.push_back(make_table_source({"kv", "kv", ':', "metadata", "created_at", "updated_at", true}, *writer,
                                        *readers, [this] { return now.load(); }));
    registry = std::make_unique<ResourceWalk>(std::move(sources));
  }
  ~Fixture() {
    registry.reset();
    kv.reset();
    readers.reset();
    writer.reset();
  }

  std::vector<std::string> walk(ResourceQuery q) {
    std::vector<std::string> out;
    for (;;) {
      auto page = registry->list(q);
      for (auto& r : page.resources) out.push_back(r.ns + ":" + r.key);
      if (!page.has_more) return out;
      q.cursor = page.cursor;
    }
  }
};
}  // namespace

TEST_CASE("stats and list equal the data after a random mix of writes, deletes and expirations") {
  Fixture f;
  std::mt19937 rng(42);
  std::map<std::pair<std::string, std::string>, std::pair<int64_t, std::optional<int64_t>>> model;  // size, exp
  for (int i = 0; i < 3000; ++i) {
    std::string ns = "ns" + std::to_string(rng() % 7);
    std::string key = "k" + std::to_string(rng() % 200);
    switch (rng() % 4) {
      case 0:
      case 1: {
        std::string value(rng() % 50, 'x');
        f.kv->put(ns, key, {value, std::nullopt, std::nullopt});
        model[{ns, key}] = {int64_t(value.size()), std::nullopt};
        break;
      }
      case 2: {
        int64_t exp = f.now + 60 + int64_t(rng() % 100);
        f.kv->put(ns, key, {"vv", std::nullopt, exp});
        model[{ns, key}] = {2, exp};
        break;
      }
      case 3:
        f.kv->remove(ns, key);
        model.erase({ns, key});
        break;
    }
    if (i % 500 == 0) f.now += 30;
    if (i % 1000 == 999) f.kv->sweep_expired();
  }
  f.now += 80;  // some expire now, without a sweep
  std::map<std::string, int64_t> by_ns;
  int64_t total = 0, bytes = 0;
  for (auto& [k, v] : model) {
    if (v.second && *v.second <= f.now) continue;
    by_ns[k.first]++;
    total++;
    bytes += v.first;
  }
  auto s = f.registry->stats(std::nullopt, std::nullopt);
  CHECK(s.total == total);
  CHECK(s.total_size == bytes);
  CHECK(s.by_type["kv"] == total);
  CHECK(s.by_type["d1"] == 0);
  CHECK(s.by_namespace == by_ns);
  ResourceQuery q;
  q.limit = 97;
  auto listed = f.walk(q);
  CHECK(int64_t(listed.size()) == total);
  CHECK(f.registry->list(q).total == total);
  auto one = f.registry->stats(std::string("ns3"), std::nullopt);
  CHECK(one.total == by_ns["ns3"]);
  f.kv->sweep_expired();
  CHECK(f.registry->stats(std::nullopt, std::nullopt).total == total);
  CHECK(f.registry->reindex().repairs.empty());
}

TEST_CASE("filters: type, namespace, key prefix, scope, offset") {
  Fixture f;
  for (const char* ns : {"a", "a-b", "b", "c"})
    for (const char* k : {"x1", "x2", "y1"}) f.kv->put(ns, k, {"v", std::string("{\"m\":1}"), std::nullopt});
  ResourceQuery q;
  q.ns = "a";
  CHECK(f.walk(q) == std::vector<std::string>{"a:x1", "a:x2", "a:y1"});
  q.key_prefix = "x";
  CHECK(f.walk(q) == std::vector<std::string>{"a:x1", "a:x2"});
  CHECK(f.registry->list(q).total == 2);
  q = {};
  q.key_prefix = "y";
  CHECK(f.walk(q).size() == 4);
  CHECK(f.registry->list(q).total == 4);
  q = {};
  q.scope = std::set<std::string>{"c", "a-b"};
  q.limit = 2;
  auto scoped = f.walk(q);
  CHECK(scoped == std::vector<std::string>{"a-b:x1", "a-b:x2", "a-b:y1", "c:x1", "c:x2", "c:y1"});
  CHECK(f.registry->stats(std::nullopt, q.scope).total == 6);
  CHECK(f.registry->stats(std::string("a"), q.scope).total == 0);  // out of scope: nothing
  q = {};
  q.type = "r2";
  CHECK(f.registry->list(q).resources.empty());
  CHECK(f.registry->list(q).total == 0);
  q = {};
  q.offset = 5;
  q.limit = 3;
  auto page = f.registry->list(q);
  REQUIRE(page.resources.size() == 3);
  CHECK(page.resources[0].ns + ":" + page.resources[0].key == "a:y1");  // "a-b:" sorts before "a:"
  CHECK(page.resources[0].metadata == std::string("{\"m\":1}"));
  q.offset = 100;
  CHECK(f.registry->list(q).resources.empty());
  q = {};
  q.cursor = "not a cursor!";
  CHECK_THROWS_AS(f.registry->list(q), ApiError);
}

TEST_CASE("cursor paging under concurrent writes neither skips nor repeats") {
  Fixture f;
  std::set<std::string> original;
  for (int i = 0; i < 1500; ++i) {
    std::string ns = "n" + std::to_string(i % 5), key = "k" + std::to_string(1000 + i);
    f.kv->put(ns, key, {"v", std::nullopt, std::nullopt});
    original.insert(ns + ":" + key);
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    int i = 0;
    while (!stop && i < 5000) {
      f.kv->put("n" + std::to_string(i % 7), "k" + std::to_string(i % 3000) + "w", {"v", std::nullopt, std::nullopt});
      if (i % 3 == 0) f.kv->remove("n" + std::to_string((i / 3) % 7), "k" + std::to_string((i / 3) % 3000) + "w");
      ++i;
    }
  });
  ResourceQuery q;
  q.limit = 50;
  auto seen = f.walk(q);
  stop = true;
  writer.join();
  std::set<std::string> unique(seen.begin(), seen.end());
  CHECK(unique.size() == seen.size());
  for (const auto& o : original) CHECK(unique.count(o) == 1);
}

TEST_CASE("reindex repairs counters that drifted") {
  Fixture f;
  f.kv->put("ns", "a", {"12345", std::nullopt, std::nullopt});
  f.writer->submit([](sqlite::Db& db) { db.exec("UPDATE resource_counters SET count = 9, bytes = 1"); });
  f.writer->submit([](sqlite::Db& db) { db.exec("INSERT INTO resource_counters VALUES ('kv', 'ghost', 3, 3)"); });
  auto report = f.registry->reindex();
  CHECK(report.repairs.size() == 2);
  auto s = f.registry->stats(std::nullopt, std::nullopt);
  CHECK(s.total == 1);
  CHECK(s.total_size == 5);
  CHECK(s.by_namespace.count("ghost") == 0);
  CHECK(f.registry->reindex().repairs.empty());
}

TEST_CASE("utf8_prefix_bound: the smallest UTF-8 string above every string with the prefix") {
  CHECK(utf8_prefix_bound("ns:") == "ns;");
  CHECK(utf8_prefix_bound("a\xC3\xA9") == "a\xC3\xAA");                  // é -> ê
  CHECK(utf8_prefix_bound("a\x7F") == "a\xC2\x80");                      // U+007F -> U+0080
  CHECK(utf8_prefix_bound("a\xC2\xBF") == "a\xC3\x80");                  // ¿ -> À (not the invalid C2 C0)
  CHECK(utf8_prefix_bound("a\xDF\xBF") == "a\xE0\xA0\x80");              // U+07FF -> U+0800
  CHECK(utf8_prefix_bound("a\xED\x9F\xBF") == "a\xEE\x80\x80");          // U+D7FF -> U+E000, no surrogate
  CHECK(utf8_prefix_bound("a\xEF\xBF\xBF") == "a\xF0\x90\x80\x80");      // U+FFFF -> U+10000
  CHECK(utf8_prefix_bound("a\xF4\x8F\xBF\xBF") == "b");                  // U+10FFFF carries
  CHECK(utf8_prefix_bound("\xF4\x8F\xBF\xBF\xF4\x8F\xBF\xBF").empty());  // nothing is greater
  for (const char* p : {"x\xC2\xBF", "\xED\x9F\xBF", "k\xEF\xBF\xBF", "q\xF4\x8F\xBF\xBF"})
    CHECK(ns::is_valid_utf8(utf8_prefix_bound(p)));
  // Every namespace byte sorts below the end of names (and the end is UTF-8, bindable as JSON text).
  for (int c = 0; c < 256; ++c)
    if (ns::is_valid_namespace(std::string(1, char(c)))) CHECK((unsigned char)(c) < (unsigned char)(kNamesEnd[0]));
  CHECK(ns::is_valid_utf8(kNamesEnd));
}

TEST_CASE("keys with bytes >= 0x80 are walked, counted and prefix-filtered at every boundary") {
  Fixture f;
  // Keys around the byte boundaries a wrong upper bound cuts off: 0x7f/0x80, 2-, 3- and 4-byte forms,
  // the last code point.
  const std::vector<std::string> keys = {"k",         "k\x7f",         "k\xC2\x80",         "k\xC2\xBF",
                                         "k\xC3\x80", "k\xDF\xBF",     "k\xE0\xA0\x80",     "k\xED\x9F\xBF",
                                         "k\xEE\x80\x80", "k\xEF\xBF\xBF", "k\xF0\x90\x80\x80", "k\xF4\x8F\xBF\xBF",
                                         "\xF4\x8F\xBF\xBF"};
  for (const char* ns : {"a", "z"})
    for (const auto& k : keys) f.kv->put(ns, k, {"v", std::nullopt, std::nullopt});
  std::vector<std::string> want_a;
  for (const auto& k : keys) want_a.push_back("a:" + k);
  std::sort(want_a.begin(), want_a.end());
  for (int limit : {1, 2, 5, 100}) {
    ResourceQuery q;
    q.limit = limit;
    CAPTURE(limit);
    CHECK(f.walk(q).size() == keys.size() * 2);  // unfiltered: every name, up to the last namespace's last key
    q.ns = "a";
    CHECK(f.walk(q) == want_a);
    q.ns = "z";
    CHECK(f.walk(q).size() == keys.size());
    q.ns.reset();
    q.scope = std::set<std::string>{"z"};
    CHECK(f.walk(q).size() == keys.size());
  }
  // Prefixes ending in multi-byte characters match exactly the keys that start with them.
  for (const std::string prefix : {"k\xC2\xBF", "k\xDF\xBF", "k\xED\x9F\xBF", "k\xEF\xBF\xBF", "\xF4\x8F\xBF\xBF",
                                   "k\xF4\x8F\xBF\xBF", "k\xC2"}) {
    if (!ns::is_valid_utf8(prefix)) {
      ResourceQuery q;
      q.key_prefix = prefix;
      CHECK_THROWS_AS(f.registry->list(q), ApiError);
      continue;
    }
    size_t want = 0;
    for (const auto& k : keys) want += k.compare(0, prefix.size(), prefix) == 0;
    for (bool by_ns : {false, true}) {
      ResourceQuery q;
      q.key_prefix = prefix;
      if (by_ns) q.ns = "a";
      CAPTURE(prefix);
      CHECK(f.walk(q).size() == want * (by_ns ? 1 : 2));
      CHECK(f.registry->list(q).total == int64_t(want * (by_ns ? 1 : 2)));
    }
  }
  CHECK(f.registry->stats(std::nullopt, std::nullopt).total == int64_t(keys.size() * 2));
}

TEST_CASE("a cursor that is not UTF-8 is refused, never passed to a store") {
  Fixture f;
  f.kv->put("a", "k", {"v", std::nullopt, std::nullopt});
  ResourceQuery q;
  q.cursor = enc::base64_encode(std::string("kv\na:\xFF"), true);
  CHECK_THROWS_AS(f.registry->list(q), ApiError);
  q.cursor = enc::base64_encode(std::string("kv\na:"), true);
  CHECK(f.registry->list(q).resources.size() == 1);
}
