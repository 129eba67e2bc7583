// CloudflareKv against a loopback server that records every request and answers like Workers KV's REST
// API (FakeUpstream, fake_upstream.h): the exact requests (method, path, query, headers, body) pinned
// against Cloudflare's API reference (developers.cloudflare.com/api/resources/kv/subresources/
// namespaces/...), the group commit of writes (rounds, folding, order, failure fan-out), coalesced and
// cached reads, and the upstream calls each operation costs.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fake_upstream.h"
#include "store/cloudflare/cloudflare_kv.h"
#include "support.h"
#include "util/encoding.h"
#include "util/time.h"

using era::ApiError;
using era::KvValue;
using era::cf::CloudflareKv;
using era::cf::HttpClient;
using era::cf::KvOptions;
using era::cf::RestApi;
using era::http::Response;
using era::test::Captured;
using era::test::FakeUpstream;
using era::test::fast_http;
using era::test::status_of;
using nlohmann::json;

namespace {

const std::string kNs = "0123456789abcdef0123456789abcdef";
const std::string kPath = "/accounts/acc/storage/kv/namespaces/" + kNs;

std::string envelope(const json& result) {
  return json{{"success", true}, {"errors", json::array()}, {"messages", json::array()}, {"result", result}}.dump();
}

std::string error_envelope(int code, const std::string& message) {
  return json{{"success", false}, {"errors", {{{"code", code}, {"message", message}}}}, {"messages", json::array()},
              {"result", nullptr}}
      .dump();
}

// What the upstream answers when a test scripted nothing else: a KV success with an empty result.
void kv_success(const Captured&, Response& res) { res.set_content(envelope(json::object()), "application/json"); }

KvOptions no_cache() {
  KvOptions o;
  o.cache_ttl = std::chrono::milliseconds(0);
  o.same_key_interval = std::chrono::milliseconds(0);
  return o;
}

KvOptions cached() {
  KvOptions o = no_cache();
  o.cache_ttl = std::chrono::seconds(60);
  return o;
}

struct Rig {
  FakeUpstream up{kv_success};
  HttpClient http{fast_http(1)};
  RestApi api{http, up.url("/accounts/acc"), "TOKEN"};
  std::unique_ptr<CloudflareKv> kv;
  explicit Rig(KvOptions o = no_cache(), era::cf::ResourceRecorder* rec = nullptr)
      : kv(std::make_unique<CloudflareKv>(api, kNs, rec, o)) {}
};

// Answers POST bulk/get as KV does for `store`: names -> stored values (absent: null).
void serve_bulk_get(FakeUpstream& up, std::map<std::string, json> store) {
  up.on("POST", kPath + "/bulk/get", [store = std::move(store)](const Captured& s, Response& res) {
    json values = json::object();
    const json asked = json::parse(s.body);
    for (const auto& k : asked["keys"]) {
      auto it = store.find(k.get<std::string>());
      values[k.get<std::string>()] = it == store.end() ? json(nullptr) : it->second;
    }
    res.set_content(envelope(json{{"values", values}}), "application/json");
  });
}

// Answers PUT bulk and POST bulk/delete as KV does when every key in them succeeded.
void serve_bulk_writes(FakeUpstream& up) {
  auto all_done = [](const Captured& s, Response& res) {
    res.set_content(envelope(json{{"successful_key_count", json::parse(s.body).size()}, {"unsuccessful_keys", json::array()}}),
                    "application/json");
  };
  up.on("PUT", kPath + "/bulk", all_done);
  up.on("POST", kPath + "/bulk/delete", all_done);
}

// The store's own clock (util/time.h): std::time() reads the kernel's coarse clock, which can trail it
// by a tick across a second's boundary (an expiration checked against it was then off by one).
int64_t now_s() { return era::unix_now(); }

// A registry that remembers what it was told (the store's side of cloudflare_registry.h).
struct Recorded : era::cf::ResourceRecorder {
  std::mutex mu;
  std::vector<std::string> log;
  bool refuse_puts = false;  // record_put throws, as a registry that cannot record would
  era::KeyLocks locks;
  era::KeyLocks::Guard order(const char*, const std::string& ns, const std::string& key) override {
    return locks.lock(ns + ":" + key);
  }
  void record_put(const char*, const std::string& ns, const std::string& key, int64_t size,
                  const std::optional<std::string>&, std::optional<int64_t>) override {
    std::lock_guard<std::mutex> lock(mu);
    if (refuse_puts) throw ApiError(503, "upstream_unavailable", "the registry is unavailable");
    log.push_back("put " + ns + ":" + key + " " + std::to_string(size));
  }
  void record_remove(const char*, const std::string& ns, const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu);
    log.push_back("remove " + ns + ":" + key);
  }
  std::map<std::string, std::string> metadata_of(const char*, const std::string&,
                                                 const std::vector<std::string>&) override {
    return {};
  }
};

}  // namespace

