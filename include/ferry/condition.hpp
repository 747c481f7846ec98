// ferry::Condition — a condition variable shared between processes.
//
// Python's multiprocessing.Condition: a lock (an RLock of its own by
// default, as in Python, or a Lock or RLock you pass and may share with
// other conditions) and a way to sleep until another process notifies.
// The Condition is itself a lock: std::unique_lock and std::lock_guard take
// its lock, as Python's `with cond:` does.
//
//   ferry::Condition changed;
//   ferry::Value<int> items(0);
//   // consumer
//   std::unique_lock guard(changed);
//   changed.wait([&] { return items.value() > 0; });   // Python's wait_for
//   // producer
//   std::lock_guard guard(changed);
//   ++items.value();
//   changed.notify();
//
// wait() releases the lock (every level of an RLock), sleeps, and takes it
// back before it returns. No notification is lost: a process that was
// waiting when notify() was called is woken. As with std::condition_variable
// (and unlike Python's), a wait may also return without a notification:
// wait with a predicate, or check what you wait for in a loop. notify() may
// be called with or without the lock held.
#pragma once

#include <chrono>
#include <concepts>
#include <optional>
#include <string>

#include "ferry/detail/shared_region.hpp"
#include "ferry/detail/timeouts.hpp"
#include "ferry/lock.hpp"

namespace ferry {

class Condition : public detail::SharedHandle {
 public:
  // With an RLock of its own, in the same shared memory.
  Condition();
  // With `lock`, which must outlive the Condition.
  explicit Condition(Lock& lock);
  explicit Condition(RLock& lock);
  static Condition create(const std::string& name);
  static Condition create(const std::string& name, Lock& lock);
  static Condition create(const std::string& name, RLock& lock);
  // Processes attaching must pass the same lock as the creator (attached
  // by its name), or none when the creator used none.
  static Condition attach(const std::string& name);
  static Condition attach(const std::string& name, Lock& lock);
  static Condition attach(const std::string& name, RLock& lock);

  Condition(Condition&&) noexcept = default;
  Condition& operator=(Condition&&) noexcept = default;

  // The lock interface: its lock's.
  void lock();
  bool try_lock();
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return external_lock_    ? external_lock_->try_lock_for(timeout)
           : external_rlock_ ? external_rlock_->try_lock_for(timeout)
                             : own_lock_.try_lock_for(timeout);
  }
  template <class C, class Duration>
  bool try_lock_until(const std::chrono::time_point<C, Duration>& when) {
    return try_lock_for(when - C::now());
  }
  void unlock();

  // Waits for a notification, with the lock held (ferry::Error otherwise).
  void wait() { wait_until(std::nullopt); }
  // false when `timeout` passed without a notification.
  template <class Rep, class Period>
  bool wait(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until(detail::deadline_in(timeout));
  }
  // Waits until `stop_waiting()` is true (Python's wait_for(predicate)).
  template <std::predicate Predicate>
  void wait(Predicate stop_waiting) {
    while (!stop_waiting()) wait();
  }
  // At most `timeout`; returns stop_waiting()'s last value.
  template <class Rep, class Period, std::predicate Predicate>
  bool wait(const std::chrono::duration<Rep, Period>& timeout, Predicate stop_waiting) {
    auto deadline = detail::deadline_in(timeout);
    while (!stop_waiting()) {
      if (deadline && detail::Clock::now() >= *deadline) return stop_waiting();
      wait_until(deadline);
    }
    return true;
  }

  // Wakes up to `count` waiting processes (threads); notify_all() every one.
  void notify(unsigned count = 1);
  void notify_all();

 private:
  struct State;
  Condition(detail::OpenMode mode, const std::string& name, Lock* lock, RLock* rlock);
  bool wait_until(std::optional<detail::Clock::time_point> deadline);
  State* state_ = nullptr;
  RLock own_lock_{detail::SharedRegion{}, nullptr};  // in this memory, used when no lock is given
  Lock* external_lock_ = nullptr;
  RLock* external_rlock_ = nullptr;
};

}  // namespace ferry
