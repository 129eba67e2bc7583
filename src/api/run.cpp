// Running a session's code (the guide's "Testing" section):
//   POST /api/sessions/{id}/run  {"code": string, "timeout"?: seconds, "env"?: {name: value}}
//   -> {"session_id", "exit_code", "stdout", "stderr", "duration", "stdout_truncated",
//       "stderr_truncated", "limit", "limits", "cgroup"}
// The code runs in the runner's sandbox (runner/runner.h) as the session: in its language, in its
// working directory, with its own token (so it is held to the session's namespaces). The auth
// middleware lets the admin or the session's own token call it. The code's failures are results
// (exit_code, stderr); only a bad request or a machine that cannot sandbox is an error.
#include "api/api.h"
#include "auth/token.h"
#include "obs/metrics.h"
#include "runner/runner.h"
#include "util/clock.h"
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

}  // namespace

void register_run(http::Router& router, Services& services) {
  if (!services.runner) return;
  runner::Runner& run = *services.runner;
  SessionStore& store = services.backend.sessions();
  auth::Authenticator& auth = services.auth;

  router.add("POST", "/api/sessions/{id}/run", [&run, &store, &auth](http::Ctx& c) {
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
    req.token = auth.mint(auth::claims_for(*session));
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
          {"cgroup", r.cgroup}});
  });
}

}  // namespace era::api
