#include "auth/authenticator.h"

#include <cctype>

#include <openssl/crypto.h>

#include "store/call_priority.h"
#include "util/error.h"
#include "util/log.h"

namespace era::auth {
namespace {

ApiError unauthorized(const std::string& code, const std::string& message) {
  ApiError e(401, code, message);
  e.header = {"WWW-Authenticate", "Bearer realm=\"era-storage-proxy\""};
  return e;
}

// "Bearer <token>", the scheme case-insensitive (RFC 7235); nullopt for anything else.
std::optional<std::string_view> bearer(std::string_view h) {
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  constexpr std::string_view scheme = "bearer";
  if (h.size() <= scheme.size() || h[scheme.size()] != ' ') return std::nullopt;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(h[i])) != scheme[i]) return std::nullopt;
  h.remove_prefix(scheme.size());
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
  if (h.empty()) return std::nullopt;
  return h;
}

}  // namespace

Claims claims_for(const SessionRecord& s) {
  Claims c;
  c.session_id = s.id;
  c.scope.all = s.all_namespaces;
  c.scope.namespaces.insert(s.namespaces.begin(), s.namespaces.end());
  parse_permissions(s.permissions, c.permissions);
  c.expires_at = s.expires_at;
  return c;
}

Authenticator::Authenticator(AuthSettings settings, SessionStore& store, std::function<int64_t()> now)
    : settings_(std::move(settings)),
      admin_sha256_(settings_.admin_token ? crypto::sha256(*settings_.admin_token) : std::string()),
      store_(store),
      now_(std::move(now)) {}

Authenticator::~Authenticator() { stop(); }

void Authenticator::start(std::function<void()> tick) {
  {
    BackgroundCalls background;
    refresh();
  }
  thread_ = std::thread([this, tick = std::move(tick)] { loop(tick); });
}

void Authenticator::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Authenticator::loop(std::function<void()> tick) {
  BackgroundCalls background;  // upstream calls made here wait behind every client's
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::seconds(settings_.refresh_seconds), [&] { return stopping_; })) {
    lock.unlock();
    try {
      refresh();
      if (store_.sweep_due(now_())) store_.sweep(now_());
      if (tick) tick();
    } catch (const std::exception& e) {
      log::warn(std::string("revocation refresh failed (keeping the previous set): ") + e.what());
    }
    lock.lock();
  }
}

void Authenticator::refresh() {
  int64_t stamp;
  {
    std::lock_guard<std::mutex> lock(stamp_mu_);
    stamp = stamp_;
  }
  std::optional<std::vector<std::string>> ids = store_.revoked_if_changed(now_(), stamp);
  if (!ids) return;  // unchanged since the last read: the set in memory is current
  std::unordered_set<std::string> fresh(ids->begin(), ids->end());
  std::unique_lock<std::shared_mutex> lock(set_mu_);
  {
    std::lock_guard<std::mutex> stamp_lock(stamp_mu_);
    stamp_ = stamp;
  }
  // A revocation made here while the store was being read may be missing from `ids`: keep it.
  for (auto it = recent_.begin(); it != recent_.end();) {
    if (fresh.count(*it)) {
      it = recent_.erase(it);
    } else {
      fresh.insert(*it);
      ++it;
    }
  }
  revoked_.swap(fresh);
}

bool Authenticator::revoke(const std::string& id) {
  const int64_t now = now_();
  const bool existed = store_.revoke(id, now, now + settings_.max_ttl);
  std::unique_lock<std::shared_mutex> lock(set_mu_);
  revoked_.insert(id);
  recent_.insert(id);
  return existed;
}

bool Authenticator::is_revoked(const std::string& id) const {
  std::shared_lock<std::shared_mutex> lock(set_mu_);
  return revoked_.count(id) > 0;
}

std::optional<Scope> Authenticator::cached_scope(const Claims& claims) const {
  std::lock_guard<std::mutex> lock(scope_mu_);
  auto it = scopes_.find(claims.session_id);
  if (it != scopes_.end() && it->second.first == claims.scope_digest) return it->second.second;
  return std::nullopt;
}

