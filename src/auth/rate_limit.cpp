#include "auth/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace era::auth {

RateLimiter::RateLimiter(RateLimits limits, std::function<double()> now) : limits_(limits), now_(std::move(now)) {
  if (limits_.request_burst <= 0) limits_.request_burst = std::max(1.0, limits_.requests_per_sec);
  if (limits_.byte_burst <= 0) limits_.byte_burst = std::max(1.0, limits_.bytes_per_sec);
}

void RateLimiter::refill(Buckets& b, double now) const {
  const double dt = std::max(0.0, now - b.at);
  b.at = now;
  if (limits_.requests_per_sec > 0)
    b.requests = std::min(limits_.request_burst, b.requests + dt * limits_.requests_per_sec);
  if (limits_.bytes_per_sec > 0) b.bytes = std::min(limits_.byte_burst, b.bytes + dt * limits_.bytes_per_sec);
}

int64_t RateLimiter::admit(const std::string& id) {
  if (!enabled()) return 0;
  const double now = now_();
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = sessions_.try_emplace(id, Buckets{limits_.request_burst, limits_.byte_burst, now});
  Buckets& b = it->second;
  if (!fresh) refill(b, now);
  double wait = 0;
  if (limits_.bytes_per_sec > 0 && b.bytes < 0) wait = -b.bytes / limits_.bytes_per_sec;
  if (limits_.requests_per_sec > 0 && b.requests < 1)
    wait = std::max(wait, (1 - b.requests) / limits_.requests_per_sec);
  if (wait > 0) return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait)));
  if (limits_.requests_per_sec > 0) b.requests -= 1;
  return 0;
}

void RateLimiter::charge_bytes(const std::string& id, uint64_t bytes) {
  if (limits_.bytes_per_sec <= 0 || bytes == 0) return;
  const double now = now_();
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = sessions_.try_emplace(id, Buckets{limits_.request_burst, limits_.byte_burst, now});
  if (!fresh) refill(it->second, now);
  it->second.bytes -= static_cast<double>(bytes);
}

void RateLimiter::forget_idle() {
  const double now = now_();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    refill(it->second, now);
    const bool full = (limits_.requests_per_sec <= 0 || it->second.requests >= limits_.request_burst) &&
                      (limits_.bytes_per_sec <= 0 || it->second.bytes >= limits_.byte_burst);
    it = full ? sessions_.erase(it) : std::next(it);
  }
}

}  // namespace era::auth
