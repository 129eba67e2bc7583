// Request shapes and limits of the cloudflare stores, pinned against a loopback server that records
// every request (FakeUpstream, fake_upstream.h): `check`'s token verification (account-owned, then user-owned), R2 conditional
// writes never repeated once they may have landed, R2 metadata and D1 statements and values checked
// on what would be sent (413 before any request), and R2's part size growing with the object.
#include <doctest/doctest.h>

#include <mutex>
#include <string>
#include <vector>

#include "fake_upstream.h"
#include "store/cloudflare/cloudflare_d1.h"
#include "store/cloudflare/cloudflare_r2.h"
#include "store/cloudflare/cloudflare_registry.h"
#include "store/cloudflare/token_check.h"
#include "support.h"

using namespace era;
using namespace era::cf;
using era::test::Captured;
using era::test::FakeUpstream;
using era::test::fast_http;
using era::test::status_of;

namespace {

void json_answer(era::http::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

const char* kActive = R"({"success":true,"errors":[],"messages":[],"result":{"id":"t1","status":"active"}})";
const char* kInvalid = R"({"success":false,"errors":[{"code":1000,"message":"Invalid API Token"}],"messages":[],"result":null})";

ChunkSource bytes(const std::string& data) {
  return [data](const ChunkSink& sink) { sink(data.data(), data.size()); };
}

}  // namespace

TEST_CASE("check: an account-owned token verifies at /accounts/{id}/tokens/verify, one GET with the bearer token") {
  FakeUpstream up([](const Captured&, era::http::Response& res) { json_answer(res, 200, kActive); });
  HttpClient http(fast_http());
  RestApi api(http, up.url() + "/client/v4/accounts/acc123", "tok-abc");
  CheckItem item = verify_api_token(api);
  CHECK(item.ok);
  CHECK(item.detail == "an account-owned token, active");
  auto seen = up.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "GET");
  CHECK(seen[0].target == "/client/v4/accounts/acc123/tokens/verify");
  CHECK(seen[0].header("Authorization") == "Bearer tok-abc");
}

TEST_CASE("check: a user-owned token, refused at the account endpoint, verifies at /user/tokens/verify") {
  FakeUpstream up([](const Captured&, era::http::Response& res) { json_answer(res, 401, kInvalid); });
  up.on("GET", "/client/v4/user/tokens/verify", [](const Captured&, era::http::Response& res) { json_answer(res, 200, kActive); });
  HttpClient http(fast_http());
  RestApi api(http, up.url() + "/client/v4/accounts/acc123", "tok-user");
  CheckItem item = verify_api_token(api);
  CHECK(item.ok);
  CHECK(item.detail == "a user-owned token, active");
  auto seen = up.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].target == "/client/v4/accounts/acc123/tokens/verify");
  CHECK(seen[1].method == "GET");
  CHECK(seen[1].target == "/client/v4/user/tokens/verify");
  CHECK(seen[1].header("Authorization") == "Bearer tok-user");
}

TEST_CASE("check: a token refused at both endpoints fails with both answers; an inactive one says its status") {
  {
    FakeUpstream up([](const Captured&, era::http::Response& res) { json_answer(res, 403, kInvalid); });
    HttpClient http(fast_http());
    RestApi api(http, up.url() + "/client/v4/accounts/acc123", "bad");
    CheckItem item = verify_api_token(api);
    CHECK_FALSE(item.ok);
    CHECK(item.detail.find("account-owned token (/accounts/<id>/tokens/verify: HTTP 403 (code 1000: Invalid API Token))") !=
          std::string::npos);
    CHECK(item.detail.find("user-owned token (/user/tokens/verify: HTTP 403") != std::string::npos);
    CHECK(item.detail.find("bad") == std::string::npos);  // never the token itself
  }
  {
    FakeUpstream up([](const Captured&, era::http::Response& res) { json_answer(res, 401, kInvalid); });
    up.on("GET", "/client/v4/user/tokens/verify", [](const Captured&, era::http::Response& res) {
      json_answer(res, 200, R"({"success":true,"errors":[],"messages":[],"result":{"id":"t","status":"disabled"}})");
    });
    HttpClient http(fast_http());
    RestApi api(http, up.url() + "/client/v4/accounts/acc123", "t");
    CheckItem item = verify_api_token(api);
    CHECK_FALSE(item.ok);
    CHECK(item.detail == "the user-owned API token is disabled (it must be active)");
  }
}

