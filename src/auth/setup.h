// Start-up policy for auth, shared by `serve` (and the checks the `token` command needs):
// - auth "off" is allowed only when the proxy listens on a loopback address, and then with a warning;
//   on any other address it is refused, admin credential or not;
// - auth "token" on a non-loopback address needs an admin credential;
// - a refusal is a ConfigError whose message says why and what to change (serve exits non-zero).
#pragma once

#include <string>

#include "auth/authenticator.h"
#include "auth/middleware.h"
#include "auth/rate_limit.h"
#include "config/config.h"

namespace era::auth {

// "localhost", 127.0.0.0/8, ::1 (and ::ffff:127.x): addresses no other machine can reach.
bool is_loopback_host(const std::string& host);

// Resolves the credentials (auth/credentials.h) and applies the policy above. Throws ConfigError.
// The log lines to print at start (never a secret) are appended to `notes`.
AuthSettings auth_settings(const Config& config, std::string& notes);

RateLimits rate_limits(const Config& config);

// Where browsers' requests may come from (auth/middleware.h): auth.allowed_origins, and the names the
// proxy answers to with auth off (server.host unless it is a wildcard, and server.public_url's host).
RequestPolicy request_policy(const Config& config, bool auth_required);

}  // namespace era::auth
