// KvReadCache (store/kv_cache.h), the read cache both KV stores keep: generations, bounds, expiry.
#include <doctest/doctest.h>

#include "store/kv_cache.h"

using era::KvReadCache;
using era::KvValue;

TEST_CASE("read cache: a read that began before a write cannot put its older answer over the write") {
  KvReadCache c(std::chrono::seconds(60), 1 << 20);
  const uint64_t g = c.begin_read();  // a read leaves upstream ...
  c.wrote("k", KvValue{"new", {}, {}, {}});  // ... a write is acknowledged meanwhile ...
  c.fill("k", KvValue{"old", {}, {}, {}}, g);  // ... and the read's older answer arrives
  std::optional<KvValue> out;
  REQUIRE(c.lookup("k", out, 0));
  REQUIRE(out);
  CHECK(out->value == "new");
  // Also when the write's entry was evicted in between: the fill is dropped (a miss, never stale).
  KvReadCache small(std::chrono::seconds(60), 4096);
  const uint64_t g2 = small.begin_read();
  small.wrote("a", KvValue{"new", {}, {}, {}});
  for (int i = 0; i < 64; ++i) small.wrote("filler" + std::to_string(i), KvValue{std::string(200, 'x'), {}, {}, {}});
  small.fill("a", KvValue{"old", {}, {}, {}}, g2);
  std::optional<KvValue> o2;
  if (small.lookup("a", o2, 0)) {
    REQUIRE(o2);
    CHECK(o2->value == "new");
  }
  // A write of unknown outcome forgets the key.
  c.forget("k");
  CHECK_FALSE(c.lookup("k", out, 0));
}

TEST_CASE("read cache: bounded by bytes, least recently used out first") {
  KvReadCache c(std::chrono::seconds(60), 8192);
  for (int i = 0; i < 100; ++i) c.wrote("k" + std::to_string(i), KvValue{std::string(100, 'x'), {}, {}, {}});
  CHECK(c.bytes() <= 8192);
  std::optional<KvValue> out;
  CHECK_FALSE(c.lookup("k0", out, 0));
  CHECK(c.lookup("k99", out, 0));
  // A value larger than a quarter of the cache is not kept.
  c.wrote("big", KvValue{std::string(4096, 'x'), {}, {}, {}});
  CHECK_FALSE(c.lookup("big", out, 0));
  KvReadCache off(std::chrono::seconds(0), 8192);
  off.wrote("k", KvValue{"v", {}, {}, {}});
  CHECK_FALSE(off.lookup("k", out, 0));
}

TEST_CASE("read cache: a read that began before a forget (a local write) cannot fill, one after it can") {
  KvReadCache c(std::chrono::seconds(60), 1 << 20);
  std::optional<KvValue> out;
  const uint64_t before = c.begin_read();  // a read of "k" begins; it may see the old row
  c.forget("k");                           // a write to another key, or to this one, is over
  c.fill("k", KvValue{"old", {}, {}, {}}, before);
  CHECK_FALSE(c.lookup("k", out, 0));  // dropped: it may predate the write
  const uint64_t after = c.begin_read();
  c.fill("k", KvValue{"new", {}, {}, {}}, after);
  REQUIRE(c.lookup("k", out, 0));
  REQUIRE(out);
  CHECK(out->value == "new");
  // Known absences are kept, and an entry past its KV expiration reads as absent.
  c.fill("gone", std::nullopt, c.begin_read());
  REQUIRE(c.lookup("gone", out, 0));
  CHECK_FALSE(out);
  c.fill("ttl", KvValue{"v", {}, int64_t{100}, {}}, c.begin_read());
  REQUIRE(c.lookup("ttl", out, 99));
  CHECK(out);
  REQUIRE(c.lookup("ttl", out, 100));
  CHECK_FALSE(out);
}
