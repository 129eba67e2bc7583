// CallBudget: the Cloudflare REST calls this proxy may still make, kept by the proxy itself so that it
// never runs into Cloudflare's own limit (1,200 calls per 5 minutes per API token, shared by every
// caller of the token; past it every call of the token is refused with 429 for the next 5 minutes).
// KV and D1 over REST spend it; R2's S3 API is a separate API and does not (S3 requests carry no budget).
//
// - A sliding window: at most `limit` calls start in any `window_ms` (default 1,100 per 5 minutes,
//   divided by the number of replicas that share the token). Every attempt counts, retries included.
// - Calls that find no room wait in a bounded FIFO queue, clients first: background work (revocation
//   checks, sweeps, reindex; store/call_priority.h) goes only when no client waits, and uses at most
//   `background_percent` of the window. A call whose wait would exceed `max_wait_ms`, or that finds the
//   queue full, is refused at once: ApiError 503 "call_budget_exhausted" ("upstream_rate_limited" while a
//   429 pause lasts) with retry_after_s (http/ writes Retry-After). Nothing was sent for it, so nothing
//   changed.
// - Cloudflare's own view corrects ours: `Ratelimit: "default";r=50;t=30` (remaining calls and seconds
//   to the reset: at most r / replicas more before then) and `Ratelimit-Policy: "burst";q=100;w=60` (a
//   quota q per w seconds: a policy over our window lowers the limit to q / replicas). A 429 pauses the
//   whole budget until its Retry-After (default_pause_ms without one): the call that got it is tried
//   again only after the pause, through the budget like any other, never blindly.
//
// acquire() blocks; enter() / try_start() / leave() are its non-blocking steps, driven directly by the
// tests with a fake clock.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/call_priority.h"

namespace era::obs {
class Exposition;
}

namespace era::cf {

struct BudgetOptions {
  int64_t calls = 1100;          // REST calls per window for the whole API token (0: no budget)
  int64_t window_ms = 300000;    // Cloudflare's window: 5 minutes
  int replicas = 1;              // proxies sharing the token: each keeps calls / replicas
  int64_t max_wait_ms = 5000;    // a call that would wait longer for room is refused with 503
  size_t max_queue = 1024;       // calls waiting at once; more are refused with 503
  int background_percent = 10;   // of the window, for background work
  int64_t default_pause_ms = 60000;  // pause after a 429 that carries no Retry-After
};

// One item of a Ratelimit or Ratelimit-Policy header (an HTTP structured-field list): its name and
// integer parameters (r, t, q, w; others ignored). Malformed items are skipped.
struct RateLimitItem {
  std::string name;
  std::optional<int64_t> r, t, q, w;
};
std::vector<RateLimitItem> parse_ratelimit_header(std::string_view value);

class CallBudget {
 public:
  using Clock = std::function<int64_t()>;  // monotonic milliseconds
  using Ticket = uint64_t;

  explicit CallBudget(BudgetOptions options, Clock now = nullptr);

  bool enabled() const { return options_.calls > 0; }

  // Waits for room for one call of this priority and counts it as started. Throws ApiError 503
  // (call_budget_exhausted, retry_after_s set) instead of waiting past max_wait_ms.
  void acquire(CallPriority priority);

  // What an answer to a budgeted call says about Cloudflare's limit: its status (429 pauses the
  // budget), its Ratelimit and Ratelimit-Policy headers, its Retry-After in ms (when it had one).
  void observe(int status, const std::optional<std::string>& ratelimit, const std::optional<std::string>& policy,
               std::optional<long> retry_after_ms);

  // --- the steps of acquire(), for tests
  // Joins the queue, or throws the 503 when the estimated wait is too long or the queue is full.
  Ticket enter(CallPriority priority);
  struct Turn {
    bool started = false;
    int64_t wait_ms = 0;  // not started: try again after at most this long (or when notified)
  };
  // Starts the call if it is its turn and there is room. Throws the 503 (and leaves the queue) once the
  // ticket cannot start within max_wait_ms of entering.
  Turn try_start(Ticket ticket);
  void leave(Ticket ticket);

  struct Snapshot {
    int64_t limit = 0;             // calls per window for this replica, now
    int64_t window_ms = 0;
    int64_t used = 0;              // calls started in the current window
    int64_t background_used = 0;
    int64_t queued_client = 0, queued_background = 0;
    int64_t paused_ms = 0;         // left of a 429 pause
    std::optional<int64_t> upstream_remaining;  // Cloudflare's r / replicas, while its window lasts
    uint64_t started = 0, waited = 0, refused = 0, throttled = 0;  // totals
  };
  Snapshot snapshot();

 private:
  struct Waiter {
    Ticket ticket;
    int64_t entered;
  };
  struct Call {
    int64_t at;
    bool background;
  };

  void prune(int64_t now);
  int64_t background_limit() const;
  int64_t background_used() const;
  // Until when nothing may start (a 429 pause, or Cloudflare's remaining count spent); 0 if not blocked.
  int64_t blocked_until(int64_t now) const;
  // When a call of `priority` with `ahead` calls queued before it could start (ms, >= now).
  int64_t estimate(CallPriority priority, size_t ahead, int64_t now) const;
  [[noreturn]] void refuse(int64_t wait_ms);
  Ticket enter_locked(CallPriority priority, int64_t now);
  Turn try_start_locked(Ticket ticket, int64_t now);
  bool remove_locked(Ticket ticket);

  const BudgetOptions options_;
  const Clock now_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t limit_;                  // per replica, after any Ratelimit-Policy
  std::deque<Call> log_;           // calls started in the last window, oldest first
  std::deque<Waiter> clients_, background_;
  Ticket next_ticket_ = 1;
  int64_t pause_until_ = 0;
  int64_t upstream_remaining_ = -1;  // -1: Cloudflare said nothing (or its window ended)
  int64_t upstream_reset_at_ = 0;
  uint64_t started_ = 0, waited_ = 0, refused_ = 0, throttled_ = 0;
};

// The budget's gauges and counters for /metrics (era_cf_budget_*), from one snapshot.
void write_budget_metrics(CallBudget& budget, obs::Exposition& out);

}  // namespace era::cf
