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
#include "util/time.h"
#include "util/encoding.h"
#include "util/error.h"

namespace era::api {
namespace {

using http::json;

constexpr size_t kMaxBody = 256 * 1024;
// Up to 1,000 namespaces and 4 KiB of metadata.
const http::JsonLimits kBodyLimits{kMaxBody, 8, 8192, 64 * 1024};

json session_json(const SessionRecord& s) {
  return {{"session_id", s.id},
          {"language", s.language},
          {"namespaces", s.all_namespaces ? json("*") : json(s.namespaces)},
          {"permissions", s.permissions},
          {"created_at", s.created_at},
          {"expires_at", s.expires_at},
          {"metadata", s.metadata.empty() ? json(nullptr) : json::parse(s.metadata)}};
}

// Where a VM host should point ERA_STORAGE_URL. Never the request's Host header: the client (or a
// page that rebinds a DNS name to this proxy) chooses that. server.public_url when set; else the
// address the connection actually reached, as the kernel reports it — the configured host when the
// proxy listens on one address, the connection's local address when it listens on all — with the
// port it is bound to; or the Unix socket, for a request that came in on it.
std::string public_url(const http::Ctx& c, const Config& config) {
  if (!config.public_url.empty()) return config.public_url;
  if (c.from_sandbox)
    return "unix://" + (config.runner_socket.empty() ? config.data_dir + "/proxy.sock" : config.runner_socket);
  std::string host = config.host;
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]") host = c.req.local_addr;
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  const int port = c.req.local_port > 0 ? c.req.local_port : config.port;
  return "http://" + host + ":" + std::to_string(port);
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

  router.add("POST", "/api/sessions", http::Access::admin(), [&](http::Ctx& c) {
    SessionRecord s = session_create(c.json_body(kBodyLimits), config, unix_now());
    store.create(s);
    c.audit.object = s.id;
    const std::string token = auth.mint(auth::claims_for(s));
    json out = session_json(s);
    out["token"] = token;
    out["env"] = {{"ERA_STORAGE_URL", public_url(c, config)}, {"ERA_STORAGE_TOKEN", token}};
    c.send_json(201, out);
  });

  router.add("GET", "/api/sessions", http::Access::admin(), [&](http::Ctx& c) {
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

  router.add("GET", "/api/sessions/{id}", http::Access::own_session("id", http::Access::Op::read), [&](http::Ctx& c) {
    const std::string& id = c.param(0);
    check_session_id(id);
    auto s = store.get(id, unix_now());
    if (!s) throw not_found("session_not_found", "no live session '" + id + "'");
    c.ok(session_json(*s));
  });

  runner::Runner* runner = services.runner;
  router.add("DELETE", "/api/sessions/{id}", http::Access::admin(), [&, runner](http::Ctx& c) {
    const std::string& id = c.param(0);
    check_session_id(id);
    const bool existed = auth.revoke(id);
    if (runner) runner->remove_session(id);  // its working directory goes with it (after a run in progress)
    c.ok({{"success", true}, {"session_id", id}, {"revoked", true}, {"existed", existed}});
  });
}

}  // namespace era::api
