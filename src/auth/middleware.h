// The auth middleware: one router.use() hook that runs before every matched route's handler, sets
// Ctx::principal and refuses what the principal may not do. Refusals happen before the handler, so
// nothing changes. Which rule applies is decided from the route pattern and method:
//
//   /healthz, /api/sdk/...            open to anyone (no token needed; the SDKs are not secret)
//   /explorer, /explorer/...          open to anyone: the page's files hold no secret; its API calls
//                                     carry the admin token the user types in
//   anything else on the Unix socket  (Ctx::from_sandbox: code run by the runner) needs a token,
//                                     whatever auth.mode says
//   POST|GET /api/sessions            the admin
//   DELETE /api/sessions/{id}         the admin
//   other /api/sessions/{id}[/...]    the admin, or that session's own token
//   every other route                 any valid token; then
//     - a {ns} path parameter, or a `namespace` query parameter on /api/resources/..., must be in
//       the principal's scope (403 namespace_forbidden);
//     - a write needs read_write (403 read_only_token). A write is any method but GET, HEAD and
//       OPTIONS — except POST /api/storage/d1/...: there the statement decides, so the D1 handler
//       must call auth::require_write(ctx.principal) before running a statement that writes
//       (e.g. when sqlite3_stmt_readonly() is false).
//   Listings across namespaces (/api/resources/list, /stats) filter rows with auth::visible().
//
// Then the session's rate limits (auth/rate_limit.h): 429 with Retry-After when exhausted.
#pragma once

#include "auth/authenticator.h"
#include "auth/rate_limit.h"
#include "http/router.h"

namespace era::auth {

// `limiter` may be null (no limits). Both must outlive the router.
void install_middleware(http::Router& router, const Authenticator& auth, RateLimiter* limiter);

}  // namespace era::auth
