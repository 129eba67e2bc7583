// Resource discovery: GET /api/resources/list and /api/resources/stats — what every namespace holds
// across KV, D1 and R2, never disagreeing with the data (see store/registry.h).

#include "api/api.h"
#include "api/params.h"
#include "ns/names.h"
#include "util/error.h"
#include "util/time.h"

namespace era::api {
namespace {

using http::json;

std::optional<std::string> namespace_param(const http::Ctx& c) {
  auto ns = c.query("namespace");
  if (ns) ns::check_namespace(*ns);
  return ns;
}

json resource_json(Resource& r) {
  json j = {{"type", r.type},
            {"namespace", std::move(r.ns)},
            {"key", std::move(r.key)},
            {"size", r.size ? json(*r.size) : json(nullptr)},
            {"metadata", r.metadata ? json::parse(*r.metadata, nullptr, false) : json(nullptr)},
            {"created_at", r.created_at_ms ? json(dates::iso8601(r.created_at_ms)) : json(nullptr)},
            {"updated_at", r.updated_at_ms ? json(dates::iso8601(r.updated_at_ms)) : json(nullptr)}};
  if (j["metadata"].is_discarded()) j["metadata"] = nullptr;
  return j;
}

// The namespaces the caller may see; nullopt means all of them. (An explicit ?namespace= outside the
// scope was already refused with 403 by the auth middleware.)
std::optional<std::set<std::string>> scope_of(const http::Ctx& c) { return auth::visible_namespaces(c.principal); }

}  // namespace

void register_resources(http::Router& router, Services& services) {
  ResourceRegistry& registry = services.backend.registry();

  router.add("GET", "/api/resources/list", http::Access::listing(), [&registry](http::Ctx& c) {
    ResourceQuery q;
    q.type = c.query("type");
    if (q.type && *q.type != "kv" && *q.type != "d1" && *q.type != "r2")
      throw bad_request("invalid_type", "type must be one of kv, d1, r2");
    q.ns = namespace_param(c);
    q.key_prefix = c.query("key_prefix").value_or("");
    if (q.key_prefix.size() > 1024 || !ns::is_valid_utf8(q.key_prefix))
      throw bad_request("invalid_key_prefix", "key_prefix must be valid UTF-8 of at most 1024 bytes");
    q.limit = static_cast<int>(int_param(c.query("limit"), 100, 1, 1000, "limit"));
    q.offset = int_param(c.query("offset"), 0, 0, INT64_MAX, "offset");
    q.cursor = c.query("cursor").value_or("");
    q.scope = scope_of(c);
    ResourcePage page = registry.list(q);
    json items = json::array();
    for (auto& r : page.resources) items.push_back(resource_json(r));
    c.ok({{"resources", std::move(items)},
          {"total", page.total},
          {"offset", q.offset},
          {"limit", q.limit},
          {"has_more", page.has_more},
          {"cursor", page.has_more ? json(page.cursor) : json(nullptr)}});
  });

  router.add("GET", "/api/resources/stats", http::Access::listing(), [&registry](http::Ctx& c) {
    ResourceStats s = registry.stats(namespace_param(c), scope_of(c));
    json namespaces = json::object();
    for (const auto& [name, types] : s.by_namespace_type) {
      json& entry = namespaces[name];
      for (const auto& [type, n] : types) entry[type] = {{"count", n.count}, {"size", n.size}};
    }
    c.ok({{"total", s.total},
          {"total_size", s.total_size},
          {"by_type", s.by_type},
          {"by_namespace", s.by_namespace},
          {"namespaces", std::move(namespaces)}});
  });
}

}  // namespace era::api