TEST_CASE("check: an API base without /accounts/ (the emulator) and no token endpoint passes with a note") {
  FakeUpstream up([](const Captured&, era::http::Response& res) { json_answer(res, 404, "{}"); });
  HttpClient http(fast_http());
  RestApi api(http, up.url() + "/cdn-cgi/explorer/api", "t");
  CheckItem item = verify_api_token(api);
  CHECK(item.ok);
  CHECK(item.detail.find("no token endpoint") != std::string::npos);
  CHECK(up.requests().size() == 1);
  CHECK(user_token_verify_url("https://api.cloudflare.com/client/v4/accounts/abc") ==
        "https://api.cloudflare.com/client/v4/user/tokens/verify");
  CHECK(user_token_verify_url("http://127.0.0.1:9/cdn-cgi/explorer/api").empty());
}

TEST_CASE("R2: a conditional PutObject is sent once even when the answer is a 5xx; a plain one is retried") {
  FakeUpstream up([](const Captured&, era::http::Response& res) {
    res.status = 503;
    res.set_content("<Error><Code>ServiceUnavailable</Code><Message>busy</Message></Error>", "application/xml");
  });
  HttpClient http(fast_http());
  S3Client s3(http, up.url(), "bucket", {"AKID", "secret"});
  CloudflareR2 r2(s3, http, 5u << 20, 5ull << 30);
  for (int variant = 0; variant < 3; ++variant) {
    const size_t before = up.requests().size();
    PutOptions o;
    o.size = 5;
    if (variant == 0) o.precondition.if_none_match = std::vector<std::string>{"*"};
    if (variant == 1) o.precondition.if_match = std::vector<std::string>{"0123abcd"};
    const int status = status_of([&] { r2.put("ns", "k", o, bytes("hello")); });
    CHECK(status >= 500);
    auto seen = up.requests();
    const size_t sent = seen.size() - before;
    if (variant < 2) {
      CHECK(sent == 1);  // it may have landed: a second try could be judged against its own object
      bool conditional = false;
      for (const auto& [k, v] : seen.back().headers)
        if (k == "If-None-Match" || k == "If-Match") conditional = true;
      CHECK(conditional);
    } else {
      CHECK(sent == 3);  // unconditional: the same bytes again change nothing
    }
  }
}

TEST_CASE("R2: custom metadata is measured as encoded for its headers: over 8192 bytes is 413 before any request") {
  FakeUpstream up([](const Captured&, era::http::Response& res) { res.status = 200; });
  HttpClient http(fast_http());
  S3Client s3(http, up.url(), "bucket", {"AKID", "secret"});
  CloudflareR2 r2(s3, http, 5u << 20, 5ull << 30);
  // 4000 uppercase letters are 4000 bytes as given, 12000 once encoded (each one "%XX").
  PutOptions o;
  o.custom_metadata["N"] = std::string(4000, 'A') + std::string(4000, 'v').substr(0, 10);
  o.custom_metadata[std::string(2000, 'K')] = "v";
  CHECK(CloudflareR2::encoded_metadata_bytes(o.custom_metadata) > CloudflareR2::kMaxMetadataBytes);
  std::string code;
  CHECK(status_of([&] { r2.put("ns", "k", o, bytes("x")); }, &code) == 413);
  CHECK(code == "metadata_too_large");
  CHECK(up.requests().empty());
  // Bytes that travel as they are count once: exactly 8192 is within the limit.
  CHECK(CloudflareR2::encoded_metadata_bytes({{"a", std::string(8191, 'v')}}) == 8192);
  CHECK(CloudflareR2::encoded_metadata_bytes({{"A", std::string(8189, 'v')}}) == 8192);
  // At the limit the request goes up, the metadata in its header.
  PutOptions ok;
  ok.custom_metadata["a"] = std::string(8191, 'v');
  CHECK(status_of([&] { r2.put("ns", "k", ok, bytes("x")); }) == 200);
  auto seen = up.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "PUT");
  CHECK(seen[0].header("x-amz-meta-a") == std::string(8191, 'v'));
  // Non-ASCII and '%' in values are encoded too.
  CHECK(CloudflareR2::encoded_metadata_bytes({{"a", "\xc3\xa9%"}}) == 1 + 9);
}