TEST_SUITE("cloudflare kv") {

// ---------------------------------------------------------------- request shapes

TEST_CASE("put without metadata: PUT values/<key> with the raw bytes, as wrangler sends it") {
  Rig r;
  const std::string bytes("a\0b\xff\xfe", 5);
  r.kv->put("app", "a/b c%", KvValue{bytes, std::nullopt, std::nullopt, std::nullopt});
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "PUT");
  CHECK(seen[0].target == kPath + "/values/app%3Aa%2Fb%20c%25");  // one path segment, no query
  CHECK(seen[0].header("Content-Type") == "application/octet-stream");
  CHECK(seen[0].header("Authorization") == "Bearer TOKEN");
  CHECK(seen[0].body == bytes);
}

TEST_CASE("put with metadata: multipart with `value` as a plain form field and `metadata` as JSON text") {
  Rig r;
  r.kv->put("app", "k", KvValue{"héllo", std::string(R"({"a":1})"), std::nullopt, std::nullopt});
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "PUT");
  CHECK(seen[0].target == kPath + "/values/app%3Ak");
  CHECK(seen[0].header("Content-Type").rfind("multipart/form-data; boundary=", 0) == 0);
  const auto parts = seen[0].parts();
  REQUIRE(parts.size() == 2);
  REQUIRE(parts.count("value") == 1);
  REQUIRE(parts.count("metadata") == 1);
  const auto& value = parts.find("value")->second;
  CHECK(value.content == "héllo");
  CHECK(value.filename.empty());  // a plain field, not a file
  CHECK(parts.find("metadata")->second.content == R"({"a":1})");
}

TEST_CASE("multipart body: text as a plain field; bytes that are not UTF-8 as a file part") {
  const std::string text = CloudflareKv::multipart_body("B", KvValue{"hi", std::string("{}"), {}, {}});
  CHECK(text ==
        "--B\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nhi\r\n"
        "--B\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{}\r\n--B--\r\n");
  const std::string bytes = CloudflareKv::multipart_body("B", KvValue{"\xff", std::string("{}"), {}, {}});
  CHECK(bytes ==
        "--B\r\nContent-Disposition: form-data; name=\"value\"; filename=\"value\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n\xff\r\n"
        "--B\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{}\r\n--B--\r\n");
}

TEST_CASE("expiration_ttl is passed through as expiration_ttl, never turned into a time") {
  Rig r;
  r.kv->put("app", "t", KvValue{"v", std::nullopt, now_s() + 60, 60});
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].target == kPath + "/values/app%3At?expiration_ttl=60");
  // A TTL under Cloudflare's minimum never leaves.
  CHECK(status_of([&] { r.kv->put("app", "t", KvValue{"v", std::nullopt, now_s() + 30, 30}); }) == 400);
  CHECK(r.up.calls() == 1);
}

TEST_CASE("an absolute expiration near Cloudflare's 60 s minimum is moved later by the margin; a far one is kept") {
  CHECK(CloudflareKv::expiration_to_send(1000 + 60, 1000) == 1000 + 60 + CloudflareKv::kExpirationMarginS);
  CHECK(CloudflareKv::expiration_to_send(1000 + 65, 1000) == 1000 + 60 + CloudflareKv::kExpirationMarginS);
  CHECK(CloudflareKv::expiration_to_send(5000, 1000) == 5000);
  Rig r;
  const int64_t far = now_s() + 3600;
  r.kv->put("app", "far", KvValue{"v", std::nullopt, far, std::nullopt});
  const int64_t before = now_s();
  r.kv->put("app", "near", KvValue{"v", std::nullopt, before + 60, std::nullopt});
  const int64_t after = now_s();
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].target == kPath + "/values/app%3Afar?expiration=" + std::to_string(far));
  const std::string q = seen[1].target.substr(seen[1].target.find("?expiration=") + 12);
  const int64_t sent = std::stoll(q);
  CHECK(sent >= before + 60 + CloudflareKv::kExpirationMarginS);
  CHECK(sent <= after + 60 + CloudflareKv::kExpirationMarginS);
}

