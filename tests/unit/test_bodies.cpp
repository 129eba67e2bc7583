// The API's JSON bodies (api/bodies.h), validated on their own: what the handlers accept and the
// codes they answer. The json_bodies fuzz target (tests/fuzz/) holds them to the same rules.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "api/bodies.h"

using namespace era;
using nlohmann::json;

namespace {

// The ApiError code a call throws, "" if it does not throw.
template <typename F>
std::string code_of(F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e.code();
  }
  return "";
}

}  // namespace

TEST_CASE("bodies: D1 statements and batches") {
  const SqlStatement st = api::d1_statement(json::parse(R"({"sql":"SELECT ?","params":[1,true,null,"x",[0,255]]})"), "the body");
  CHECK(st.sql == "SELECT ?");
  REQUIRE(st.params.size() == 5);
  CHECK(std::get<int64_t>(st.params[1]) == 1);
  CHECK(std::get<SqlBlob>(st.params[4]).bytes == std::string("\x00\xff", 2));
  CHECK(code_of([] { api::d1_statement(json::parse(R"({"sql":"x","parms":[]})"), "the body"); }) == "unknown_field");
  CHECK(code_of([] { api::d1_statement(json::parse(R"({"sql":1})"), "the body"); }) == "invalid_sql");
  CHECK(code_of([] { api::d1_statement(json::parse(R"({"sql":"x","params":[[256]]})"), "the body"); }) == "invalid_param");
  CHECK(code_of([] { api::d1_statement(json::parse(R"({"sql":"x","params":[9223372036854775808]})"), "b"); }) ==
        "invalid_param");
  CHECK(api::d1_batch(json::parse(R"({"statements":[{"sql":"SELECT 1"},{"sql":"SELECT 2"}]})")).size() == 2);
  CHECK(code_of([] { api::d1_batch(json::parse(R"({"statements":[]})")); }) == "invalid_statements");
  CHECK(code_of([] { api::d1_batch(json::parse(R"({"statements":[{"sql":"x"}],"x":1})")); }) == "unknown_field");
  CHECK(code_of([] { api::d1_batch(json::parse(R"({"statements":[1]})")); }) == "invalid_body");
}

TEST_CASE("bodies: KV writes") {
  const int64_t now = 1700000000;
  const KvValue v = api::kv_put(json::parse(R"({"value":"v","metadata":{"a":1},"expiration_ttl":60})"), now);
  CHECK(v.value == "v");
  CHECK(v.metadata == std::optional<std::string>(R"({"a":1})"));
  CHECK(v.expiration == std::optional<int64_t>(now + 60));
  CHECK(code_of([&] { api::kv_put(json::parse(R"({"value":"v","expiration_ttl":59})"), now); }) == "invalid_expiration");
  CHECK(code_of([&] { api::kv_put(json::parse(R"({"value":"v","expiration_ttl":9223372036854775807})"), now); }) ==
        "invalid_expiration");
  CHECK(code_of([&] { api::kv_put(json::parse(R"({"value":"v","expiration":1,"expiration_ttl":60})"), now); }) ==
        "invalid_expiration");
  CHECK(code_of([&] { api::kv_put(json::parse(R"({"value":1})"), now); }) == "invalid_value");
  CHECK(code_of([&] { api::kv_put(json::parse(R"({"value":"v","metadata":[1]})"), now); }) == "invalid_metadata");
}

TEST_CASE("bodies: R2 JSON writes and metadata") {
  const api::R2JsonPut p = api::r2_json_put(
      json::parse(R"({"content":"aGVsbG8=","metadata":{"k":"v"},"httpMetadata":{"contentType":"text/plain"}})"), 100);
  CHECK(p.bytes == "hello");
  CHECK(p.options.size == std::optional<uint64_t>(5));
  CHECK(p.options.content_type == "text/plain");
  CHECK(p.options.custom_metadata.at("k") == "v");
  CHECK(code_of([] { api::r2_json_put(json::parse(R"({"content":"aGVsbG8"})"), 100); }) == "invalid_content");
  CHECK(code_of([] { api::r2_json_put(json::parse(R"({"content":"aGVsbG8="})"), 4); }) == "object_too_large");
  CHECK(code_of([] { api::r2_json_put(json::parse(R"({"content":"","httpMetadata":{"contentType":"a\r\nb: c"}})"), 4); }) ==
        "invalid_content_type");
  CHECK(code_of([] { api::r2_metadata(json::parse(R"({"":"x"})"), "metadata"); }) == "invalid_metadata");
  CHECK(code_of([] { api::r2_metadata(json::parse(R"({"k":1})"), "metadata"); }) == "invalid_metadata");
}

TEST_CASE("bodies: session creation") {
  Config config;
  const SessionRecord s = api::session_create(
      json::parse(R"({"language":"node","session_id":"ses_1","namespaces":["b","a","a"],"permissions":"read","ttl_seconds":60})"),
      config, 1000);
  CHECK(s.id == "ses_1");
  CHECK(s.language == "javascript");
  CHECK(s.namespaces == std::vector<std::string>{"a", "b"});
  CHECK(s.permissions == "read");
  CHECK(s.expires_at == 1060);
  CHECK(code_of([&] { api::session_create(json::parse(R"({"namespaces":["a/b"]})"), config, 0); }) == "invalid_namespace");
  CHECK(code_of([&] { api::session_create(json::parse(R"({"session_id":"../x"})"), config, 0); }) == "invalid_session_id");
  CHECK(code_of([&] { api::session_create(json::parse(R"({"ttl_seconds":18446744073709551615})"), config, 0); }) ==
        "invalid_ttl");
  CHECK(code_of([&] { api::session_create(json::parse(R"({"language":"ruby"})"), config, 0); }) == "invalid_language");
}

TEST_CASE("bodies: KV GET's answer is byte for byte the JSON object it replaced") {
  // What the handler wrote before: the object, dumped as Ctx::send_json dumps.
  auto reference = [](const KvValue& v) {
    json out = {{"value", v.value}, {"metadata", v.metadata ? json::parse(*v.metadata) : json(nullptr)}};
    if (v.expiration) out["expiration"] = *v.expiration;
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  std::vector<KvValue> cases = {
      {"", std::nullopt, std::nullopt},
      {std::string(64, 'v'), std::nullopt, std::nullopt},
      {"quote \" backslash \\ slash / newline \n tab \t nul " + std::string(1, '\0') + " \x01\x1f\x7f", std::nullopt,
       std::nullopt},
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", R"({"b":[1,2.5,"x"],"a":{"z":null}})", int64_t(1999999999)},
      {"invalid \xff\xfe utf-8 \xc3", R"({"k":"v"})", std::nullopt},
      {"neg", std::nullopt, int64_t(-1)},
      {"{\"looks\":\"like json\"}", "{}", int64_t(0)},
  };
  for (const auto& v : cases) {
    const std::string got = api::kv_get_answer(v);
    CHECK(got == reference(v));
    CHECK(json::parse(got)["value"].is_string());
  }
}
