// Sessions over HTTP (the admin's surface; auth/middleware.h says who may call what):
//   POST   /api/sessions        create one and get its token and the env a sandbox needs
//   GET    /api/sessions        list live sessions (no tokens)
//   GET    /api/sessions/{id}   one session (also for that session's own token)
//   DELETE /api/sessions/{id}   end it: its token is refused from the next call on, and its working
//                               directory (POST /api/sessions/{id}/run) is deleted
#include <openssl/rand.h>

#include <cstdlib>

#include "api/api.h"
#include "api/bodies.h"
#include "auth/token.h"
#include "ns/names.h"
#include "runner/runner.h"
#include "util/clock.h"
#include "util/encoding.h"
#include "util/error.h"

namespace era::api {
namespace {

using http::json;

constexpr size_t kMaxBody = 256 * 1024;

json session_json(const SessionRecord& s) {
  return {{"session_id", s.id},
          {"language", s.language},
          {"namespaces", s.all_namespaces ? json("*") : json(s.namespaces)},
          {"permissions", s.permissions},
          {"created_at", s.created_at},
          {"expires_at", s.expires_at},
          {"metadata", s.metadata.empty() ? json(nullptr) : json::parse(s.metadata)}};
}

std::string public_url(const http::Ctx& c, const Config& config) {
  if (!config.public_url.empty()) return config.public_url;
  std::string host = c.req.get_header_value("Host");
  if (host.empty()) host = config.host + ":" + std::to_string(config.port);
  return "http://" + host;
}

int parse_limit(const std::optional<std::string>& s) {
  if (!s) return 100;
  char* end = nullptr;
  long n = std::strtol(s->c_str(), &end, 10);
  if (s->empty() || *end || n < 1 || n > 1000)
    throw bad_request("invalid_limit", "limit must be an integer from 1 to 1000");
  return static_cast<int>(n);
}

}  // namespace

void register_sessions(http::Router& router, Services& services) {
  SessionStore& store = services.backend.sessions();
  auth::Authenticator& auth = services.auth;
  const Config& config = services.config;

  router.add("POST", "/api/sessions", [&](http::Ctx& c) {
    SessionRecord s = session_create(c.json_body(kMaxBody), config, unix_now());
    store.create(s);
    const std::string token = auth.mint(auth::claims_for(s));
    json out = session_json(s);
    out["token"] = token;
    out["env"] = {{"ERA_STORAGE_URL", public_url(c, config)}, {"ERA_STORAGE_TOKEN", token}};
    c.send_json(201, out);
  });

  router.add("GET", "/api/sessions", [&](http::Ctx& c) {
    const int limit = parse_limit(c.query("limit"));
    const std::string after = c.query("cursor").value_or("");
    if (!after.empty()) check_session_id(after);
    auto page = store.list(unix_now(), after, limit + 1);
    const bool more = page.size() > size_t(limit);
    if (more) page.pop_back();
    json list = json::array();
    for (const auto& s : page) list.push_back(session_json(s));
    c.ok({{"sessions", std::move(list)}, {"cursor", more ? json(page.back().id) : json(nullptr)}});
  });

  router.add("GET", "/api/sessions/{id}", [&](http::Ctx& c) {
    const std::string& id = c.param(0);
    check_session_id(id);
    auto s = store.get(id, unix_now());
    if (!s) throw not_found("session_not_found", "no live session '" + id + "'");
    c.ok(session_json(*s));
  });

  runner::Runner* runner = services.runner;
  router.add("DELETE", "/api/sessions/{id}", [&, runner](http::Ctx& c) {
    const std::string& id = c.param(0);
    check_session_id(id);
    const bool existed = auth.revoke(id);
    if (runner) runner->remove_session(id);  // its working directory goes with it (after a run in progress)
    c.ok({{"success", true}, {"session_id", id}, {"revoked", true}, {"existed", existed}});
  });
}

}  // namespace era::api
