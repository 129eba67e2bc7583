#include "http/worker_pool.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <thread>

namespace era::http {

WorkerPool::Lock::Lock() {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(&m_, &attr);
  pthread_mutexattr_destroy(&attr);
}
WorkerPool::Lock::~Lock() { pthread_mutex_destroy(&m_); }
void WorkerPool::Lock::lock() { pthread_mutex_lock(&m_); }
void WorkerPool::Lock::unlock() { pthread_mutex_unlock(&m_); }

// A sleeping worker waits on its own futex word, so a wake-up reaches exactly that worker with one
// system call on each side and no second lock to take.
struct WorkerPool::Worker {
  std::atomic<uint32_t> woken{0};
  std::thread thread;

  void wake() {
    woken.store(1, std::memory_order_release);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&woken), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
  void sleep() {
    while (woken.exchange(0, std::memory_order_acquire) == 0)
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(&woken), FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
  }
};

WorkerPool::WorkerPool(size_t workers, size_t queue) : queue_bound_(queue), idle_(workers) {
  workers_.reserve(workers);
  sleeping_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) workers_.push_back(std::make_unique<Worker>());
  for (auto& w : workers_) w->thread = std::thread([this, self = w.get()] { run(*self); });
}

WorkerPool::~WorkerPool() {
  std::vector<Worker*> wake;
  {
    std::lock_guard<Lock> lock(mu_);
    stopping_ = true;
    wake.swap(sleeping_);
    waking_ += wake.size();
  }
  for (Worker* w : wake) w->wake();
  for (auto& w : workers_) w->thread.join();
}

WorkerPool::Worker* WorkerPool::to_wake() {
  if (waking_ > 0 || sleeping_.empty()) return nullptr;
  Worker* w = sleeping_.back();
  sleeping_.pop_back();
  ++waking_;
  return w;
}

bool WorkerPool::try_submit(std::function<void()>& task) {
  Worker* w;
  {
    std::lock_guard<Lock> lock(mu_);
    // Idle workers take a task each at once; beyond them, up to queue_bound_ wait.
    if (stopping_ || tasks_.size() >= idle_ + queue_bound_) return false;
    tasks_.push_back(std::move(task));
    w = to_wake();
  }
  if (w) w->wake();
  return true;
}

void WorkerPool::submit(std::function<void()> task) {
  Worker* w;
  {
    std::lock_guard<Lock> lock(mu_);
    tasks_.push_back(std::move(task));
    w = to_wake();
  }
  if (w) w->wake();
}

size_t WorkerPool::queued() const {
  std::lock_guard<Lock> lock(mu_);
  return tasks_.size();
}

void WorkerPool::run(Worker& self) {
  std::unique_lock<Lock> lock(mu_);
  for (;;) {
    if (!tasks_.empty()) {
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      --idle_;
      // More waiting: wake the next worker (unless one is on its way already) so a burst fans out.
      Worker* next = tasks_.empty() ? nullptr : to_wake();
      lock.unlock();
      if (next) next->wake();
      task();
      task = nullptr;  // destroyed outside the lock
      lock.lock();
      ++idle_;
      continue;
    }
    if (stopping_) return;
    sleeping_.push_back(&self);
    lock.unlock();
    self.sleep();
    lock.lock();
    --waking_;
  }
}

}  // namespace era::http
