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
//
// Calls cost budget (store/cloudflare/call_budget.h), so the background work is cheap: every revoke()
// also moves a version stamp (a row of "era:stamps"), and revoked_if_changed() is one call that reads
// the stamp and, only when it moved, the set with it. sweep_due() is true only once something this
// replica wrote (a session, a revocation) has expired, and at most every kSweepEverySeconds: an idle
// replica never sweeps. (Rows other replicas wrote are swept by them, or by this one's next sweep.)
#pragma once

#include <mutex>
#include <set>

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
  std::optional<std::vector<std::string>> revoked_if_changed(int64_t now, int64_t& stamp) override;
  int64_t sweep(int64_t now) override;
  bool sweep_due(int64_t now) override;

  static constexpr int64_t kSweepEverySeconds = 600;

 private:
  // Creates the tables on first use (not at start: the proxy starts while D1 is unreachable, and
  // only the calls that need it fail).
  void ensure_schema();

  // Notes that a row this replica wrote stops mattering at `at` (a sweep may then delete it).
  void expires_at(int64_t at);

  D1Client& d1_;
  std::mutex mu_;
  bool schema_ready_ = false;
  std::mutex sweep_mu_;
  std::set<int64_t> expiries_;  // of rows written here and not swept yet (bounded: the earliest kept)
  int64_t last_sweep_ = 0;
};

}  // namespace era::cf