TEST_CASE("R2: the part size grows with the object so 10,000 parts always hold it") {
  const uint64_t MiB = 1u << 20, GiB = 1ull << 30;
  CHECK(CloudflareR2::part_size_for(std::nullopt, 16 * MiB, 5 * GiB) == 16 * MiB);
  CHECK(CloudflareR2::part_size_for(uint64_t(GiB), 16 * MiB, 5 * GiB) == 16 * MiB);  // 1 GiB: 64 parts
  // 16 MiB x 10,000 is 156.25 GiB: a 200 GiB object needs bigger parts (a whole MiB, just enough).
  const uint64_t big = 200 * GiB;
  const uint64_t part = CloudflareR2::part_size_for(big, 16 * MiB, 5ull << 40);
  CHECK(part % MiB == 0);
  CHECK((big + part - 1) / part <= CloudflareR2::kMaxParts);
  CHECK((big + (part - MiB) - 1) / (part - MiB) > CloudflareR2::kMaxParts);
  // Unknown size: sized for the largest object allowed.
  const uint64_t unknown = CloudflareR2::part_size_for(std::nullopt, 5 * MiB, 1ull << 40);
  CHECK(unknown * CloudflareR2::kMaxParts >= (1ull << 40));
  // Every size up to the limit fits, at the edges included.
  for (uint64_t size : std::vector<uint64_t>{1, 5 * MiB, 160 * GiB, 160 * GiB + 1, (5ull << 40) - (5ull << 30)}) {
    const uint64_t p = CloudflareR2::part_size_for(size, 5 * MiB, 5ull << 40);
    CHECK(p >= 5 * MiB);
    CHECK(p <= 5 * GiB);
    CHECK((size + p - 1) / p <= CloudflareR2::kMaxParts);
  }
}

