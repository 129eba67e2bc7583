// HttpObserver: the router's one observer (http::Observer). For every request it
// - counts and times it in the metrics (obs/metrics.h), with its body bytes and, for a refusal, the
//   reason (401/403: auth failures; 429 and upstream throttling: throttle events);
// - writes the access log line, text or JSON (util/log.h): request id, method, route, status,
//   duration, error code, session id — never a token, a secret or a body;
// - writes the audit line (obs/audit.h), when there is an audit trail, for
//     every state change: a request whose method writes (PUT, POST, PATCH, DELETE) — unless the
//       handler said it changed nothing (Ctx::audit.wrote, D1's read-only statements) — that
//       succeeded (outcome "ok") or failed on the server's side (5xx, outcome "error": the state is
//       unknown); a refused bad request (other 4xx) changed nothing and is not a state change;
//     every denial, whatever the method: 401, 403 and 429 (outcome "denied").
#pragma once

#include "http/router.h"
#include "obs/audit.h"
#include "obs/metrics.h"

namespace era::obs {

class HttpObserver : public http::Observer {
 public:
  // `audit` may be null (no audit trail). Both must outlive the observer.
  HttpObserver(Metrics& metrics, AuditLog* audit) : metrics_(metrics), audit_(audit) {}

  void begin(http::Ctx& ctx) override;
  void end(http::Ctx& ctx, const std::string& code, double seconds) override;

  // The audit event for a finished request, or nullopt when it is neither a state change nor a
  // denial (see above). `now_ms`: the event's time.
  static std::optional<AuditEvent> audit_event(const http::Ctx& ctx, const std::string& code, int64_t now_ms);
  // The operation a route and method perform: put, get, delete, list, head, query, exec, batch,
  // create, revoke, run, stats, ...
  static std::string operation(Surface surface, const std::string& method, const std::string& route);

 private:
  Metrics& metrics_;
  AuditLog* audit_;
};

}  // namespace era::obs