TEST_CASE("get: one POST bulk/get with withMetadata brings value, metadata and expiration") {
  Rig r;
  serve_bulk_get(r.up, {{"app:k", {{"value", "v1"}, {"metadata", {{"m", 1}}}, {"expiration", 4102444800.0}}}});
  auto v = r.kv->get("app", "k");
  REQUIRE(v);
  CHECK(v->value == "v1");
  CHECK(v->metadata == std::string(R"({"m":1})"));
  CHECK(v->expiration == 4102444800);
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "POST");
  CHECK(seen[0].target == kPath + "/bulk/get");
  CHECK(seen[0].header("Content-Type") == "application/json");
  CHECK(json::parse(seen[0].body) == json{{"keys", {"app:k"}}, {"type", "text"}, {"withMetadata", true}});
  // A missing key is null in the answer.
  CHECK_FALSE(r.kv->get("app", "missing"));
  CHECK(r.up.calls() == 2);
}

TEST_CASE("get: a value bulk/get cannot carry as text is read again raw, with its expiration header") {
  Rig r;
  serve_bulk_get(r.up, {{"app:bin", {{"value", "\xEF\xBF\xBD\x01"}, {"metadata", {{"b", true}}}}}});
  r.up.on("GET", kPath + "/values/app%3Abin", [](const Captured&, Response& res) {
    res.set_header("expiration", "4102444800");
    res.set_content(std::string("\xff\x01", 2), "application/octet-stream");
  });
  auto v = r.kv->get("app", "bin");
  REQUIRE(v);
  CHECK(v->value == std::string("\xff\x01", 2));
  CHECK(v->metadata == std::string(R"({"b":true})"));
  CHECK(v->expiration == 4102444800);
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[1].header("Accept") == "application/octet-stream");
}

TEST_CASE("get: if bulk/get is refused, GET values + GET metadata; a 404 is no such key only with 10009") {
  Rig r;
  r.up.on("POST", kPath + "/bulk/get", [](const Captured&, Response& res) {
    res.status = 400;
    res.set_content(error_envelope(10001, "Keys must contain text-based values"), "application/json");
  });
  r.up.on("GET", kPath + "/values/app%3Ak",
          [](const Captured&, Response& res) { res.set_content("raw", "application/octet-stream"); });
  r.up.on("GET", kPath + "/metadata/app%3Ak",
          [](const Captured&, Response& res) { res.set_content(envelope(json{{"m", 2}}), "application/json"); });
  r.up.otherwise([](const Captured&, Response& res) {
    res.status = 404;
    res.set_content(error_envelope(10009, "get: 'key not found'"), "application/json");
  });
  auto v = r.kv->get("app", "k");
  REQUIRE(v);
  CHECK(v->value == "raw");
  CHECK(v->metadata == std::string(R"({"m":2})"));
  CHECK_FALSE(r.kv->get("app", "nope"));
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 5);
  CHECK(seen[1].method == "GET");
  CHECK(seen[1].target == kPath + "/values/app%3Ak");
  CHECK(seen[2].method == "GET");
  CHECK(seen[2].target == kPath + "/metadata/app%3Ak");
}

TEST_CASE("a namespace error is a 502 that names the namespace, for reads and writes alike") {
  Rig r;
  for (int code : {10013, 0}) {  // namespace not found; and a 404 without 10009 at all
    CAPTURE(code);
    r.up.otherwise([code](const Captured&, Response& res) {
      res.status = 404;
      res.set_content(code ? error_envelope(code, "get: 'namespace not found'") : "Not Found", "text/plain");
    });
    for (const auto& op : std::vector<std::function<void()>>{
             [&] { r.kv->get("app", "k"); },
             [&] { r.kv->put("app", "k", KvValue{"v", {}, {}, {}}); },
             [&] { r.kv->remove("app", "k"); }}) {
      try {
        op();
        FAIL("expected a namespace error");
      } catch (const ApiError& e) {
        CHECK(e.status() == 502);
        CHECK(std::string(e.what()).find("KV namespace " + kNs) != std::string::npos);
      }
    }
  }
}

TEST_CASE("delete: DELETE values/<key>; a 404 with 10009 is already done") {
  Rig r;
  r.up.otherwise([](const Captured&, Response& res) {
    res.status = 404;
    res.set_content(error_envelope(10009, "delete: 'key not found'"), "application/json");
  });
  r.kv->remove("app", "gone");
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "DELETE");
  CHECK(seen[0].target == kPath + "/values/app%3Agone");
}

