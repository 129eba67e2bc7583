// CloudflareSessions: the SessionStore contract in two tables of the one D1 database, so that every
// replica of the proxy sees the same sessions and revocations.
//
// The tables are named "era:sessions" and "era:revocations". No user table can have such a name: a
// user's table is always "<ns>_<table>" with <ns> made of [A-Za-z0-9_-], so its name has a '_' before
// any ':', and these have none. The SQL guard refuses every table a namespace does not own anyway.
//
// Each method is one /raw call (revoke: one batch, which D1 runs as a transaction). create() is a
// single conditional INSERT and is not retried once it may have run (a second try would find its own
// row and answer 409); revoke() and sweep() converge however often they run, so they are retried.
#pragma once

#include <mutex>

#include "store/cloudflare/d1_client.h"
#include "store/session_store.h"

namespace era::cf {

class CloudflareSessions : public SessionStore {
 public:
  explicit CloudflareSessions(D1Client& d1) : d1_(d1) {}

  void create(const SessionRecord& session) override;
  std::optional<SessionRecord> get(const std::string& id, int64_t now) override;
  std::vector<SessionRecord> list(int64_t now, const std::string& after, int limit) override;
  bool revoke(const std::string& id, int64_t now, int64_t until) override;
  std::vector<std::string> revoked(int64_t now) override;
  int64_t sweep(int64_t now) override;

 private:
  // Creates the tables on first use (not at start: the proxy starts while D1 is unreachable, and
  // only the calls that need it fail).
  void ensure_schema();

  D1Client& d1_;
  std::mutex mu_;
  bool schema_ready_ = false;
};

}  // namespace era::cf
