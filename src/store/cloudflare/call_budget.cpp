#include "store/cloudflare/call_budget.h"

#include <algorithm>
#include <chrono>

#include "obs/metrics.h"
#include "util/error.h"
#include "util/text.h"

namespace era::cf {
namespace {

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A non-negative decimal integer of at most 12 digits; nullopt otherwise.
std::optional<int64_t> small_int(std::string_view v) {
  if (v.empty() || v.size() > 12) return std::nullopt;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

// Splits on `sep` outside double quotes.
std::vector<std::string_view> split_unquoted(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  bool quoted = false;
  size_t from = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '"') quoted = !quoted;
    else if (s[i] == '\\' && quoted) ++i;
    else if (s[i] == sep && !quoted) {
      out.push_back(s.substr(from, i - from));
      from = i + 1;
    }
  }
  out.push_back(s.substr(from < s.size() ? from : s.size()));
  return out;
}

}  // namespace

std::vector<RateLimitItem> parse_ratelimit_header(std::string_view value) {
  std::vector<RateLimitItem> out;
  if (value.size() > 4096) return out;  // not what Cloudflare sends
  for (std::string_view raw : split_unquoted(value, ',')) {
    auto parts = split_unquoted(text::trim(raw), ';');
    std::string_view name = text::trim(parts[0]);
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
    if (name.empty()) continue;
    RateLimitItem item;
    item.name = std::string(name);
    bool ok = true;
    for (size_t i = 1; i < parts.size(); ++i) {
      std::string_view p = text::trim(parts[i]);
      const auto eq = p.find('=');
      if (eq == std::string_view::npos) continue;  // a boolean parameter: nothing we use
      const std::string_view k = text::trim(p.substr(0, eq));
      const auto n = small_int(text::trim(p.substr(eq + 1)));
      std::optional<int64_t>* slot = k == "r" ? &item.r : k == "t" ? &item.t : k == "q" ? &item.q : k == "w" ? &item.w : nullptr;
      if (!slot) continue;
      if (!n) {
        ok = false;  // a parameter we rely on, unreadable: ignore the whole item
        break;
      }
      *slot = n;
    }
    if (ok) out.push_back(std::move(item));
  }
  return out;
}

CallBudget::CallBudget(BudgetOptions options, Clock now)
    : options_(std::move(options)),
      now_(now ? std::move(now) : Clock(steady_ms)),
      limit_(std::max<int64_t>(1, options_.calls / std::max(1, options_.replicas))) {}

void CallBudget::prune(int64_t now) {
  while (!log_.empty() && log_.front().at <= now - options_.window_ms) log_.pop_front();
  if (upstream_remaining_ >= 0 && now >= upstream_reset_at_) upstream_remaining_ = -1;
}

int64_t CallBudget::background_limit() const {
  return std::max<int64_t>(1, limit_ * options_.background_percent / 100);
}

int64_t CallBudget::background_used() const {
  return std::count_if(log_.begin(), log_.end(), [](const Call& c) { return c.background; });
}

int64_t CallBudget::blocked_until(int64_t now) const {
  int64_t until = pause_until_ > now ? pause_until_ : 0;
  if (upstream_remaining_ == 0 && upstream_reset_at_ > now) until = std::max(until, upstream_reset_at_);
  return until;
}

int64_t CallBudget::estimate(CallPriority priority, size_t ahead, int64_t now) const {
  const int64_t w = options_.window_ms;
  int64_t t0 = std::max(now, blocked_until(now));
  // The calls still in the window at t0, oldest first: each frees a slot when it leaves the window.
  std::vector<int64_t> in;
  for (const Call& c : log_)
    if (c.at > t0 - w) in.push_back(c.at);
  const int64_t free = limit_ - int64_t(in.size());
  int64_t est;
  if (int64_t(ahead) < free) {
    est = t0;
  } else {
    const size_t idx = size_t(int64_t(ahead) - std::max<int64_t>(free, 0));
    if (idx < in.size()) est = in[idx] + w;
    else est = (in.empty() ? t0 : in.back()) + w * (1 + int64_t(idx - in.size()) / limit_);
  }
  if (priority == CallPriority::background && background_used() >= background_limit()) {
    for (const Call& c : log_)
      if (c.background) {
        est = std::max(est, c.at + w);
        break;
      }
  }
  // Cloudflare's own count: no more than it said remain before its reset.
  if (upstream_remaining_ >= 0 && now < upstream_reset_at_ && int64_t(ahead) >= upstream_remaining_)
    est = std::max(est, upstream_reset_at_);
  return std::max(est, now);
}