// ---------------------------------------------------------------- group commit

// Starts `n` writers of `fn(i)` on threads while the upstream holds a first lone write; returns once they
// all wait for the next round. join() lets the round go.
struct Burst {
  std::vector<std::thread> threads;
  std::vector<int> status;
  explicit Burst(size_t n) : status(n, -1) {}
  void join() {
    for (auto& t : threads) t.join();
  }
};

void start_burst(Burst& b, std::function<void(size_t)> fn) {
  for (size_t i = 0; i < b.status.size(); ++i)
    b.threads.emplace_back([&b, fn, i] { b.status[i] = status_of([&] { fn(i); }); });
}

TEST_CASE("concurrent writes go together: one PUT bulk and one POST bulk/delete carry the next round") {
  Rig r;
  r.up.hold();
  std::thread first([&] { r.kv->put("app", "first", KvValue{"1", {}, {}, {}}); });
  r.up.wait_calls(1);  // the lone write left at once, alone
  Burst puts(5), dels(3);
  start_burst(puts, [&](size_t i) {
    r.kv->put("app", "p" + std::to_string(i),
              KvValue{i == 0 ? std::string("\xff\x00", 2) : "v" + std::to_string(i),
                      i == 1 ? std::optional<std::string>(R"({"i":1})") : std::nullopt,
                      i == 2 ? std::optional<int64_t>(now_s() + 120) : std::nullopt,
                      i == 2 ? std::optional<int64_t>(120) : std::nullopt});
  });
  start_burst(dels, [&](size_t i) { r.kv->remove("app", "d" + std::to_string(i)); });
  r.kv->wait_writes_queued(8);
  serve_bulk_writes(r.up);
  r.up.release();
  first.join();
  puts.join();
  dels.join();
  for (int s : puts.status) CHECK(s == 200);
  for (int s : dels.status) CHECK(s == 200);
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].target == kPath + "/values/app%3Afirst");
  const Captured& bulk = seen[1].target == kPath + "/bulk" ? seen[1] : seen[2];
  const Captured& bulk_delete = seen[1].target == kPath + "/bulk" ? seen[2] : seen[1];
  CHECK(bulk.method == "PUT");
  CHECK(bulk.header("Content-Type") == "application/json");
  json items = json::parse(bulk.body);
  REQUIRE(items.size() == 5);
  std::map<std::string, json> by_key;
  for (auto& it : items) by_key[it["key"].get<std::string>()] = it;
  CHECK(by_key["app:p0"] == json{{"key", "app:p0"}, {"value", era::enc::base64_encode(std::string("\xff\x00", 2))}, {"base64", true}});
  CHECK(by_key["app:p1"] == json{{"key", "app:p1"}, {"value", "v1"}, {"metadata", {{"i", 1}}}});
  CHECK(by_key["app:p2"] == json{{"key", "app:p2"}, {"value", "v2"}, {"expiration_ttl", 120}});
  CHECK(by_key["app:p3"] == json{{"key", "app:p3"}, {"value", "v3"}});
  CHECK(bulk_delete.method == "POST");
  CHECK(bulk_delete.header("Content-Type") == "application/json");
  json names = json::parse(bulk_delete.body);
  std::sort(names.begin(), names.end());
  CHECK(names == json{"app:d0", "app:d1", "app:d2"});
}

TEST_CASE("a failed bulk call fails exactly the writes it carried; unsuccessful keys fail alone") {
  Rig r;
  r.up.hold();
  std::thread first([&] { r.kv->put("app", "first", KvValue{"1", {}, {}, {}}); });
  r.up.wait_calls(1);
  Burst puts(4), dels(2);
  start_burst(puts, [&](size_t i) { r.kv->put("app", "p" + std::to_string(i), KvValue{"v", {}, {}, {}}); });
  start_burst(dels, [&](size_t i) { r.kv->remove("app", "d" + std::to_string(i)); });
  r.kv->wait_writes_queued(6);
  r.up.on("PUT", kPath + "/bulk", [](const Captured&, Response& res) {
    res.status = 500;
    res.set_content(error_envelope(10000, "internal"), "application/json");
  });
  r.up.on("POST", kPath + "/bulk/delete", [](const Captured&, Response& res) {
    res.set_content(envelope(json{{"successful_key_count", 1}, {"unsuccessful_keys", {"app:d1"}}}), "application/json");
  });
  r.up.release();
  first.join();
  puts.join();
  dels.join();
  for (int s : puts.status) CHECK(s == 502);
  CHECK(dels.status[0] == 200);
  CHECK(dels.status[1] == 503);
}

