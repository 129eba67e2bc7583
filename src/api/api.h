// The HTTP surfaces. Each register_* function adds one surface's routes to the router; handlers
// are small lambdas that validate input, call a store through its interface and shape the JSON.
#pragma once

#include "auth/authenticator.h"
#include "auth/rate_limit.h"
#include "config/config.h"
#include "http/router.h"
#include "store/backend.h"

namespace era::runner {
class Runner;
}
namespace era::obs {
class AuditLog;
}

namespace era::api {

struct Services {
  const Config& config;
  Backend& backend;
  auth::Authenticator& auth;
  auth::RateLimiter* limiter = nullptr;  // per-session limits; null: none
  runner::Runner* runner = nullptr;  // runs sessions' code (POST /api/sessions/{id}/run); null: off
  obs::AuditLog* audit = nullptr;    // the audit trail (GET /api/audit); null: none
};

void register_health(http::Router& router, Services& services);
void register_kv(http::Router& router, Services& services);
void register_sessions(http::Router& router, Services& services);
void register_sdk(http::Router& router, Services& services);
void register_run(http::Router& router, Services& services);
void register_r2(http::Router& router, Services& services);
void register_d1(http::Router& router, Services& services);
void register_resources(http::Router& router, Services& services);
void register_explorer(http::Router& router, Services& services);
// GET /metrics (Prometheus) and GET /api/audit.
void register_observe(http::Router& router, Services& services);

// Every surface, in one call (what `serve` uses), behind the auth middleware (auth/middleware.h).
void register_all(http::Router& router, Services& services);

}  // namespace era::api
