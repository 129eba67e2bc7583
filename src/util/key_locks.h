// KeyLocks: one mutex per key that is in use, so writes to one key happen one after another while
// writes to other keys do not wait (no false sharing as with striped locks). An entry lives while a
// holder or waiter needs it and is dropped after.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

namespace era {

class KeyLocks {
 public:
  class Guard {
   public:
    Guard(KeyLocks& owner, std::string key) : owner_(&owner), key_(std::move(key)) { owner_->acquire(key_); }
    Guard(Guard&& o) noexcept : owner_(o.owner_), key_(std::move(o.key_)) { o.owner_ = nullptr; }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    Guard& operator=(Guard&&) = delete;
    ~Guard() {
      if (owner_) owner_->release(key_);
    }

   private:
    KeyLocks* owner_;
    std::string key_;
  };

  // Blocks until no other Guard holds `key`.
  Guard lock(std::string key) { return Guard(*this, std::move(key)); }

  // Keys held or waited for (for tests: entries must not pile up).
  size_t size() {
    std::lock_guard<std::mutex> l(mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    bool held = false;
    int users = 0;  // the holder and the waiters
  };

  void acquire(const std::string& key) {
    std::unique_lock<std::mutex> l(mu_);
    Entry& e = entries_[key];
    ++e.users;
    cv_.wait(l, [&] { return !e.held; });
    e.held = true;
  }
  void release(const std::string& key) {
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = entries_.find(key);
      it->second.held = false;
      if (--it->second.users == 0) entries_.erase(it);
    }
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;  // std::map: references stay valid while other keys come and go
};

}  // namespace era