TEST_CASE("writes to one key in one round fold: the last wins and every one of them is acknowledged with it") {
  Recorded rec;  // the registry hears of each key's final state, in the store's order
  Rig r(no_cache(), &rec);
  r.up.hold();
  std::thread first([&] { r.kv->put("app", "first", KvValue{"1", {}, {}, {}}); });
  r.up.wait_calls(1);
  // In order: put v1, delete, put v3 (a delete then a put: the put is the state), and on another key
  // put then delete (the delete is the state).
  std::vector<std::thread> ts;
  std::vector<int> st(5, -1);
  auto queue = [&](size_t i, std::function<void()> fn) {
    ts.emplace_back([&, i, fn] { st[i] = status_of(fn); });
    r.kv->wait_writes_queued(i + 1);  // each joins the queue before the next: their order is known
  };
  queue(0, [&] { r.kv->put("app", "k", KvValue{"v1", {}, {}, {}}); });
  queue(1, [&] { r.kv->remove("app", "k"); });
  queue(2, [&] { r.kv->put("app", "k", KvValue{"v3", {}, {}, {}}); });
  queue(3, [&] { r.kv->put("app", "j", KvValue{"j1", {}, {}, {}}); });
  queue(4, [&] { r.kv->remove("app", "j"); });
  r.up.release();
  first.join();
  for (auto& t : ts) t.join();
  for (int s : st) CHECK(s == 200);
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 3);  // the lone first, then one put and one delete: nothing else
  std::map<std::string, Captured> by_method;
  for (size_t i = 1; i < seen.size(); ++i) by_method[seen[i].method] = seen[i];
  CHECK(by_method["PUT"].target == kPath + "/values/app%3Ak");
  CHECK(by_method["PUT"].body == "v3");
  CHECK(by_method["DELETE"].target == kPath + "/values/app%3Aj");
  CHECK(rec.log == std::vector<std::string>{"put app:first 1", "put app:k 2", "remove app:j"});
}

TEST_CASE("a put the registry cannot record is not sent, and fails alone") {
  Recorded rec;
  Rig r(no_cache(), &rec);
  rec.refuse_puts = true;
  CHECK(status_of([&] { r.kv->put("app", "k", KvValue{"v", {}, {}, {}}); }) == 503);
  CHECK(r.up.calls() == 0);
  r.kv->remove("app", "k");  // deletes are recorded after the store: unaffected
  CHECK(r.up.calls() == 1);
  CHECK(rec.log == std::vector<std::string>{"remove app:k"});
}

TEST_CASE("a key written less than the interval ago waits for a later round; other keys do not wait") {
  KvOptions o = no_cache();
  o.same_key_interval = std::chrono::milliseconds(300);
  Rig r(o);
  r.up.hold();
  std::thread first([&] { r.kv->put("app", "k", KvValue{"v1", {}, {}, {}}); });
  r.up.wait_calls(1);
  std::thread again([&] { r.kv->put("app", "k", KvValue{"v2", {}, {}, {}}); });
  r.kv->wait_writes_queued(1);
  std::thread other([&] { r.kv->put("app", "j", KvValue{"j", {}, {}, {}}); });
  r.kv->wait_writes_queued(2);
  r.up.release();
  first.join();
  again.join();
  other.join();
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].body == "v1");
  CHECK(seen[1].target == kPath + "/values/app%3Aj");  // not held back by k
  CHECK(seen[2].target == kPath + "/values/app%3Ak");
  CHECK(seen[2].body == "v2");
}

TEST_CASE("a failed put leaves its registry row and reads nothing to second-guess it") {
  Recorded rec;
  Rig r(cached(), &rec);
  r.up.otherwise([](const Captured&, Response& res) {
    res.status = 500;
    res.set_content(error_envelope(10000, "internal"), "application/json");
  });
  CHECK(status_of([&] { r.kv->put("app", "k", KvValue{"vvv", {}, {}, {}}); }) == 502);
  CHECK(r.up.calls() == 1);  // no read: a miss may be KV's cached negative lookup
  CHECK(rec.log == std::vector<std::string>{"put app:k 3"});
  // The cache forgot the key: the next read goes upstream.
  r.up.otherwise(kv_success);
  serve_bulk_get(r.up, {});
  CHECK_FALSE(r.kv->get("app", "k"));
  CHECK(r.up.calls() == 2);
}