void CallBudget::refuse(int64_t wait_ms) {
  ++refused_;
  const int64_t s = std::max<int64_t>(1, (wait_ms + 999) / 1000);
  const bool paused = pause_until_ > now_();
  ApiError e(503, paused ? "upstream_rate_limited" : "call_budget_exhausted",
             paused ? "Cloudflare rate-limited this proxy's API token (429); its calls are paused: try again in " +
                          std::to_string(s) + " s (nothing was sent or changed)"
                    : "this proxy's Cloudflare API call budget (" + std::to_string(limit_) + " calls per " +
                          std::to_string(options_.window_ms / 1000) + " s) is spent; try again in " +
                          std::to_string(s) + " s (nothing was sent or changed)");
  e.retry_after_s = s;
  throw e;
}

CallBudget::Ticket CallBudget::enter_locked(CallPriority priority, int64_t now) {
  prune(now);
  const size_t ahead = priority == CallPriority::client ? clients_.size() : clients_.size() + background_.size();
  const int64_t est = estimate(priority, ahead, now);
  if (clients_.size() + background_.size() >= options_.max_queue) refuse(std::max<int64_t>(est - now, 1000));
  if (est - now > options_.max_wait_ms) refuse(est - now);
  const Ticket t = next_ticket_++;
  (priority == CallPriority::client ? clients_ : background_).push_back({t, now});
  return t;
}

bool CallBudget::remove_locked(Ticket ticket) {
  for (auto* q : {&clients_, &background_})
    for (auto it = q->begin(); it != q->end(); ++it)
      if (it->ticket == ticket) {
        q->erase(it);
        return true;
      }
  return false;
}

CallBudget::Turn CallBudget::try_start_locked(Ticket ticket, int64_t now) {
  prune(now);
  const bool is_client = !clients_.empty() && clients_.front().ticket == ticket;
  const bool is_background = !is_client && clients_.empty() && !background_.empty() && background_.front().ticket == ticket;
  const Waiter* self = nullptr;
  for (auto* q : {&clients_, &background_})
    for (const Waiter& w : *q)
      if (w.ticket == ticket) self = &w;
  if (!self) return {true, 0};  // not queued (left already): nothing to wait for
  const int64_t entered = self->entered;
  const int64_t deadline = entered + options_.max_wait_ms;

  if (!is_client && !is_background) {  // not its turn: the head goes first
    if (now >= deadline) {
      remove_locked(ticket);
      refuse(1000);
    }
    return {false, deadline - now};
  }
  const CallPriority p = is_client ? CallPriority::client : CallPriority::background;
  const int64_t at = estimate(p, 0, now);
  if (at <= now) {
    (is_client ? clients_ : background_).pop_front();
    log_.push_back({now, !is_client});
    if (upstream_remaining_ > 0) --upstream_remaining_;
    ++started_;
    if (now > entered) ++waited_;
    return {true, 0};
  }
  if (at > deadline) {
    remove_locked(ticket);
    refuse(at - now);
  }
  return {false, at - now};
}

CallBudget::Ticket CallBudget::enter(CallPriority priority) {
  std::lock_guard<std::mutex> lock(mu_);
  return enter_locked(priority, now_());
}

CallBudget::Turn CallBudget::try_start(Ticket ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  return try_start_locked(ticket, now_());
}

void CallBudget::leave(Ticket ticket) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    remove_locked(ticket);
  }
  cv_.notify_all();
}

void CallBudget::acquire(CallPriority priority) {
  if (!enabled()) return;
  std::unique_lock<std::mutex> lock(mu_);
  const Ticket t = enter_locked(priority, now_());
  for (;;) {
    Turn turn;
    try {
      turn = try_start_locked(t, now_());
    } catch (...) {
      lock.unlock();
      cv_.notify_all();  // the queue's head may have changed
      throw;
    }
    if (turn.started) {
      lock.unlock();
      cv_.notify_all();  // the next one in line may start too
      return;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(std::clamp<int64_t>(turn.wait_ms, 1, options_.max_wait_ms)));
  }
}

