// WorkerPool: the threads that run handlers (which block: SQLite, libcurl, the runner), apart from
// the server's I/O threads, with a bounded queue. try_submit() never waits: when every worker is
// busy and `queue` tasks already wait, it refuses, and the server answers 503 at once.
//
// Wake-ups are what a short request costs most (a futex wake and a context switch each), so the pool
// wakes as few threads as it can: the most recently idle worker first (its stack and caches are
// warm), and only one at a time — a worker that was woken and has not taken a task yet counts as
// on its way, and a burst of tasks is fanned out by each worker waking the next as it takes one. A
// worker that finishes a task takes the next queued one without sleeping.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
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
  struct Worker;
  void run(Worker& self);
  // Under mu_: the worker to wake for a task just queued, if one should be (nullptr: none sleeps, or
  // one is already on its way and will wake the next if more is queued).
  Worker* to_wake();

  // A mutex that spins a little before it sleeps (glibc's adaptive kind): it is held for a few
  // instructions at a time, by the I/O threads and every worker, and going to the kernel when a
  // holder is merely running elsewhere cost more than the work it guards.
  class Lock {
   public:
    Lock();
    ~Lock();
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
    void lock();
    void unlock();

   private:
    pthread_mutex_t m_;
  };

  const size_t queue_bound_;
  mutable Lock mu_;
  std::deque<std::function<void()>> tasks_;
  // Workers not running a task (counted from the start, so a task submitted before a thread reaches
  // its wait is not refused).
  size_t idle_;
  std::vector<Worker*> sleeping_;  // a stack: the last to sleep is the first woken
  size_t waking_ = 0;              // woken, not yet back at the queue
  bool stopping_ = false;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace era::http
