// What an operator reads (docs/operations.md):
//   GET /metrics    Prometheus text exposition: the process's metrics (obs/metrics.h), the store sizes
//                   from the resource registry's counters (cached: metrics.store_sizes_ttl) and the
//                   audit writer's figures. Its own credential check (the auth middleware skips the
//                   route): the admin credential, or the metrics token, or none from a loopback peer
//                   when metrics.open_on_loopback is set — never from the runner's Unix socket.
//   GET /api/audit  the audit trail (obs/audit.h), admin only, paged:
//                   ?session=&namespace=&since=&limit=&cursor= -> {"events": [...], "cursor"}
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <mutex>

#include "api/api.h"
#include "api/params.h"
#include "auth/credentials.h"
#include "auth/setup.h"
#include "auth/token.h"
#include "ns/names.h"
#include "obs/audit.h"
#include "obs/metrics.h"
#include "util/error.h"

namespace era::api {
namespace {

using http::json;

// The registry's counters, read at most every `ttl` seconds: in cloudflare mode a read costs
// upstream calls from the shared budget, so a scrape every 15 s must not become 3 D1 calls each time.
class StoreSizes {
 public:
  StoreSizes(ResourceRegistry& registry, int ttl) : registry_(registry), ttl_(ttl) {}

  void write(obs::Exposition& out) {
    ResourceStats s;
    double age = 0;
    bool ok = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto now = std::chrono::steady_clock::now();
      if (!cached_ || ttl_ == 0 || now - at_ >= std::chrono::seconds(ttl_)) {
        try {
          cached_ = registry_.stats(std::nullopt, std::nullopt);
          at_ = now;
        } catch (const std::exception&) {
          ok = false;  // the last figures stay; the failure is its own gauge
        }
      }
      if (cached_) s = *cached_;
      age = cached_ ? std::chrono::duration<double>(now - at_).count() : 0;
    }
    out.family("era_store_resources",
               "Resources held, by type: kv (KV keys), d1 (D1 tables), r2 (R2 objects); from the resource "
               "registry's counters, cached for metrics.store_sizes_ttl seconds.",
               "gauge");
    for (const char* t : {"kv", "d1", "r2"})
      out.sample("era_store_resources", {{"type", t}}, int64_t(s.by_type.count(t) ? s.by_type.at(t) : 0));
    out.family("era_store_bytes",
               "Bytes held, by type: kv (values), r2 (objects), d1 (0: table sizes are not counted); from the "
               "registry's counters.",
               "gauge");
    for (const char* t : {"kv", "d1", "r2"})
      out.sample("era_store_bytes", {{"type", t}}, int64_t(s.size_by_type.count(t) ? s.size_by_type.at(t) : 0));
    out.family("era_store_sizes_age_seconds", "How old the store figures above are.", "gauge");
    out.sample("era_store_sizes_age_seconds", {}, age);
    out.family("era_store_sizes_up", "1 if the last read of the store sizes succeeded, else 0.", "gauge");
    out.sample("era_store_sizes_up", {}, int64_t(ok ? 1 : 0));
  }

 private:
  ResourceRegistry& registry_;
  const int ttl_;
  std::mutex mu_;
  std::optional<ResourceStats> cached_;
  std::chrono::steady_clock::time_point at_;
};

void write_audit_metrics(obs::Exposition& out, const obs::AuditLog* audit) {
  obs::AuditLog::Stats s;
  if (audit) s = audit->stats();
  out.family("era_audit_events_total", "Audit events recorded (state changes and denials).", "counter");
  out.sample("era_audit_events_total", {}, s.events);
  out.family("era_audit_fsyncs_total", "Groups of audit lines written with one fsync.", "counter");
  out.sample("era_audit_fsyncs_total", {}, s.groups);
  out.family("era_audit_queue_waits_total",
             "Times a request waited because the audit queue was full (the disk is slower than the writes).",
             "counter");
  out.sample("era_audit_queue_waits_total", {}, s.waits);
  out.family("era_audit_write_errors_total", "Failed writes or fsyncs of the audit file.", "counter");
  out.sample("era_audit_write_errors_total", {}, s.write_errors);
  out.family("era_audit_rotations_total", "Rotations of the audit file.", "counter");
  out.sample("era_audit_rotations_total", {}, s.rotations);
  out.family("era_audit_queue_depth", "Audit events waiting for the writer.", "gauge");
  out.sample("era_audit_queue_depth", {}, s.queued);
}

// `since`: unix seconds, or an ISO 8601 UTC time (2026-11-29T22:00:00Z, milliseconds optional).
std::string parse_since(const std::string& v) {
  const auto bad = [] {
    return bad_request("invalid_since",
                       "since must be unix seconds or an ISO 8601 UTC time such as 2026-11-29T22:00:00Z");
  };
  if (v.empty()) throw bad();
  if (v.find_first_not_of("0123456789") == std::string::npos) {
    if (v.size() > 11) throw bad();
    return obs::AuditLog::iso_time(std::stoll(v) * 1000);
  }
  std::tm tm{};
  const char* rest = strptime(v.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) throw bad();
  int ms = 0;
  if (*rest == '.') {
    ++rest;
    int digits = 0;
    while (*rest >= '0' && *rest <= '9') {
      if (digits < 3) ms = ms * 10 + (*rest - '0');
      ++digits, ++rest;
    }
    if (digits == 0) throw bad();
    for (; digits < 3; ++digits) ms *= 10;
  }
  if (std::string(rest) != "Z") throw bad();
  const std::time_t secs = timegm(&tm);
  return obs::AuditLog::iso_time(int64_t(secs) * 1000 + ms);
}

}  // namespace

