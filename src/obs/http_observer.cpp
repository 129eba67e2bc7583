#include "obs/http_observer.h"

#include <cstdio>

#include "util/clock.h"
#include "util/log.h"

namespace era::obs {
namespace {

bool ends_with(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && std::string_view(s).substr(s.size() - p.size()) == p;
}

bool is_read_method(const std::string& m) { return m == "GET" || m == "HEAD" || m == "OPTIONS"; }

bool is_denial(int status) { return status == 401 || status == 403 || status == 429; }

const char* principal_kind(const auth::Principal& p) {
  if (p.admin) return "admin";
  return p.authenticated ? "session" : "anonymous";
}

}  // namespace

std::string HttpObserver::operation(Surface surface, const std::string& method, const std::string& route) {
  const bool item = ends_with(route, "...}") || ends_with(route, "{id}");  // one key / object / session
  switch (surface) {
    case Surface::kv:
    case Surface::r2:
      if (method == "PUT") return "put";
      if (method == "DELETE") return "delete";
      if (method == "HEAD") return "head";
      if (method == "GET") return item ? "get" : "list";
      break;
    case Surface::d1:
      if (ends_with(route, "/query")) return "query";
      if (ends_with(route, "/exec")) return "exec";
      if (ends_with(route, "/batch")) return "batch";
      break;
    case Surface::sessions:
      if (method == "POST") return "create";
      if (method == "DELETE") return "revoke";
      if (method == "GET") return item ? "get" : "list";
      break;
    case Surface::run:
      return "run";
    case Surface::resources:
      if (ends_with(route, "/list")) return "list";
      if (ends_with(route, "/stats")) return "stats";
      break;
    default:
      if (route == "/metrics") return "metrics";
      if (route == "/api/audit") return "audit";
      break;
  }
  std::string m = method;
  for (char& c : m) c = char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return m;
}

std::optional<AuditEvent> HttpObserver::audit_event(const http::Ctx& c, const std::string& code, int64_t now_ms) {
  const int status = c.res.status;
  const std::string& method = c.req.method;
  std::string outcome;
  if (is_denial(status)) {
    outcome = "denied";
  } else {
    if (c.route == "-" || is_read_method(method) || c.audit.wrote == false) return std::nullopt;
    if (status >= 200 && status < 400) outcome = "ok";
    else if (status >= 500 || status < 100) outcome = "error";
    else return std::nullopt;
  }
  const Surface surface = surface_of_route(c.route);
  AuditEvent e;
  e.time_ms = now_ms;
  e.request_id = c.request_id;
  e.session_id = c.principal.session_id;
  e.principal = principal_kind(c.principal);
  if (const std::string* ns = c.param_named("ns")) e.ns = *ns;
  else if (surface == Surface::resources) e.ns = c.query("namespace").value_or("");
  e.surface = to_string(surface);
  e.operation = c.route == "-" ? "-" : operation(surface, method, c.route);
  if (!c.audit.object.empty()) e.object = c.audit.object;
  else if (const std::string* key = c.param_named("key")) e.object = *key;
  else if (const std::string* id = c.param_named("id")) e.object = *id;
  e.bytes = c.body_bytes_read();
  e.status = status;
  e.outcome = outcome;
  e.code = code;
  return e;
}

void HttpObserver::begin(http::Ctx& ctx) {
  metrics_.request_started();
  log::set_request_id(&ctx.request_id);
}

void HttpObserver::end(http::Ctx& ctx, const std::string& code, double seconds) {
  const http::Request& req = ctx.req;
  const http::Response& res = ctx.res;
  const Surface surface = surface_of_route(ctx.route);
  uint64_t bytes_in = ctx.body_bytes_read();
  if (!bytes_in) bytes_in = req.body.size();  // a request made in process, its body given whole
  const uint64_t bytes_out = req.method == "HEAD" ? 0 : res.body_size();
  metrics_.request_finished(surface, method_of(req.method), res.status, seconds, bytes_in, bytes_out);
  if (res.status == 401 || res.status == 403) metrics_.auth_failure(code.empty() ? "unknown" : code);
  if (res.status == 429 || code == "upstream_rate_limited") metrics_.throttled(surface, code.empty() ? "unknown" : code);

  if (log::level() <= log::Level::info) {
    char dur[32];
    if (log::format() == log::Format::json) {
      std::snprintf(dur, sizeof dur, "%.3f", seconds * 1000);
      std::vector<log::Field> f = {{"method", req.method},
                                   {"route", ctx.route},
                                   {"status", std::to_string(res.status), true},
                                   {"duration_ms", dur, true}};
      if (!code.empty()) f.push_back({"code", code});
      if (!ctx.principal.session_id.empty()) f.push_back({"session_id", ctx.principal.session_id});
      if (ctx.principal.authenticated) f.push_back({"principal", principal_kind(ctx.principal)});
      f.push_back({"bytes_in", std::to_string(bytes_in), true});
      f.push_back({"bytes_out", std::to_string(bytes_out), true});
      log::write(log::Level::info, "request", f);
    } else {
      std::snprintf(dur, sizeof dur, "%.3fms", seconds * 1000);
      log::info("req=" + ctx.request_id + " " + req.method + " " + ctx.route + " " + std::to_string(res.status) +
                " " + dur + (code.empty() ? "" : " code=" + code) +
                (ctx.principal.session_id.empty() ? "" : " session=" + ctx.principal.session_id));
    }
  }

  if (audit_)
    if (auto e = audit_event(ctx, code, 0)) {
      e->time_ms = unix_now_ms();
      audit_->record(*e);
    }
  log::set_request_id(nullptr);
}

}  // namespace era::obs