namespace {

// A D1 that answers every /raw call with empty results (the schema reads succeed, nothing exists).
FakeUpstream::Script empty_d1() {
  return [](const Captured&, era::http::Response& res) {
    const std::string r = R"({"results":{"columns":[],"rows":[]},"success":true,"meta":{}})";
    json_answer(res, 200, R"({"success":true,"errors":[],"messages":[],"result":[)" + r + "," + r + "]}");
  };
}

bool any_body_has(FakeUpstream& up, const std::string& needle) {
  for (const auto& s : up.requests())
    if (s.body.find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("D1: a BLOB whose hex form passes D1's 2,000,000-byte value limit is 413 before the statement is sent") {
  FakeUpstream up(empty_d1());
  HttpClient http(fast_http());
  RestApi api(http, up.url(), "t");
  D1Client client(api, "db");
  CloudflareD1 d1(client, D1Limits{});
  std::string code;
  auto statement = [](const std::string& sql, SqlValue v) {
    SqlStatement st;
    st.sql = sql;
    st.params.push_back(std::move(v));
    return st;
  };
  SqlStatement st = statement("SELECT length(?1) AS marker_blob", SqlBlob{std::string(1000001, 'b')});
  CHECK(status_of([&] { d1.query("ns", st); }, &code) == 413);
  CHECK(code == "value_too_large");
  CHECK_FALSE(any_body_has(up, "marker_blob"));
  // A string parameter over the limit as well.
  SqlStatement s2 = statement("SELECT length(?1) AS marker_text", std::string(2000001, 's'));
  CHECK(status_of([&] { d1.query("ns", s2); }, &code) == 413);
  CHECK(code == "value_too_large");
  CHECK_FALSE(any_body_has(up, "marker_text"));
  // At the limit it goes up (1,000,000 bytes: 2,000,000 hex characters).
  SqlStatement s3 = statement("SELECT length(?1) AS marker_ok", SqlBlob{std::string(1000000, 'b')});
  status_of([&] { d1.query("ns", s3); });
  CHECK(any_body_has(up, "marker_ok"));
}

TEST_CASE("D1: a statement within the SQL limit that the rewrite makes longer than 100,000 bytes is 413, unsent") {
  FakeUpstream up(empty_d1());
  HttpClient http(fast_http());
  RestApi api(http, up.url(), "t");
  D1Client client(api, "db");
  CloudflareD1 d1(client, D1Limits{});
  // 99,2xx bytes as given; each of the 100 integers becomes a 24-byte literal.
  SqlStatement st;
  st.sql = "SELECT 'marker_long" + std::string(99000, 'x') + "'";
  for (int i = 0; i < 100; ++i) {
    st.sql += ", ?";
    st.params.emplace_back(int64_t(INT64_MIN));
  }
  REQUIRE(st.sql.size() < 100000);
  std::string code;
  CHECK(status_of([&] { d1.query("ns", st); }, &code) == 413);
  CHECK(code == "statement_too_large");
  CHECK_FALSE(any_body_has(up, "marker_long"));
}

TEST_CASE("registry: record_* send nothing; a failed flush keeps its changes (newer ones win) and sends them again") {
  CloudflareRegistry* registry = nullptr;
  bool failing = true;
  std::mutex mu;
  FakeUpstream up([&](const Captured& req, era::http::Response& res) {
    const bool flush = req.body.find("json_each") != std::string::npos;
    std::lock_guard<std::mutex> lock(mu);
    if (flush && failing) {
      // While this flush is out, a newer change of the same key arrives.
      registry->record_put("kv", "ns", "k", 222, std::nullopt, std::nullopt);
      json_answer(res, 500, R"({"success":false,"errors":[{"code":7500,"message":"internal error"}],"result":null})");
      return;
    }
    const std::string r = R"({"results":{"columns":[],"rows":[]},"success":true,"meta":{}})";
    std::string all;
    for (int i = 0; i < 16; ++i) all += (i ? "," : "") + r;
    json_answer(res, 200, R"({"success":true,"errors":[],"messages":[],"result":[)" + all + "]}");
  });
  HttpClient http(fast_http());
  RestApi api(http, up.url(), "t");
  D1Client client(api, "db");
  CloudflareD1 tables(client, D1Limits{});
  CloudflareRegistry reg(client, tables);
  registry = &reg;
  reg.record_put("kv", "ns", "k", 111, std::nullopt, std::nullopt);
  reg.record_put("kv", "ns", "other", 5, std::nullopt, std::nullopt);
  reg.record_remove("r2", "ns", "gone");
  CHECK(up.requests().empty());  // queued, nothing sent
  CHECK(reg.queued() == 3);
  CHECK(status_of([&] { reg.flush(); }) >= 500);
  CHECK(reg.queued() == 3);  // nothing dropped
  {
    std::lock_guard<std::mutex> lock(mu);
    failing = false;
  }
  CHECK(reg.flush() == 3);
  CHECK(reg.queued() == 0);
  const Captured last = up.requests().back();
  CHECK(last.body.find(R"(\"k\":\"k\")") != std::string::npos);
  CHECK(last.body.find(R"(\"z\":222)") != std::string::npos);  // the newer change of k
  CHECK(last.body.find(R"(\"z\":111)") == std::string::npos);
  CHECK(last.body.find(R"(\"k\":\"gone\")") != std::string::npos);
  CHECK(reg.flush() == 0);  // nothing queued: no call
  CHECK(up.requests().back().body == last.body);
}
