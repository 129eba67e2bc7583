// Session tokens: signed, and self-contained for every scope that fits, so checking one needs no
// store lookup.
//
//   token   = "era1." base64url(payload) "." base64url(HMAC-SHA256(secret, "era1." base64url(payload)))
//   payload = compact JSON {"sid": session id, "ns": [namespaces] | "*" | {"sha256": d, "n": count},
//                           "perm": "read" | "read_write", "exp": unix seconds}
//
// A scope too long to travel in a header (a session may name 1,000 namespaces of 64 bytes; the HTTP
// server takes header lines of at most 8 KiB) is not copied into the token: "ns" then holds the
// SHA-256 of the sorted names joined by '\n' (base64url) and their count, and the authenticator
// takes the names from the session's stored record, which must match the digest. Every token stays
// under kMaxInlineScopeBytes + a few hundred bytes.
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

// Scopes whose JSON list is longer than this are sent by digest (see above).
constexpr size_t kMaxInlineScopeBytes = 2048;

struct Claims {
  std::string session_id;
  Scope scope;
  // Set when the token carries the scope by digest: `scope` is then empty until the authenticator
  // fills it from the session's record (scope_digest(record) must equal this).
  std::string scope_digest;
  Permissions permissions = Permissions::read;
  int64_t expires_at = 0;  // unix seconds; the token is refused from this second on (no grace)
};

std::string sign_token(const Claims& claims, std::string_view secret);

// The digest a token carries for `scope` (base64url SHA-256 of the sorted names joined by '\n').
std::string scope_digest(const Scope& scope);
// Whether a token for `scope` carries its names (true) or only their digest (false).
bool scope_fits_in_token(const Scope& scope);

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
