// The API's JSON bodies (api/bodies.h), validated on their own: what the handlers accept and the
// codes they answer. The json_bodies fuzz target (tests/fuzz/) holds them to the same rules.
#include <doctest/doctest.h>

#include <cmath>

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

namespace {

// The D1 answer as the handlers built it before it was written directly: an ordered_json tree.
std::string d1_result_reference(const SqlResult& r) {
  using ojson = nlohmann::ordered_json;
  auto value = [](const SqlValue& v) -> ojson {
    if (auto n = std::get_if<int64_t>(&v)) return *n;
    if (auto d = std::get_if<double>(&v)) return std::isfinite(*d) ? ojson(*d) : ojson(nullptr);
    if (auto t = std::get_if<std::string>(&v)) return *t;
    if (auto b = std::get_if<SqlBlob>(&v)) {
      ojson a = ojson::array();
      for (unsigned char c : b->bytes) a.push_back(int(c));
      return a;
    }
    return nullptr;
  };
  ojson rows = ojson::array();
  for (const auto& row : r.rows) {
    ojson o = ojson::object();
    for (size_t i = 0; i < row.size(); ++i) o[r.columns[i]] = value(row[i]);
    rows.push_back(std::move(o));
  }
  const SqlMeta& m = r.meta;
  ojson meta = {{"changes", m.changes},       {"last_row_id", m.last_row_id},   {"duration", m.duration_ms},
                {"rows_read", m.rows_read},   {"rows_written", m.rows_written}, {"changed_db", m.changed_db},
                {"size_after", m.size_after}, {"served_by", "era-storage-proxy"}};
  ojson body = {{"success", true}, {"results", rows}, {"meta", meta}};
  return body.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace

TEST_CASE("D1 answers are written byte for byte as the ordered_json tree gave them") {
  const std::vector<std::string> texts = {
      "", "plain", "quote \" backslash \\ slash /", "tab\tnewline\ncr\r", std::string("nul\0byte", 8),
      "\x01\x1f\x7f", "héllo ✓ 𝄞", "bad \xff utf-8 \xc3", "\xed\xa0\x80 surrogate", "</script>"};
  const std::vector<double> reals = {0.0, -0.0, 1.0, 0.1, 1e300, -2.5e-308, 123456789.123456789,
                                     std::nan(""), HUGE_VAL, -HUGE_VAL, 9007199254740993.0};
  const std::vector<int64_t> ints = {0, -1, 42, INT64_MAX, INT64_MIN};
  SqlResult r;
  r.columns = {"id", "name", "weird \"col\"", "name", "ünï", "x"};
  for (size_t i = 0; i < 12; ++i) {
    std::vector<SqlValue> row;
    row.emplace_back(ints[i % ints.size()]);
    row.emplace_back(texts[i % texts.size()]);
    row.emplace_back(reals[i % reals.size()]);
    row.emplace_back(i % 3 ? SqlValue(texts[(i + 3) % texts.size()]) : SqlValue(nullptr));
    row.emplace_back(SqlBlob{i % 2 ? std::string("\x00\xff\x10", 3) : std::string()});
    row.emplace_back(i % 4 ? SqlValue(reals[(i + 5) % reals.size()]) : SqlValue(int64_t(i)));
    r.rows.push_back(std::move(row));
  }
  for (double d : reals) {
    r.meta = {3, -7, d, 12, 4, true, 1 << 20};
    std::string out;
    api::append_d1_result(out, r);
    CHECK(out == d1_result_reference(r));
    CHECK(json::parse(out, nullptr, false).is_object());
  }
  SqlResult empty;
  std::string out;
  api::append_d1_result(out, empty);
  CHECK(out == d1_result_reference(empty));
  // A statement without columns that still yields rows (cannot happen in SQLite; written as objects).
  SqlResult none;
  none.rows = {{}, {}};
  out.clear();
  api::append_d1_result(out, none);
  CHECK(out == d1_result_reference(none));
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
