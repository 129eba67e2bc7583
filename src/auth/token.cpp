#include "auth/token.h"


#include <nlohmann/json.hpp>
#include <stdexcept>

#include "ns/names.h"
#include "util/crypto.h"
#include "util/encoding.h"

namespace era::auth {
namespace {

constexpr std::string_view kPrefix = "era1.";
constexpr size_t kMaxTokenLength = 64 * 1024;  // a scope of many namespaces still fits; more is garbage

bool parse_claims(const std::string& text, Claims& out) {
  using nlohmann::json;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.size() != 4) return false;
  const json* sid = j.contains("sid") ? &j["sid"] : nullptr;
  const json* ns = j.contains("ns") ? &j["ns"] : nullptr;
  const json* perm = j.contains("perm") ? &j["perm"] : nullptr;
  const json* exp = j.contains("exp") ? &j["exp"] : nullptr;
  if (!sid || !ns || !perm || !exp) return false;
  if (!sid->is_string() || !is_valid_session_id(sid->get_ref<const std::string&>())) return false;
  if (!perm->is_string() || !parse_permissions(perm->get_ref<const std::string&>(), out.permissions)) return false;
  if (!exp->is_number_integer()) return false;
  out.session_id = sid->get<std::string>();
  out.expires_at = exp->get<int64_t>();
  if (ns->is_string() && ns->get_ref<const std::string&>() == "*") {
    out.scope.all = true;
  } else if (ns->is_object()) {
    if (ns->size() != 2 || !ns->contains("sha256") || !ns->contains("n")) return false;
    const json& d = (*ns)["sha256"];
    if (!d.is_string() || d.get_ref<const std::string&>().size() != 43 || !(*ns)["n"].is_number_unsigned()) return false;
    out.scope_digest = d.get<std::string>();
  } else if (ns->is_array()) {
    for (const auto& n : *ns) {
      if (!n.is_string() || !ns::is_valid_namespace(n.get_ref<const std::string&>())) return false;
      out.scope.namespaces.insert(n.get<std::string>());
    }
  } else {
    return false;
  }
  return true;
}

}  // namespace

bool is_valid_session_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
          c == '.'))
      return false;
  return true;
}

std::string scope_digest(const Scope& scope) {
  std::string joined;
  for (const auto& n : scope.namespaces) {  // std::set: sorted
    if (!joined.empty()) joined += '\n';
    joined += n;
  }
  return enc::base64_encode(crypto::sha256(joined), true);
}

bool scope_fits_in_token(const Scope& scope) {
  if (scope.all) return true;
  return nlohmann::json(scope.namespaces).dump().size() <= kMaxInlineScopeBytes;
}

std::string sign_token(const Claims& c, std::string_view secret) {
  nlohmann::json j;
  j["sid"] = c.session_id;
  if (c.scope.all) j["ns"] = "*";
  else if (scope_fits_in_token(c.scope)) j["ns"] = c.scope.namespaces;  // std::set: sorted, so equal scopes sign equally
  else j["ns"] = {{"sha256", scope_digest(c.scope)}, {"n", c.scope.namespaces.size()}};
  j["perm"] = to_string(c.permissions);
  j["exp"] = c.expires_at;
  std::string signed_part = std::string(kPrefix) + enc::base64_encode(j.dump(), true);
  return signed_part + "." + enc::base64_encode(hmac_sha256(secret, signed_part), true);
}

Verified verify_token(std::string_view token, std::string_view secret, int64_t now) {
  Verified v;
  if (token.size() > kMaxTokenLength || token.substr(0, kPrefix.size()) != kPrefix) return v;
  const size_t dot = token.rfind('.');
  if (dot < kPrefix.size()) return v;  // the only dot is the prefix's
  const std::string_view signed_part = token.substr(0, dot);
  auto mac = enc::base64_decode(token.substr(dot + 1), true);
  if (!mac || mac->size() != 32) return v;  // HMAC-SHA256: 32 bytes
  const std::string expected = hmac_sha256(secret, signed_part);
  if (!constant_time_equal(expected, *mac)) {
    v.status = TokenStatus::bad_signature;
    return v;
  }
  auto payload = enc::base64_decode(signed_part.substr(kPrefix.size()), true);
  if (!payload || !parse_claims(*payload, v.claims)) {
    v.claims = Claims{};
    return v;  // signed by us but not a token we would mint: treat as malformed
  }
  if (v.claims.expires_at <= now) {
    v.status = TokenStatus::expired;
    return v;
  }
  v.status = TokenStatus::ok;
  return v;
}

}  // namespace era::auth