// ---------------------------------------------------------------- reads: cache and coalescing

TEST_CASE("read cache: a write through this proxy is read back at once without a call; so is a delete") {
  Rig r(cached());
  r.kv->put("app", "k", KvValue{"v", std::string("{\"m\":1}"), std::nullopt, std::nullopt});
  CHECK(r.up.calls() == 1);
  auto v = r.kv->get("app", "k");
  REQUIRE(v);
  CHECK(v->value == "v");
  CHECK(v->metadata == std::string("{\"m\":1}"));
  r.kv->remove("app", "k");
  CHECK_FALSE(r.kv->get("app", "k"));
  CHECK(r.up.calls() == 2);  // the put and the delete; no read
  // A miss read upstream is cached too (KV caches its negative lookups for as long).
  serve_bulk_get(r.up, {});
  CHECK_FALSE(r.kv->get("app", "other"));
  CHECK_FALSE(r.kv->get("app", "other"));
  CHECK(r.up.calls() == 3);
}

TEST_CASE("read cache off (ttl 0): every read goes upstream") {
  Rig r(no_cache());
  serve_bulk_get(r.up, {{"app:k", {{"value", "v"}, {"metadata", nullptr}}}});
  r.kv->put("app", "k", KvValue{"v", {}, {}, {}});
  CHECK(r.kv->get("app", "k")->value == "v");
  CHECK(r.kv->get("app", "k")->value == "v");
  CHECK(r.up.calls() == 3);
}

TEST_CASE("an expired value reads as absent, from the cache and from upstream") {
  Rig r(cached());
  serve_bulk_get(r.up, {{"app:old", {{"value", "v"}, {"metadata", nullptr}, {"expiration", 1000}}}});
  CHECK_FALSE(r.kv->get("app", "old"));
  CHECK_FALSE(r.kv->get("app", "old"));
  CHECK(r.up.calls() == 1);
}

TEST_CASE("concurrent misses are coalesced into bulk/get calls of at most 100 keys") {
  Rig r(no_cache());
  std::map<std::string, json> store;
  for (int i = 0; i < 150; ++i) store["app:k" + std::to_string(i)] = {{"value", "v" + std::to_string(i)}, {"metadata", nullptr}};
  serve_bulk_get(r.up, store);
  r.up.hold();
  std::thread first([&] { CHECK(r.kv->get("app", "k0")->value == "v0"); });
  r.up.wait_calls(1);
  std::vector<std::thread> readers;
  for (int i = 1; i < 150; ++i)
    readers.emplace_back([&, i] { CHECK(r.kv->get("app", "k" + std::to_string(i))->value == "v" + std::to_string(i)); });
  readers.emplace_back([&] { CHECK(r.kv->get("app", "k1")->value == "v1"); });  // a key asked twice
  r.kv->wait_reads_queued(150);
  r.up.release();
  first.join();
  for (auto& t : readers) t.join();
  auto seen = r.up.requests();
  REQUIRE(seen.size() == 3);  // k0 alone, then 149 names in calls of 100 and 49
  std::vector<size_t> sizes;
  for (const auto& s : seen) {
    CHECK(s.target == kPath + "/bulk/get");
    sizes.push_back(json::parse(s.body)["keys"].size());
  }
  CHECK(sizes == std::vector<size_t>{1, 100, 49});
}

// ---------------------------------------------------------------- the call budget, counted

TEST_CASE("upstream calls per operation: 64 concurrent writers and a hot read set") {
  Rig r(cached());
  serve_bulk_writes(r.up);
  r.up.hold();
  std::thread first([&] { r.kv->put("app", "first", KvValue{"1", {}, {}, {}}); });
  r.up.wait_calls(1);
  Burst puts(64);
  start_burst(puts, [&](size_t i) { r.kv->put("app", "k" + std::to_string(i), KvValue{"v", {}, {}, {}}); });
  r.kv->wait_writes_queued(64);
  r.up.release();
  first.join();
  puts.join();
  for (int s : puts.status) CHECK(s == 200);
  CHECK(r.up.calls() == 2);  // 65 puts: 2 calls
  for (int round = 0; round < 10; ++round)
    for (int i = 0; i < 64; ++i) CHECK(r.kv->get("app", "k" + std::to_string(i))->value == "v");
  CHECK(r.up.calls() == 2);  // 640 reads of what this replica wrote: no call
}

}  // TEST_SUITE
