// KeyLocks: writes to one key in order, other keys never wait, entries do not pile up.
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "util/key_locks.h"

using era::KeyLocks;

TEST_CASE("key locks: one holder per key; the sequence of a key's holders never overlaps") {
  KeyLocks locks;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto g = locks.lock("kv\nns\nkey");
        if (inside.fetch_add(1) != 0) ++overlaps;
        std::this_thread::yield();
        inside.fetch_sub(1);
        ++done;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(overlaps == 0);
  CHECK(done == 16000);
  CHECK(locks.size() == 0);  // no entry outlives its last user
}

TEST_CASE("key locks: another key does not wait for a held one") {
  KeyLocks locks;
  auto held = locks.lock("a");
  std::mutex mu;
  std::condition_variable cv;
  bool other_done = false;
  std::thread t([&] {
    auto g = locks.lock("b");  // would block forever if keys shared a lock
    std::lock_guard<std::mutex> l(mu);
    other_done = true;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return other_done; });
  }
  t.join();
  CHECK(locks.size() == 1);
}

TEST_CASE("key locks: a waiter gets the key when the holder lets go, and the entry goes after both") {
  KeyLocks locks;
  std::optional<KeyLocks::Guard> first(locks.lock("k"));
  std::atomic<bool> got{false};
  std::thread t([&] {
    auto g = locks.lock("k");
    got = true;
  });
  CHECK(locks.size() == 1);
  first.reset();
  t.join();
  CHECK(got);
  CHECK(locks.size() == 0);
}
