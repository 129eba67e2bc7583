// Fuzz target: session tokens (auth/token.h). The first input byte picks the mode:
// - even: the input is a bearer token as a client sends it, verified as the middleware does;
// - odd: the rest is a payload, signed with the server's secret and then verified, so the claims
//   parser (reached only after the MAC matches) sees arbitrary JSON too.
// Must hold: no crash or exception; a token that verifies has claims the proxy could have minted (a
// valid session id, valid namespaces, a known permission) and re-signing them verifies to the same
// claims; changing any byte of a verifying token makes it fail.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "auth/token.h"
#include "ns/names.h"
#include "util/encoding.h"

namespace {

constexpr const char* kSecret = "fuzz-secret-0123456789abcdef0123456789abcdef";
constexpr int64_t kNow = 1700000000;

void fail(const char* what, const std::string& token) {
  std::fprintf(stderr, "\n==== token: %s\n%s\n", what, token.c_str());
  std::abort();
}

bool same(const era::auth::Claims& a, const era::auth::Claims& b) {
  return a.session_id == b.session_id && a.scope.all == b.scope.all && a.scope.namespaces == b.scope.namespaces &&
         a.permissions == b.permissions && a.expires_at == b.expires_at;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace era;
  if (size == 0) return 0;
  std::string token(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) {
    const std::string signed_part = "era1." + enc::base64_encode(token, true);
    token = signed_part + "." + enc::base64_encode(auth::hmac_sha256(kSecret, signed_part), true);
  }
  const auth::Verified v = auth::verify_token(token, kSecret, kNow);
  if (v.status != auth::TokenStatus::ok && v.status != auth::TokenStatus::expired) return 0;
  const auth::Claims& c = v.claims;
  if (!auth::is_valid_session_id(c.session_id)) fail("verified with an invalid session id", token);
  for (const auto& ns : c.scope.namespaces)
    if (!ns::is_valid_namespace(ns)) fail("verified with an invalid namespace", token);
  if (c.scope.all && !c.scope.namespaces.empty()) fail("scope is both * and a list", token);
  if (v.status == auth::TokenStatus::ok && c.expires_at <= kNow) fail("verified although expired", token);
  if (v.status == auth::TokenStatus::expired && c.expires_at > kNow) fail("expired although in the future", token);

  const std::string again = auth::sign_token(c, kSecret);
  const auth::Verified w = auth::verify_token(again, kSecret, kNow);
  if (w.status != v.status || !same(w.claims, c)) fail("re-signed claims do not verify to the same claims", token);

  // Any one changed byte breaks it (signature, payload or prefix).
  for (size_t i = 0; i < token.size(); i += 1 + token.size() / 16) {
    std::string t = token;
    t[i] = static_cast<char>(t[i] ^ 0x01);
    const auth::Verified x = auth::verify_token(t, kSecret, kNow);
    if (x.status == auth::TokenStatus::ok || x.status == auth::TokenStatus::expired)
      if (!same(x.claims, c) || t != token) fail("a token with a changed byte still verifies", t);
  }
  return 0;
}
