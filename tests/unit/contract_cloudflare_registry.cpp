// The cloudflare registry against Cloudflare's emulator (ctest contract_cloudflare): KV and R2 writes
// cost no D1 call of their own (their registry changes are queued and flushed in one batch), a replica
// reads its own writes at once, and a replica that restarts after its predecessor stopped without
// flushing reindexes before it serves, so nothing stays hidden. In contract_local these cases have
// nothing to check (the local registry commits with each write: tests/unit/test_local_registry.cpp).
#include <doctest/doctest.h>

#include <cstdlib>
#include <random>
#include <string>

#include "app/backends.h"
#include "config/config.h"
#include "obs/metrics.h"
#include "store/cloudflare/cloudflare_backend.h"
#include "store/cloudflare/cloudflare_registry.h"
#include "support.h"

using namespace era;

namespace {

bool cloudflare_mode() {
  const char* b = std::getenv("ERA_PROXY_BACKEND");
  return b && std::string(b) == "cloudflare";
}

std::string tag() {
  static std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng() % 1000000000);
}

struct Opened {
  era::test::TempDir tmp{"cfreg"};
  std::unique_ptr<Backend> backend;
  explicit Opened(int flush_ms) {
    FlagValues flags{{"data-dir", tmp.str()}};
    Config config = load_config("", flags, [](const char* name) { return std::getenv(name); });
    config.cf_registry_flush_ms = flush_ms;
    backend = open_backend(config);
  }
  ~Opened() {
    if (backend) backend->close();
  }
  cf::CloudflareRegistry& registry() { return dynamic_cast<cf::CloudflareBackend&>(*backend).cloudflare_registry(); }
};

uint64_t d1_calls() {
  uint64_t n = 0;
  for (const auto& [labels, v] : obs::metrics().upstream_calls().snapshot())
    if (!labels.empty() && labels[0] == "d1") n += v;
  return n;
}

ChunkSource body(const std::string& s) {
  return [s](const ChunkSink& sink) { sink(s.data(), s.size()); };
}

std::set<std::string> listed(ResourceRegistry& r, const std::string& ns) {
  ResourceQuery q;
  q.ns = ns;
  q.limit = 1000;
  std::set<std::string> out;
  for (const auto& res : r.list(q).resources) out.insert(res.type + ":" + res.key);
  return out;
}

}  // namespace

TEST_SUITE("contract") {

TEST_CASE("cloudflare registry: KV and R2 writes cost no D1 call; one flush carries them all; reads see them") {
  if (!cloudflare_mode()) return;  // local mode: the registry commits with the write (see the header)
  Opened o(60000);  // no flusher running (not started), so only what the test does is sent
  const std::string ns = "cfreg_" + tag();
  o.backend->kv().put(ns, "warm", KvValue{"w", std::nullopt, std::nullopt});  // schema reads done once
  o.registry().flush();
  const uint64_t before = d1_calls();
  for (int i = 0; i < 20; ++i) o.backend->kv().put(ns, "k" + std::to_string(i), KvValue{"v", std::nullopt, std::nullopt});
  PutOptions po;
  po.custom_metadata["m"] = "1";
  for (int i = 0; i < 5; ++i) o.backend->r2().put(ns, "o" + std::to_string(i), po, body("bytes"));
  o.backend->kv().remove(ns, "warm");
  CHECK(d1_calls() == before);  // 26 writes, not one D1 call
  CHECK(o.registry().queued() == 26);
  // R2 list fills custom metadata from the queue: still no D1 call.
  ListOptions lo;
  auto page = o.backend->r2().list(ns, lo);
  REQUIRE(page.objects.size() == 5);
  CHECK(page.objects[0].custom_metadata.at("m") == "1");
  CHECK(d1_calls() == before);
  // A listing flushes first (one D1 call for all 26 changes) and sees every write.
  auto names = listed(o.registry(), ns);
  CHECK(d1_calls() - before >= 1);
  CHECK(names.size() == 25);
  CHECK(names.count("kv:k19") == 1);
  CHECK(names.count("r2:o4") == 1);
  CHECK(names.count("kv:warm") == 0);
  CHECK(o.registry().queued() == 0);
  CHECK(o.backend->registry().stats(ns, std::nullopt).total == 25);
}

TEST_CASE("cloudflare registry: a restart after a stop without flushing reindexes before serving") {
  if (!cloudflare_mode()) return;
  const std::string id = "contract-host:" + tag();
  const std::string ns = "cfcrash_" + tag();
  Opened first(60000);
  first.backend->start(id);  // its marker is in D1 now; its flusher would wait a minute
  first.backend->kv().put(ns, "a", KvValue{"1", std::nullopt, std::nullopt});
  first.backend->r2().put(ns, "b", PutOptions{}, body("2"));
  CHECK(first.registry().queued() == 2);
  // As a crash would leave it: the store holds both, the registry neither (another process reads D1).
  Opened other(60000);
  CHECK(listed(other.backend->registry(), ns).empty());
  // The replica restarted under the same id finds the marker and repairs before serving.
  Opened restarted(60000);
  restarted.backend->start(id);
  CHECK(listed(restarted.backend->registry(), ns) == std::set<std::string>{"kv:a", "r2:b"});
  // A graceful stop flushes and removes the marker: a start after it has nothing to repair.
  restarted.backend->close();
  first.backend->close();
  Opened again(60000);
  again.backend->start(id);
  CHECK(listed(again.backend->registry(), ns).size() == 2);
}

}  // TEST_SUITE("contract")
