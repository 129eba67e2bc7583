// Running a session's code (the guide's "Testing" section):
//   POST /api/sessions/{id}/run  {"code": string, "timeout"?: seconds, "env"?: {name: value}}
//   -> {"session_id", "exit_code", "stdout", "stderr", "duration", "stdout_truncated",
//       "stderr_truncated", "limit", "limits", "cgroup", "disk"}
// The code runs in the runner's sandbox (runner/runner.h) as the session: in its language, in its
// working directory, with a token of its own that is held to the session's namespaces and never
// exceeds the caller's rights (run_claims). The auth middleware lets the admin or the session's own
// token call it. The code's failures are results
// (exit_code, stderr); only a bad request or a machine that cannot sandbox is an error.
#include <set>

#include "api/api.h"
#include "auth/token.h"
#include "obs/metrics.h"
#include "runner/runner.h"
#include "util/time.h"
#include "util/error.h"

namespace era::api {
namespace {

using http::json;

// The code (1 MiB) and env (64 KiB), JSON-escaped at worst six bytes per byte.
constexpr size_t kMaxBody = 6 * (runner::kMaxCodeBytes + runner::kMaxEnvBytes) + 4096;

runner::RunRequest parse_run(const json& body) {
  for (const auto& [k, _] : body.items())
    if (k != "code" && k != "timeout" && k != "env")
      throw bad_request("unknown_field", "unknown field '" + k + "': a run takes code, timeout, env");
  runner::RunRequest r;
  if (!body.contains("code") || !body["code"].is_string())
    throw bad_request("invalid_code", "code is required and must be a string");
  r.code = body["code"].get<std::string>();
  if (body.contains("timeout") && !body["timeout"].is_null()) {
    if (!body["timeout"].is_number()) throw bad_request("invalid_timeout", "timeout must be a number of seconds");
    r.timeout_s = body["timeout"].get<double>();
  }
  if (body.contains("env") && !body["env"].is_null()) {
    if (!body["env"].is_object()) throw bad_request("invalid_env", "env must be an object of strings");
    for (const auto& [k, v] : body["env"].items()) {
      if (!v.is_string()) throw bad_request("invalid_env", "env value of '" + k + "' must be a string");
      r.env.emplace_back(k, v.get<std::string>());
    }
  }
  return r;
}

// The claims of the token a run gets: the session's, never more than the caller's own. The admin
// passes the session's rights on; a session's token (the middleware admits only the session's own)
// may have been minted narrower than the stored session (`era-storage-proxy token` with fewer
// namespaces, `read`, or a shorter ttl), and the run is held to that: the intersection of the
// scopes, read-only if either is, and the earlier expiry.
auth::Claims run_claims(const SessionRecord& session, const auth::Principal& caller) {
  auth::Claims c = auth::claims_for(session);
  if (caller.admin) return c;
  if (!caller.scope.all) {
    std::set<std::string> both;
    for (const auto& ns : caller.scope.namespaces)
      if (c.scope.contains(ns)) both.insert(ns);
    c.scope.all = false;
    c.scope.namespaces = std::move(both);
  }
  if (!caller.may_write()) c.permissions = auth::Permissions::read;
  if (caller.expires_at > 0 && caller.expires_at < c.expires_at) c.expires_at = caller.expires_at;
  return c;
}

}  // namespace

void register_run(http::Router& router, Services& services) {
  if (!services.runner) return;
  runner::Runner& run = *services.runner;
  SessionStore& store = services.backend.sessions();
  auth::Authenticator& auth = services.auth;

  router.add("POST", "/api/sessions/{id}/run", http::Access::own_session("id", http::Access::Op::write), [&run, &store, &auth](http::Ctx& c) {
    const std::string& id = c.param(0);
    if (!auth::is_valid_session_id(id))
      throw bad_request("invalid_session_id", "a session id is 1 to 128 of A-Z a-z 0-9 _ . -");
    runner::RunRequest req = parse_run(c.json_body(kMaxBody));
    auto session = store.get(id, unix_now());
    if (!session) throw not_found("session_not_found", "no live session '" + id + "'");
    if (!runner::parse_language(session->language, req.language))
      throw bad_request("invalid_language", "session '" + id + "' has language '" + session->language +
                                                "': only python and javascript sessions can run code");
    req.session_id = id;
    req.token = auth.mint(run_claims(*session, c.principal));
    runner::SandboxResult r;
    try {
      r = run.run(req);
    } catch (const ApiError& e) {
      obs::metrics().run_refused(e.code());  // a run that did not start (busy, no sandbox, bad env)
      throw;
    } catch (const std::exception&) {
      obs::metrics().run_refused("internal_error");
      throw;
    }
    obs::metrics().run_finished(r.limit != runner::Limit::none ? runner::to_string(r.limit)
                                : r.exit_code == 0             ? "exit_zero"
                                                               : "exit_nonzero",
                                r.duration);
    json limits = json::array();
    for (runner::Limit l : r.limits) limits.push_back(runner::to_string(l));
    c.ok({{"session_id", id},
          {"exit_code", r.exit_code},
          {"stdout", std::move(r.stdout_data)},  // invalid UTF-8 is sent as U+FFFD (Ctx::send_json)
          {"stderr", std::move(r.stderr_data)},
          {"duration", r.duration},
          {"stdout_truncated", r.stdout_truncated},
          {"stderr_truncated", r.stderr_truncated},
          {"limit", r.limit == runner::Limit::none ? json(nullptr) : json(runner::to_string(r.limit))},
          {"limits", std::move(limits)},
          {"cgroup", r.cgroup},
          {"disk", r.disk_bytes ? json{{"size_bytes", r.disk_bytes}, {"used_bytes", r.disk_used_bytes}}
                                : json(nullptr)}});
  });
}

}  // namespace era::api