Scope Authenticator::stored_scope(const Claims& claims) const {
  if (auto scope = cached_scope(claims)) return std::move(*scope);
  auto record = store_.get(claims.session_id, now_());
  if (!record) throw unauthorized("token_revoked", "the session has ended");
  Scope scope = claims_for(*record).scope;
  if (scope.all || scope_digest(scope) != claims.scope_digest)
    throw unauthorized("invalid_token", "the token is not valid");
  std::lock_guard<std::mutex> lock(scope_mu_);
  if (scopes_.size() >= 256) scopes_.clear();  // bounded: at most 256 large scopes are kept
  scopes_[claims.session_id] = {claims.scope_digest, scope};
  return scope;
}

bool Authenticator::ConstantTimeEqual::operator()(const std::string& a, const std::string& b) const {
  // Reached only for tokens whose hashes are equal; the length of a token is no secret.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<Claims> Authenticator::cached_claims(std::string_view token) const {
  if (token.size() > kMaxCachedTokenBytes) return std::nullopt;
  const std::string key(token);
  std::shared_lock<std::shared_mutex> lock(claims_mu_);
  auto it = claims_.find(key);
  if (it == claims_.end()) return std::nullopt;
  return it->second;
}

void Authenticator::remember_claims(std::string_view token, const Claims& claims) const {
  if (token.size() > kMaxCachedTokenBytes) return;
  std::unique_lock<std::shared_mutex> lock(claims_mu_);
  if (claims_.size() >= kMaxCachedTokens) claims_.clear();  // bounded; live tokens come back on their next use
  claims_.emplace(std::string(token), claims);
}

void Authenticator::forget_claims(std::string_view token) const {
  std::unique_lock<std::shared_mutex> lock(claims_mu_);
  claims_.erase(std::string(token));
}

size_t Authenticator::cached_tokens() const {
  std::shared_lock<std::shared_mutex> lock(claims_mu_);
  return claims_.size();
}

Principal Authenticator::authenticate(const std::optional<std::string>& header) const {
  return *authenticate(header, false);
}

std::optional<Principal> Authenticator::authenticate_in_memory(const std::optional<std::string>& header) const {
  return authenticate(header, true);
}

std::optional<Principal> Authenticator::authenticate(const std::optional<std::string>& header, bool memory_only) const {
  if (!header) {
    if (!settings_.required) return Principal::administrator();
    throw unauthorized("missing_token", "authentication required: send the session token as "
                                        "'Authorization: Bearer <token>' (ERA_STORAGE_TOKEN in the SDKs)");
  }
  auto token = bearer(*header);
  if (!token) throw unauthorized("invalid_token", "the Authorization header must be 'Bearer <token>'");
  // A cached token is never the admin credential (it entered the cache only after the compare below
  // said so), so a hit skips that compare's SHA-256; a miss makes it as before.
  auto claims = cached_claims(*token);
  if (!claims && settings_.admin_token && crypto::constant_time_equal_sha256(*token, admin_sha256_))
    return Principal::administrator();
  const int64_t now = now_();
  Verified v;
  if (claims) {
    // Verified before under the same secret: the MAC and claims hold; the expiry is checked as
    // verify_token checks it, the revocation below as for any token.
    v.claims = std::move(*claims);
    v.status = v.claims.expires_at <= now ? TokenStatus::expired : TokenStatus::ok;
    if (v.status == TokenStatus::expired) forget_claims(*token);
  } else {
    v = verify_token(*token, settings_.secret, now);
    if (v.status == TokenStatus::ok) remember_claims(*token, v.claims);
  }
  switch (v.status) {
    case TokenStatus::ok: break;
    case TokenStatus::expired: throw unauthorized("token_expired", "the session token has expired");
    case TokenStatus::malformed:
    case TokenStatus::bad_signature: throw unauthorized("invalid_token", "the token is not valid");
  }
  if (is_revoked(v.claims.session_id)) throw unauthorized("token_revoked", "the session has been ended");
  Principal p;
  p.authenticated = true;
  if (v.claims.scope_digest.empty()) {
    p.scope = std::move(v.claims.scope);
  } else if (!memory_only) {
    p.scope = stored_scope(v.claims);
  } else if (auto scope = cached_scope(v.claims)) {
    p.scope = std::move(*scope);
  } else {
    return std::nullopt;  // the store would be read
  }
  p.session_id = std::move(v.claims.session_id);
  p.permissions = v.claims.permissions;
  p.expires_at = v.claims.expires_at;
  return p;
}

}  // namespace era::auth
