// Whose upstream call this is: a client's request waiting for its answer, or background work nobody
// waits on (revocation refresh, session sweeps, reindex). A store's upstream transport asks
// current_call_priority() when it spends a scarce call, so background work never delays a client and
// stays within its small share (store/cloudflare/call_budget.h). The priority belongs to the thread:
// a background loop holds a BackgroundCalls guard around its work; everything else is a client's.
#pragma once

namespace era {

enum class CallPriority { client, background };

namespace detail {
inline thread_local CallPriority call_priority = CallPriority::client;
}

inline CallPriority current_call_priority() { return detail::call_priority; }

// While alive, the upstream calls this thread makes are background work.
class BackgroundCalls {
 public:
  BackgroundCalls() : saved_(detail::call_priority) { detail::call_priority = CallPriority::background; }
  ~BackgroundCalls() { detail::call_priority = saved_; }
  BackgroundCalls(const BackgroundCalls&) = delete;
  BackgroundCalls& operator=(const BackgroundCalls&) = delete;

 private:
  CallPriority saved_;
};

}  // namespace era
