// KV over HTTP: the guide's API (PUT/GET/DELETE /api/storage/kv/{ns}/{key}, GET /api/storage/kv/{ns}
// to list) plus Cloudflare's expiration options. Limits are Cloudflare's, so local mode predicts
// production: keys 512 bytes, values 25 MiB, metadata 1024 bytes of JSON, TTL >= 60 s.
#include <cstdlib>

#include "api/api.h"
#include "api/bodies.h"
#include "ns/names.h"
#include "util/time.h"
#include "util/error.h"

namespace era::api {
namespace {

using http::json;

// A JSON string can take several bytes per byte of value (escapes): allow twice the value limit.
constexpr size_t kMaxPutBody = 2 * ns::kMaxKvValueBytes + 64 * 1024;
// {value, metadata (1 KiB of JSON), expiration}: a few hundred values at most. Strings are bounded by
// the body alone, so a value just past 25 MiB gets the precise value_too_large.
const http::JsonLimits kPutLimits{kMaxPutBody, 16, 2048, kMaxPutBody};
// Values answered on the I/O thread at most (larger cached ones are answered by a worker).
constexpr size_t kMaxInlineValue = 16 * 1024;

json metadata_json(const std::optional<std::string>& m) { return m ? json::parse(*m) : json(nullptr); }

int parse_limit(const std::optional<std::string>& s) {
  if (!s) return 1000;
  char* end = nullptr;
  long n = std::strtol(s->c_str(), &end, 10);
  if (s->empty() || *end || n < 1 || n > 1000)
    throw bad_request("invalid_limit", "limit must be an integer from 1 to 1000");
  return static_cast<int>(n);
}

}  // namespace

void register_kv(http::Router& router, Services& services) {
  KvStore& kv = services.backend.kv();

  router.add("PUT", "/api/storage/kv/{ns}/{key...}", http::Access::in_namespace(http::Access::Op::write), [&kv](http::Ctx& c) {
    const std::string& ns = c.param(0);
    const std::string& key = c.param(1);
    ns::check_namespace(ns);
    ns::check_kv_key(key);
    KvValue v = kv_put(c.json_body(kPutLimits), unix_now());
    kv.put(ns, key, v);
    c.ok({{"success", true}});
  });

  // A read the store can answer from its cache is served on the I/O thread (the probe), without a
  // worker; small values only, so that no answer holds the thread for long.
  router.add(
      "GET", "/api/storage/kv/{ns}/{key...}", http::Access::in_namespace(http::Access::Op::read),
      [&kv](http::Ctx& c) {
        const std::string& ns = c.param(0);
        const std::string& key = c.param(1);
        ns::check_namespace(ns);
        ns::check_kv_key(key);
        std::optional<KvValue> v;
        if (auto* found = std::any_cast<std::optional<KvValue>>(&c.prefetched)) v = std::move(*found);
        else v = kv.get(ns, key);
        if (!v) throw not_found("key_not_found", "key not found");
        c.res.status = 200;
        c.res.set_content(kv_get_answer(std::move(*v)), "application/json");
      },
      [&kv](http::Ctx& c) {
        const std::string& ns = c.param(0);
        const std::string& key = c.param(1);
        if (!ns::is_valid_namespace(ns) || !ns::is_valid_kv_key(key)) return false;  // the handler refuses it
        std::optional<KvValue> v;
        if (!kv.cached(ns, key, v)) return false;
        if (v && v->value.size() + v->metadata.value_or("").size() > kMaxInlineValue) return false;
        c.prefetched = std::move(v);
        return true;
      });

  router.add("DELETE", "/api/storage/kv/{ns}/{key...}", http::Access::in_namespace(http::Access::Op::write), [&kv](http::Ctx& c) {
    const std::string& ns = c.param(0);
    const std::string& key = c.param(1);
    ns::check_namespace(ns);
    ns::check_kv_key(key);
    kv.remove(ns, key);
    c.ok({{"success", true}});
  });

  router.add("GET", "/api/storage/kv/{ns}", http::Access::in_namespace(http::Access::Op::read), [&kv](http::Ctx& c) {
    const std::string& ns = c.param(0);
    ns::check_namespace(ns);
    std::string prefix = c.query("prefix").value_or("");
    if (prefix.size() > ns::kMaxKvKeyBytes || !ns::is_valid_utf8(prefix))
      throw bad_request("invalid_prefix", "prefix must be valid UTF-8 of at most 512 bytes");
    const int limit = parse_limit(c.query("limit"));
    KvPage page = kv.list(ns, prefix, limit, c.query("cursor").value_or(""));
    json keys = json::array();
    for (auto& k : page.keys) {
      json e = {{"name", std::move(k.name)}, {"metadata", metadata_json(k.metadata)}};
      if (k.expiration) e["expiration"] = *k.expiration;
      keys.push_back(std::move(e));
    }
    c.ok({{"keys", std::move(keys)},
          {"list_complete", page.complete},
          {"cursor", page.complete ? json(nullptr) : json(page.cursor)}});
  });
}

}  // namespace era::api