void register_observe(http::Router& router, Services& services) {
  auto sizes = std::make_shared<StoreSizes>(services.backend.registry(), services.config.metrics_store_sizes_ttl);
  const std::optional<std::string> token = [&]() -> std::optional<std::string> {
    if (auto s = auth::resolve_metrics_token(services.config)) return s->value;
    return std::nullopt;
  }();
  const bool open_on_loopback = services.config.metrics_open_on_loopback;
  auth::Authenticator& auth = services.auth;
  obs::AuditLog* audit = services.audit;

  // Open to the middleware: the handler checks its own credential (the admin's or the metrics token).
  router.add("GET", "/metrics", http::Access::open(), [sizes, token, open_on_loopback, &auth, audit](http::Ctx& c) {
    const bool open = open_on_loopback && !c.from_sandbox && auth::is_loopback_host(c.req.remote_addr);
    if (!open) {
      std::optional<std::string> header;
      if (c.req.has_header("Authorization")) header = c.req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      const bool by_token = token && header && header->compare(0, prefix.size(), prefix) == 0 &&
                            auth::constant_time_equal(std::string_view(*header).substr(prefix.size()), *token);
      if (!by_token) {
        if (c.from_sandbox && !header)
          throw ApiError(401, "missing_token", "requests from a session's sandbox must carry a token");
        c.principal = auth.authenticate(header);
        if (!c.principal.admin)
          throw ApiError(403, "admin_required", "GET /metrics needs the admin credential or the metrics token");
      }
    }
    obs::Exposition extra;
    sizes->write(extra);
    write_audit_metrics(extra, audit);
    std::string page = obs::metrics().render();
    page += extra.text();
    c.res.status = 200;
    c.res.set_content(page, "text/plain; version=0.0.4; charset=utf-8");
  });

  router.add("GET", "/api/audit", http::Access::admin(), [audit](http::Ctx& c) {
    if (!audit) throw not_found("audit_disabled", "there is no audit trail: set audit.file (ERA_PROXY_AUDIT_FILE)");
    if (!audit->readable())
      throw not_found("audit_not_readable", "the audit trail goes to stdout (audit.file = \"-\"): read it there");
    obs::AuditQuery q;
    if (auto s = c.query("session")) {
      if (!auth::is_valid_session_id(*s))
        throw bad_request("invalid_session_id", "a session id is 1 to 128 of A-Z a-z 0-9 _ . -");
      q.session = *s;
    }
    if (auto ns = c.query("namespace")) {
      ns::check_namespace(*ns);
      q.ns = *ns;
    }
    if (auto since = c.query("since")) q.since = parse_since(*since);
    q.limit = static_cast<size_t>(int_param(c.query("limit"), 100, 1, 1000, "limit"));
    if (auto cursor = c.query("cursor")) {
      if (cursor->empty() || cursor->size() > 19 || cursor->find_first_not_of("0123456789") != std::string::npos)
        throw bad_request("invalid_cursor", "cursor must be the cursor of an earlier page");
      q.after = std::strtoull(cursor->c_str(), nullptr, 10);
    }
    audit->flush();  // what was recorded before this call (the caller's own last write included) is read
    obs::AuditPage page = audit->read(q);
    json events = json::array();
    for (const auto& line : page.lines) events.push_back(json::parse(line, nullptr, false));
    c.ok({{"events", std::move(events)}, {"cursor", page.cursor ? json(std::to_string(*page.cursor)) : json(nullptr)}});
  });
}

}  // namespace era::api
