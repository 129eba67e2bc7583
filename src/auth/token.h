// Session tokens: self-contained and signed, so checking one needs no store lookup.
//
//   token   = "era1." base64url(payload) "." base64url(HMAC-SHA256(secret, "era1." base64url(payload)))
//   payload = compact JSON {"sid": session id, "ns": [namespaces] | "*", "perm": "read" | "read_write",
//                           "exp": unix seconds}
//
// The MAC covers the version prefix and every claim, so changing any byte of the scope, the
// permissions or the expiry invalidates it. The MAC is compared with CRYPTO_memcmp (constant time),
// and only after it matches is the payload parsed: unauthenticated bytes never reach the JSON parser.
// Tokens are opaque to clients; their format may change with the version prefix.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "auth/principal.h"
#include "util/crypto.h"

namespace era::auth {

// Session ids: 1 to 128 of [A-Za-z0-9_.-] (safe in a path segment, a file name and a log line).
bool is_valid_session_id(std::string_view id);

struct Claims {
  std::string session_id;
  Scope scope;
  Permissions permissions = Permissions::read;
  int64_t expires_at = 0;  // unix seconds; the token is refused from this second on (no grace)
};

std::string sign_token(const Claims& claims, std::string_view secret);

enum class TokenStatus { ok, malformed, bad_signature, expired };

struct Verified {
  TokenStatus status = TokenStatus::malformed;
  Claims claims;  // set only when status == ok
};

// Checks the format, then the MAC, then the claims, then the expiry against `now`.
Verified verify_token(std::string_view token, std::string_view secret, int64_t now);

// The MAC and the admin-token compare come from the one crypto helper (util/crypto.h).
using crypto::constant_time_equal;
using crypto::hmac_sha256;

}  // namespace era::auth
