#include "auth/middleware.h"

#include "util/error.h"

namespace era::auth {
namespace {

bool starts_with(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }

bool is_read_method(const std::string& m) { return m == "GET" || m == "HEAD" || m == "OPTIONS"; }

ApiError forbidden(const std::string& code, const std::string& message) { return {403, code, message}; }

void require_admin(const Principal& p) {
  if (!p.admin) throw forbidden("admin_required", "this call needs the admin credential");
}

void authorize(http::Ctx& c) {
  const Principal& p = c.principal;
  const std::string& route = c.route;
  const std::string& method = c.req.method;
  if (route == "/api/sessions") return require_admin(p);
  if (starts_with(route, "/api/sessions/{id}")) {
    if (method == "DELETE" && route == "/api/sessions/{id}") return require_admin(p);
    const std::string* id = c.param_named("id");
    if (p.admin || (id && *id == p.session_id)) return;
    throw forbidden("session_forbidden", "a session token may only look at its own session");
  }
  if (const std::string* ns = c.param_named("ns")) require_namespace(p, *ns);
  if (starts_with(route, "/api/resources/"))
    if (auto ns = c.query("namespace"); ns && !ns->empty()) require_namespace(p, *ns);
  const bool statement_decides = method == "POST" && starts_with(route, "/api/storage/d1/");
  if (!is_read_method(method) && !statement_decides) require_write(p);
}

}  // namespace

void install_middleware(http::Router& router, const Authenticator& auth, RateLimiter* limiter) {
  router.use([&auth, limiter](http::Ctx& c) {
    // GET /metrics checks its own credential (the admin's, or the metrics token: api/observe.cpp).
    if (c.route == "/healthz" || c.route == "/metrics" || starts_with(c.route, "/api/sdk/") ||
        starts_with(c.route, "/explorer"))
      return;
    // A refusal leaves the body unread; the router then drains or closes it (Ctx::settle_body).
    std::optional<std::string> header;
    if (c.req.has_header("Authorization")) header = c.req.get_header_value("Authorization");
    // Code in the runner's sandbox always shows its session's token: with auth off a token-less
    // caller would be the admin, and sandboxed code must stay inside its session's scope.
    if (c.from_sandbox && !header)
      throw ApiError(401, "missing_token", "requests from a session's sandbox must carry its token "
                                           "(ERA_STORAGE_TOKEN)");
    c.principal = auth.authenticate(header);
    authorize(c);
    if (!limiter || c.principal.admin || !limiter->enabled()) return;
    if (int64_t wait = limiter->admit(c.principal.session_id)) {
      ApiError e(429, "rate_limited", "this session is over its request or write rate: retry after " +
                                          std::to_string(wait) + " s");
      e.header = {"Retry-After", std::to_string(wait)};
      throw e;
    }
    if (limiter->limits_bytes())
      c.on_finish.push_back([limiter](http::Ctx& done) {
        limiter->charge_bytes(done.principal.session_id, done.body_bytes_read());
      });
  });
}

}  // namespace era::auth
