// Coalescer: group commit for upstream calls. Callers submit one operation each and block; whoever
// finds no call under way becomes the leader and sends at once what is queued (so a lone operation
// waits for nothing), while operations arriving during that call queue up and go together in the next
// one. An operation returns only once the call carrying it has ended, with that call's outcome for it.
//
// The leader gives up leadership as soon as its own operation is done and another waiting caller takes
// over, so no caller works for others longer than its own operation takes. One call (round) is under
// way at a time: rounds are ordered, which keeps writes to one key in order.
//
// What a round carries is the owner's choice (Policy::take): it may leave operations queued for a later
// round (size limits, a key that must not be written again yet) and say when to look again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <vector>

namespace era::cf {

// Base of what a caller submits; the owner's operation type derives from it.
struct CoalescedOp {
  bool done = false;
  std::exception_ptr error;  // set when the call carrying it failed (for this operation)
};

template <class Op>
class Coalescer {
 public:
  using Clock = std::chrono::steady_clock;
  struct Policy {
    virtual ~Policy() = default;
    // Under the queue's lock: moves the operations of the next round out of `queue` (in order) into
    // `round`. Leaves in `queue` what must wait; sets `retry_at` if something waits for a time, not a
    // call. `round` empty means nothing can go now.
    virtual void take(std::deque<Op*>& queue, std::vector<Op*>& round, std::optional<Clock::time_point>& retry_at) = 0;
    // Without the lock: performs the round and sets each operation's `error` if it failed. Throwing
    // fails every operation of the round with that exception.
    virtual void send(std::vector<Op*>& round) = 0;
  };

  explicit Coalescer(Policy& policy) : policy_(policy) {}

  // Blocks until `op` is done; rethrows its error.
  void submit(Op& op) {
    std::unique_lock<std::mutex> lock(mu_);
    queue_.push_back(&op);
    cv_.notify_all();  // a leader waiting for a held operation may be able to send this one now
    while (!op.done) {
      if (leading_) {
        cv_.wait(lock);
        continue;
      }
      leading_ = true;
      lead(lock, op);
      leading_ = false;
      cv_.notify_all();  // a follower takes over what is still queued
    }
    if (op.error) std::rethrow_exception(op.error);
  }

  // Blocks until at least `n` operations wait in the queue (for tests that build a round on purpose).
  void wait_queued(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return queue_.size() >= n; });
  }

 private:
  // Rounds until `mine` is done (its round may have been led by an earlier leader).
  void lead(std::unique_lock<std::mutex>& lock, Op& mine) {
    while (!mine.done) {
      std::vector<Op*> round;
      std::optional<Clock::time_point> retry_at;
      policy_.take(queue_, round, retry_at);
      if (round.empty()) {
        // Only held operations, ours among them: wait for their time or for a newcomer.
        if (retry_at) cv_.wait_until(lock, *retry_at);
        else cv_.wait(lock);
        continue;
      }
      lock.unlock();
      try {
        policy_.send(round);
      } catch (...) {
        const std::exception_ptr e = std::current_exception();
        for (Op* op : round)
          if (!op->error) op->error = e;
      }
      lock.lock();
      for (Op* op : round) op->done = true;
      cv_.notify_all();
    }
  }

  Policy& policy_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Op*> queue_;
  bool leading_ = false;
};

}  // namespace era::cf
