// WorkerPool: the threads that run handlers (which block: SQLite, libcurl, the runner), apart from
// the server's I/O threads, with a bounded queue. try_submit() never waits: when every worker is
// busy and `queue` tasks already wait, it refuses, and the server answers 503 at once.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace era::http {

class WorkerPool {
 public:
  WorkerPool(size_t workers, size_t queue);
  ~WorkerPool();  // runs what is queued, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; false (and `task` untouched) when every worker is busy and the queue is full.
  bool try_submit(std::function<void()>& task);
  // Queues `task` whatever the bound: the continuation of a request already admitted (a response
  // that goes on once a slow reader made room) is never refused halfway.
  void submit(std::function<void()> task);
  // Tasks waiting for a worker (not counting running ones).
  size_t queued() const;

 private:
  void run();

  const size_t queue_bound_;
  // Workers not running a task (counted from the start, so a task submitted before a thread reaches
  // its wait is not refused).
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  size_t idle_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace era::http
