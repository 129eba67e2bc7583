// Fuzz target: the API's JSON request bodies (api/bodies.h), parsed as the router parses a body
// (http::Ctx::json_body: nlohmann without exceptions, an object required) and then validated by the
// same function the handler calls. The first input byte picks the body: D1 statement, D1 batch, KV
// PUT, R2 JSON PUT, R2 metadata header, session creation; the rest is the body text.
// Must hold:
// - nothing but ApiError escapes (a nlohmann type_error or out_of_range would be a 500), and every
//   ApiError is a 4xx with a code;
// - what is accepted is within the documented limits and shaped as the store expects: a statement is
//   the body's SQL with one value per parameter, KV metadata is a JSON object of at most 1024 bytes, expirations at least 60 s ahead, R2
//   metadata at most 8192 bytes and content types printable, a session's namespaces valid, sorted and
//   unique, its TTL within auth.max_ttl.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "api/bodies.h"
#include "auth/token.h"
#include "ns/names.h"

namespace {

using nlohmann::json;
constexpr int64_t kNow = 1700000000;

[[noreturn]] void fail(const char* what, const std::string& body) {
  std::fprintf(stderr, "\n==== json_bodies: %s\n%s\n", what, body.c_str());
  std::abort();
}

// An accepted statement is the body's SQL with one bound value per element of its params.
void check(const era::SqlStatement& st, const json& j, const std::string& body) {
  if (st.sql != j.at("sql").get<std::string>()) fail("the SQL is not the body's", body);
  const size_t n = j.contains("params") && j.at("params").is_array() ? j.at("params").size() : 0;
  if (st.params.size() != n) fail("not one bound value per element of params", body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace era;
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const json body = json::parse(text, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return 0;  // json_body answers 400 invalid_json
  static const Config config;
  try {
    switch (data[0] % 6) {
      case 0: check(api::d1_statement(body, "the body"), body, text); break;
      case 1: {
        const auto list = api::d1_batch(body);
        if (list.size() != body.at("statements").size()) fail("not one statement per entry", text);
        for (size_t i = 0; i < list.size(); ++i) check(list[i], body.at("statements")[i], text);
        break;
      }
      case 2: {
        const KvValue v = api::kv_put(body, kNow);
        if (v.value.size() > ns::kMaxKvValueBytes) fail("a KV value over the limit was accepted", text);
        if (v.metadata) {
          if (v.metadata->size() > ns::kMaxKvMetadataBytes) fail("KV metadata over 1024 bytes was accepted", text);
          const json m = json::parse(*v.metadata, nullptr, false);
          if (!m.is_object()) fail("KV metadata is not a JSON object once stored", text);
        }
        if (v.expiration && *v.expiration < kNow + 60) fail("a KV expiration under 60 s was accepted", text);
        break;
      }
      case 3: {
        const api::R2JsonPut p = api::r2_json_put(body, 1 << 20);
        if (!p.options.size || *p.options.size != p.bytes.size()) fail("the R2 size is not the content's", text);
        size_t total = 0;
        for (const auto& [k, v] : p.options.custom_metadata) total += k.size() + v.size();
        if (total > 8192) fail("R2 metadata over 8192 bytes was accepted", text);
        for (unsigned char c : p.options.content_type)
            if (c < 0x20 || c > 0x7e) fail("a content type with a control byte was accepted", text);
        break;
      }
      case 4: api::r2_metadata(body, "X-Era-Metadata"); break;
      case 5: {
        const SessionRecord s = api::session_create(body, config, kNow);
        if (!auth::is_valid_session_id(s.id)) fail("an invalid session id was accepted", text);
        for (size_t i = 0; i < s.namespaces.size(); ++i) {
          if (!ns::is_valid_namespace(s.namespaces[i])) fail("an invalid namespace was accepted", text);
          if (i && s.namespaces[i - 1] >= s.namespaces[i]) fail("namespaces are not sorted and unique", text);
        }
        if (s.expires_at <= kNow || s.expires_at > kNow + config.max_ttl) fail("a TTL out of range was accepted", text);
        if (!s.metadata.empty() && !json::parse(s.metadata, nullptr, false).is_object())
          fail("session metadata is not a JSON object once stored", text);
        break;
      }
    }
  } catch (const ApiError& e) {
    if (e.status() < 400 || e.status() >= 500 || e.code().empty()) fail("an ApiError that is not a 4xx with a code", text);
  }
  return 0;
}
