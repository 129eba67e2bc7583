// SessionStore: where sessions and revocations live, so they outlast a restart (and, with a shared
// backend such as D1, so that replicas of the proxy see each other's revocations).
//
// Contract, for every implementation:
// - Tokens are never stored: a token is derived from the session's claims and the signing secret,
//   so a copy of the store grants nothing.
// - create() fails with ApiError 409 "session_exists" if the id was ever used (live, expired or
//   revoked): a revocation is by session id, so an id is never reused.
// - get() and list() return live sessions only: not revoked, and expires_at > now.
// - revoke() records the revocation durably before returning, even for an id the store never saw
//   (tokens minted offline by `era-storage-proxy token` have no session record). It returns whether
//   a live session record existed.
// - revoked(now) returns the ids whose revocation still matters (`until` > now): the auth layer keeps
//   them in memory and checks every token against that set.
// - revoked_if_changed(now, stamp) is revoked(now) when the set may have changed since the version
//   `stamp` names (updated to the version read; -1 before the first read), and nullopt when it
//   certainly did not: a store shared by replicas answers that with one cheap read of a version stamp
//   that every revoke() moves, instead of reading the whole set every time.
// - sweep(now) forgets sessions and revocations that are past their expiry (their tokens are
//   refused by their own expiry by then). sweep_due(now) says whether a sweep may find anything: a
//   store where a sweep costs an upstream call answers false while nothing it wrote has expired.
// - Methods are safe to call from many threads; writes are durable when they return.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace era {

struct SessionRecord {
  std::string id;
  std::string language;                 // "python", "javascript", or "" (none given)
  bool all_namespaces = false;          // scope "*"
  std::vector<std::string> namespaces;  // the scope when !all_namespaces, sorted
  std::string permissions;              // "read" or "read_write"
  int64_t created_at = 0;               // unix seconds
  int64_t expires_at = 0;               // unix seconds
  std::string metadata;                 // compact JSON object text, or "" for none
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  virtual void create(const SessionRecord& session) = 0;
  virtual std::optional<SessionRecord> get(const std::string& id, int64_t now) = 0;
  // Live sessions ordered by id, at most `limit`, with ids greater than `after` ("" for the start).
  virtual std::vector<SessionRecord> list(int64_t now, const std::string& after, int limit) = 0;
  // `until`: when the revocation may be forgotten (no token of this session is valid after it).
  virtual bool revoke(const std::string& id, int64_t now, int64_t until) = 0;
  virtual std::vector<std::string> revoked(int64_t now) = 0;
  virtual std::optional<std::vector<std::string>> revoked_if_changed(int64_t now, int64_t& stamp) {
    (void)stamp;
    return revoked(now);
  }
  virtual int64_t sweep(int64_t now) = 0;
  virtual bool sweep_due(int64_t now) {
    (void)now;
    return true;
  }
};

}  // namespace era
