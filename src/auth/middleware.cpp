#include "auth/middleware.h"

#include <cctype>

#include "auth/setup.h"
#include "util/error.h"

namespace era::auth {
namespace {

using Access = http::Access;

ApiError forbidden(const std::string& code, const std::string& message) { return {403, code, message}; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// The host name of a Host header value ("name", "name:port", "[v6]", "[v6]:port"), lowercased;
// "" when it is not of that shape.
std::string host_name(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return "";
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return "";
    return lower(host.substr(0, close + 1));
  }
  const size_t colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) != std::string_view::npos) return "";
  return lower(host.substr(0, colon));
}

// An origin lowercased and without the scheme's default port: "HTTP://Example:80" -> "http://example".
std::string normal_origin(std::string_view origin) {
  std::string o = lower(origin);
  while (!o.empty() && o.back() == '/') o.pop_back();
  for (const auto& [scheme, port] : {std::pair{"http://", ":80"}, std::pair{"https://", ":443"}}) {
    const std::string s(scheme), p(port);
    // A port can only end the origin (an IPv6 address ends with ']'), so the suffix is the port.
    if (o.compare(0, s.size(), s) == 0 && o.size() > s.size() + p.size() &&
        o.compare(o.size() - p.size(), p.size(), p) == 0)
      o.resize(o.size() - p.size());
  }
  return o;
}

void check_namespace_param(const http::Ctx& c, const Principal& p, const Access& a) {
  const std::string* ns = c.param_named(a.param);
  if (!ns) throw forbidden("access_undeclared", "this route's namespace parameter is missing");
  require_namespace(p, *ns);
}

}  // namespace

void check_request_source(const http::Ctx& c, const RequestPolicy& policy) {
  if (c.from_sandbox) return;  // the Unix socket: only the runner's sandboxes reach it
  const std::string host = c.req.get_header_value("Host");
  if (!policy.auth_required && !host.empty()) {
    const std::string name = host_name(host);
    bool ok = !name.empty() && is_loopback_host(name);
    for (const auto& h : policy.host_names) ok = ok || (!name.empty() && name == lower(h));
    if (!ok)
      throw forbidden("host_forbidden",
                      "auth is off, so the proxy answers only requests addressed to a loopback name "
                      "(localhost, 127.0.0.1, [::1]) or its configured host, not '" + host + "'");
  }
  if (!c.req.has_header("Origin")) return;
  const std::string origin = normal_origin(c.req.get_header_value("Origin"));
  if (origin != "null") {
    if (!host.empty() && (origin == normal_origin("http://" + host) || origin == normal_origin("https://" + host)))
      return;  // same origin: the proxy's own pages (the explorer)
    for (const auto& o : policy.allowed_origins)
      if (origin == normal_origin(o)) return;
  }
  throw forbidden("origin_forbidden", "requests from the web origin '" + c.req.get_header_value("Origin") +
                                          "' are refused: only the proxy's own origin and auth.allowed_origins "
                                          "may call it from a browser");
}

void authorize(const http::Ctx& c) {
  const Principal& p = c.principal;
  if (!c.access || !c.access->declared())
    throw forbidden("access_undeclared", "this route declares no access rule, so it is refused");
  const Access& a = *c.access;
  switch (a.who) {
    case Access::Who::undeclared: break;  // refused above
    case Access::Who::anyone: return;
    case Access::Who::admin:
      if (!p.admin) throw forbidden("admin_required", "this call needs the admin credential");
      break;
    case Access::Who::own_session: {
      const std::string* id = c.param_named(a.param);
      if (!p.admin && !(p.authenticated && id && *id == p.session_id))
        throw forbidden("session_forbidden", "a session token may only use its own session");
      break;
    }
    case Access::Who::in_namespace: check_namespace_param(c, p, a); break;
    case Access::Who::listing:
      if (auto ns = c.query(a.param); ns && !ns->empty()) require_namespace(p, *ns);
      break;
  }
  if (a.op == Access::Op::write) require_write(p);
}

void install_middleware(http::Router& router, const Authenticator& auth, RateLimiter* limiter,
                        RequestPolicy policy) {
  router.use([&auth, limiter, policy = std::move(policy)](http::Ctx& c) {
    // A refusal leaves the body unread; the router then drains or closes it (Ctx::settle_body).
    check_request_source(c, policy);
    if (c.access && c.access->who == Access::Who::anyone) return;
    std::optional<std::string> header;
    if (c.req.has_header("Authorization")) header = c.req.get_header_value("Authorization");
    // Code in the runner's sandbox always shows its session's token: with auth off a token-less
    // caller would be the admin, and sandboxed code must stay inside its session's scope.
    if (c.from_sandbox && !header)
      throw ApiError(401, "missing_token", "requests from a session's sandbox must carry its token "
                                           "(ERA_STORAGE_TOKEN)");
    if (c.on_loop) {
      // The I/O thread: a token that would need the session store (a scope given by digest, not seen
      // before) goes to a worker.
      auto p = auth.authenticate_in_memory(header);
      if (!p) throw http::NotOnLoop();
      c.principal = std::move(*p);
    } else {
      c.principal = auth.authenticate(header);
    }
    authorize(c);
  });
  // The rate limit is an admission (http::Middleware): charged once per request, by the thread that
  // serves it, after the checks above have passed.
  router.admit([limiter](http::Ctx& c) {
    if (c.access && c.access->who == Access::Who::anyone) return;
    if (!limiter || c.principal.admin || !limiter->enabled()) return;
    if (int64_t wait = limiter->admit(c.principal.session_id)) {
      ApiError e(429, "rate_limited", "this session is over its request or write rate: retry after " +
                                          std::to_string(wait) + " s");
      e.retry_after_s = wait;  // meaning; http/ writes the header
      throw e;
    }
    if (limiter->limits_bytes())
      c.on_finish.push_back([limiter](http::Ctx& done) {
        limiter->charge_bytes(done.principal.session_id, done.body_bytes_read());
      });
  });
}

}  // namespace era::auth