void CallBudget::observe(int status, const std::optional<std::string>& ratelimit,
                         const std::optional<std::string>& policy, std::optional<long> retry_after_ms) {
  if (!enabled()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = now_();
    const int replicas = std::max(1, options_.replicas);
    if (status == 429) {
      ++throttled_;
      pause_until_ = std::max(pause_until_, now + (retry_after_ms ? int64_t(*retry_after_ms) : options_.default_pause_ms));
    }
    if (ratelimit) {
      // The tightest item: the fewest calls left (its reset with it).
      std::optional<RateLimitItem> tight;
      for (auto& item : parse_ratelimit_header(*ratelimit))
        if (item.r && item.t && (!tight || *item.r < *tight->r)) tight = item;
      if (tight) {
        upstream_remaining_ = *tight->r / replicas;
        upstream_reset_at_ = now + *tight->t * 1000;
        if (*tight->t == 0) upstream_remaining_ = -1;
      }
    }
    if (policy) {
      for (auto& item : parse_ratelimit_header(*policy))
        if (item.q && item.w && *item.w * 1000 == options_.window_ms)
          limit_ = std::max<int64_t>(1, std::min(options_.calls, *item.q) / replicas);
    }
  }
  cv_.notify_all();
}

CallBudget::Snapshot CallBudget::snapshot() {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = now_();
  prune(now);
  Snapshot s;
  s.limit = limit_;
  s.window_ms = options_.window_ms;
  s.used = int64_t(log_.size());
  s.background_used = background_used();
  s.queued_client = int64_t(clients_.size());
  s.queued_background = int64_t(background_.size());
  s.paused_ms = pause_until_ > now ? pause_until_ - now : 0;
  if (upstream_remaining_ >= 0 && now < upstream_reset_at_) s.upstream_remaining = upstream_remaining_;
  s.started = started_;
  s.waited = waited_;
  s.refused = refused_;
  s.throttled = throttled_;
  return s;
}

void write_budget_metrics(CallBudget& budget, obs::Exposition& out) {
  if (!budget.enabled()) return;
  const CallBudget::Snapshot s = budget.snapshot();
  auto gauge = [&](const char* name, const char* help, int64_t v) {
    out.family(name, help, "gauge");
    out.sample(name, {}, v);
  };
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out.family(name, help, "counter");
    out.sample(name, {}, v);
  };
  gauge("era_cf_budget_limit", "Cloudflare REST calls this replica may start per window", s.limit);
  out.family("era_cf_budget_window_seconds", "the call budget's sliding window", "gauge");
  out.sample("era_cf_budget_window_seconds", {}, double(s.window_ms) / 1000.0);
  out.family("era_cf_budget_used", "Cloudflare REST calls started in the current window, by priority", "gauge");
  out.sample("era_cf_budget_used", {{"priority", "client"}}, s.used - s.background_used);
  out.sample("era_cf_budget_used", {{"priority", "background"}}, s.background_used);
  gauge("era_cf_budget_remaining", "calls left in the current window", std::max<int64_t>(0, s.limit - s.used));
  out.family("era_cf_budget_queued", "calls waiting for room in the budget, by priority", "gauge");
  out.sample("era_cf_budget_queued", {{"priority", "client"}}, s.queued_client);
  out.sample("era_cf_budget_queued", {{"priority", "background"}}, s.queued_background);
  out.family("era_cf_budget_paused_seconds", "left of the pause a 429 from Cloudflare imposed", "gauge");
  out.sample("era_cf_budget_paused_seconds", {}, double(s.paused_ms) / 1000.0);
  if (s.upstream_remaining)
    gauge("era_cf_budget_upstream_remaining", "this replica's share of what Cloudflare's Ratelimit header said remains",
          *s.upstream_remaining);
  counter("era_cf_budget_calls_total", "Cloudflare REST calls started through the budget", s.started);
  counter("era_cf_budget_waited_total", "calls that waited in the budget's queue before starting", s.waited);
  counter("era_cf_budget_refused_total", "calls refused with 503 because the budget had no room in time", s.refused);
  counter("era_cf_budget_throttled_total", "429 answers from Cloudflare (each paused the budget)", s.throttled);
}

}  // namespace era::cf
