// The auth middleware: a check (router.use) that runs before every matched route's handler, sets
// Ctx::principal and refuses what the principal may not do, then an admission (router.admit: the rate
// limit, charged once per request). Refusals happen before the handler, so nothing changes. On the
// server's I/O thread (Ctx::on_loop, http::Router::try_inline) the check answers from memory or
// throws http::NotOnLoop. In order:
//
// 1. Where the request comes from (RequestPolicy), for every route:
//    - an Origin header (sent by browsers) must be the proxy's own origin (the scheme and the Host the
//      request was sent to, or server.public_url's) or one of auth.allowed_origins; "null" never is:
//      403 origin_forbidden. A web page on another site cannot drive the proxy.
//    - with auth off, the Host header must name a loopback address (127.0.0.0/8, localhost, [::1]) or
//      the configured server.host / public_url host: 403 host_forbidden. This stops DNS rebinding (a
//      page whose own name resolves to 127.0.0.1). The Unix socket is exempt (it has no host).
// 2. Who may call the route: its access declaration (http/access.h), the same rule code for every
//    route, whatever its URL:
//      anyone        no token needed (health, the SDK files, the explorer's files: none holds a secret;
//                    the explorer's API calls carry the admin token the user types in)
//      admin         the admin
//      own_session   the admin, or the session named by the path parameter
//      in_namespace  any valid token whose scope holds the namespace path parameter (403
//                    namespace_forbidden)
//      listing       any valid token; an explicit namespace query parameter must be in scope; the
//                    handler filters rows with auth::visible()
//    then Op::write needs read_write (403 read_only_token); Op::statement leaves it to the handler
//    (D1: the statement decides, and the store refuses a write from a read-only token).
//    Anything on the Unix socket (Ctx::from_sandbox: code run by the runner) needs a token, whatever
//    auth.mode says. A route that somehow has no declaration is refused (fail closed).
// 3. The session's rate limits (auth/rate_limit.h): 429 with Retry-After when exhausted.
#pragma once

#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "auth/rate_limit.h"
#include "http/router.h"

namespace era::auth {

struct RequestPolicy {
  bool auth_required = true;                  // false (auth off): the Host check applies
  std::vector<std::string> allowed_origins;   // besides the proxy's own: "scheme://host[:port]"
  std::vector<std::string> host_names;        // besides loopback names, accepted in Host with auth off
};

// Throws ApiError 403 origin_forbidden / host_forbidden per rule 1 above.
void check_request_source(const http::Ctx& c, const RequestPolicy& policy);

// Throws ApiError 401/403 per rule 2 above for c.principal.
void authorize(const http::Ctx& c);

// `limiter` may be null (no limits). Both must outlive the router.
void install_middleware(http::Router& router, const Authenticator& auth, RateLimiter* limiter,
                        RequestPolicy policy);

}  // namespace era::auth
