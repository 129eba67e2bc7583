// Per-session limits: a token bucket for requests and one for request-body bytes. Both are off by
// default (rate 0). The admin is never limited.
//
// The byte bucket may go into debt: a request is admitted while the bucket is not negative and its
// body is charged once read (its size is not known before for a chunked body). A session in debt is
// refused with 429 and a Retry-After that says when the debt is paid off — so one large upload is
// possible, but the average rate holds.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace era::auth {

struct RateLimits {
  double requests_per_sec = 0;  // 0: no request limit
  double request_burst = 0;
  double bytes_per_sec = 0;     // 0: no byte limit
  double byte_burst = 0;
};

class RateLimiter {
 public:
  // `now` gives seconds (monotonic; tests move it).
  RateLimiter(RateLimits limits, std::function<double()> now);

  bool enabled() const { return limits_.requests_per_sec > 0 || limits_.bytes_per_sec > 0; }
  bool limits_bytes() const { return limits_.bytes_per_sec > 0; }

  // Takes one request from the session's bucket. Returns 0 if admitted, else the seconds to wait
  // (at least 1) before the session may try again.
  int64_t admit(const std::string& session_id);
  // Charges `bytes` written by the session.
  void charge_bytes(const std::string& session_id, uint64_t bytes);
  // Drops sessions whose buckets are full again (so the map does not grow with old sessions).
  void forget_idle();

 private:
  struct Buckets {
    double requests;
    double bytes;
    double at;  // when they were last refilled
  };
  void refill(Buckets& b, double now) const;

  RateLimits limits_;
  std::function<double()> now_;
  std::mutex mu_;
  std::unordered_map<std::string, Buckets> sessions_;
};

}  // namespace era::auth
