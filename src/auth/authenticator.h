// Authenticator: turns an Authorization header into a Principal.
//
// The hot path touches no store: the admin credential is compared in constant time, a session token
// is checked by its MAC and expiry (auth/token.h), and revocation is one lookup in an in-memory set.
// Only a token that carries its scope by digest (a scope too long for a header) needs the session's
// record, read once and then kept in a small in-memory cache (a session's scope never changes).
//
// A token whose MAC and claims were verified once is kept in a bounded cache keyed by the whole token
// string (compared in constant time), so a client that sends the same token on every request costs
// one hash lookup instead of an HMAC and a JSON parse (and the admin compare: a token is cached only
// once that compare said it is not the admin credential). Only what the MAC proves is cached (the claims,
// which the secret fixes for good); the expiry and the revocation set are checked on every request,
// cache hit or not, so an expired or revoked token is refused exactly when it would be without it.
// That set is loaded from the SessionStore at start, updated at once by revoke(), and checked every
// `refresh_seconds` by a background thread (which is how a revocation made by another replica sharing
// the store arrives): one cheap version-stamp read, the set read again only when it moved
// (SessionStore::revoked_if_changed). The same thread sweeps expired sessions when the store says a
// sweep is due. Its upstream calls are background work (store/call_priority.h).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "auth/principal.h"
#include "auth/token.h"
#include "store/session_store.h"

namespace era::auth {

struct AuthSettings {
  bool required = true;                     // false: auth "off" — a request without a token is the admin
  std::string secret;                       // signs session tokens
  std::optional<std::string> admin_token;   // none: no admin credential
  int64_t max_ttl = 2592000;                // revocations of unknown ids are kept this long
  int refresh_seconds = 60;
};

// The claims a stored session's token carries (so its token can be minted again: it is deterministic).
Claims claims_for(const SessionRecord& session);

class Authenticator {
 public:
  Authenticator(AuthSettings settings, SessionStore& store, std::function<int64_t()> now);
  ~Authenticator();
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // Loads the revocation set and starts the refresh thread. `tick` (optional) runs on each refresh
  // too (the rate limiter's housekeeping).
  void start(std::function<void()> tick = nullptr);

  // Bounds of the verified-token cache: at most this many tokens, of at most kMaxCachedTokenBytes
  // each (a longer one is verified every time); when full, the cache starts over.
  static constexpr size_t kMaxCachedTokens = 1024;
  static constexpr size_t kMaxCachedTokenBytes = 4096;
  size_t cached_tokens() const;
  void stop();

  bool required() const { return settings_.required; }
  bool has_admin() const { return settings_.admin_token.has_value(); }

  // The principal for a request whose Authorization header is `header` (nullopt: none sent).
  // Throws ApiError 401 (missing_token, invalid_token, token_expired, token_revoked).
  Principal authenticate(const std::optional<std::string>& header) const;
  // The same, from memory only (for the server's I/O thread): nullopt where authenticate() would read
  // the session store (a token whose scope is kept by digest and not yet cached); otherwise the same
  // principal, or the same ApiError.
  std::optional<Principal> authenticate_in_memory(const std::optional<std::string>& header) const;

  std::string mint(const Claims& claims) const { return sign_token(claims, settings_.secret); }

  // Revokes a session id durably, then in memory; returns whether a live session record existed.
  bool revoke(const std::string& session_id);
  bool is_revoked(const std::string& session_id) const;

 private:
  // The scope of a token that carries it by digest, from the session's record; 401 when the session
  // is gone or its record does not match.
  Scope stored_scope(const Claims& claims) const;
  // That scope if it is cached.
  std::optional<Scope> cached_scope(const Claims& claims) const;
  // authenticate(), with `memory_only` as authenticate_in_memory().
  std::optional<Principal> authenticate(const std::optional<std::string>& header, bool memory_only) const;

  void refresh();
  void loop(std::function<void()> tick);

  AuthSettings settings_;
  std::string admin_sha256_;  // sha256 of the admin credential, when there is one
  SessionStore& store_;
  std::function<int64_t()> now_;

  mutable std::shared_mutex set_mu_;
  std::unordered_set<std::string> revoked_;
  std::unordered_set<std::string> recent_;  // revoked here since the last reload began
  std::mutex stamp_mu_;
  int64_t stamp_ = -1;  // the store's revocation version the set in memory reflects (-1: none yet)

  // Claims of tokens that verified, by the whole token (see the top of this file).
  std::optional<Claims> cached_claims(std::string_view token) const;
  void remember_claims(std::string_view token, const Claims& claims) const;
  void forget_claims(std::string_view token) const;
  struct ConstantTimeEqual {
    bool operator()(const std::string& a, const std::string& b) const;
  };
  mutable std::shared_mutex claims_mu_;
  mutable std::unordered_map<std::string, Claims, std::hash<std::string>, ConstantTimeEqual> claims_;

  mutable std::mutex scope_mu_;
  // By session id, for digest tokens: (digest, scope).
  mutable std::unordered_map<std::string, std::pair<std::string, Scope>> scopes_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace era::auth
