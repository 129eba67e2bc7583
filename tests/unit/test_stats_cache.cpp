// StatsCache (store/cloudflare/stats_cache.h) on a fake clock over a counting registry: stats come from
// one copy of every namespace's counts, read again only when it is too old or after a change made here.
#include <doctest/doctest.h>

#include "store/cloudflare/stats_cache.h"

using namespace era;
using era::cf::StatsCache;

namespace {

class CountingRegistry : public ResourceRegistry {
 public:
  int calls = 0;
  ResourceStats all;
  ResourcePage list(const ResourceQuery&) override { return {}; }
  ResourceStats stats(const std::optional<std::string>& ns, const std::optional<std::set<std::string>>& scope) override {
    ++calls;
    CHECK_FALSE(ns.has_value());  // the cache always reads everything
    CHECK_FALSE(scope.has_value());
    return all;
  }
  ReindexReport reindex() override { return {}; }
};

void add(ResourceStats& s, const std::string& ns, const std::string& type, int64_t count, int64_t size) {
  auto& per = s.by_namespace_type[ns];
  for (const char* t : {"d1", "kv", "r2"}) per.emplace(t, ResourceStats::Count{});
  per[type].count += count;
  per[type].size += size;
}

}  // namespace

TEST_CASE("stats cache: one read serves every query until it is too old or this replica changed something") {
  CountingRegistry inner;
  add(inner.all, "a", "kv", 2, 10);
  add(inner.all, "a", "r2", 1, 100);
  add(inner.all, "b", "d1", 3, 0);
  int64_t now = 0;
  StatsCache cache(inner, 5000, [&] { return now; });

  ResourceStats a = cache.stats(std::string("a"), std::nullopt);
  CHECK(a.total == 3);
  CHECK(a.total_size == 110);
  CHECK(a.by_type["kv"] == 2);
  CHECK(a.by_type["d1"] == 0);
  CHECK(a.size_by_type["r2"] == 100);
  CHECK(a.by_namespace.size() == 1);
  CHECK(a.by_namespace_type["a"]["kv"].size == 10);

  ResourceStats all = cache.stats(std::nullopt, std::nullopt);
  CHECK(all.total == 6);
  CHECK(all.by_namespace["b"] == 3);
  ResourceStats scoped = cache.stats(std::nullopt, std::set<std::string>{"b", "zzz"});
  CHECK(scoped.total == 3);
  CHECK(scoped.by_namespace.count("a") == 0);
  CHECK(cache.stats(std::string("a"), std::set<std::string>{"b"}).total == 0);  // outside the scope
  CHECK(inner.calls == 1);

  now += 4999;
  cache.stats(std::nullopt, std::nullopt);
  CHECK(inner.calls == 1);
  now += 1;  // too old: read again
  cache.stats(std::nullopt, std::nullopt);
  CHECK(inner.calls == 2);

  add(inner.all, "c", "kv", 1, 1);
  cache.changed();  // a write through this replica: the next stats sees it at once
  CHECK(cache.stats(std::string("c"), std::nullopt).total == 1);
  CHECK(inner.calls == 3);
  cache.stats(std::string("c"), std::nullopt);
  CHECK(inner.calls == 3);
}

TEST_CASE("stats cache: a filtered answer has the same shape as the registry's own") {
  ResourceStats all;
  add(all, "a", "kv", 1, 5);
  ResourceStats none = StatsCache::filter(all, std::string("missing"), std::nullopt);
  CHECK(none.total == 0);
  for (const char* t : {"d1", "kv", "r2"}) {
    CHECK(none.by_type.count(t) == 1);
    CHECK(none.size_by_type.count(t) == 1);
  }
  CHECK(none.by_namespace.empty());
  CHECK(none.by_namespace_type.empty());
}
