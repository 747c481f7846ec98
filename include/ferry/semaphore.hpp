// ferry::Semaphore and ferry::BoundedSemaphore — counters shared between
// processes.
//
// Python's multiprocessing.Semaphore and BoundedSemaphore, with the names of
// std::counting_semaphore (acquire, try_acquire, try_acquire_for/until,
// release) and the lock interface too (lock, try_lock, try_lock_for,
// unlock), so that std::lock_guard takes a slot as Python's `with sem:` does.
// Make one before starting the processes that use it, or give it a name:
//
//   ferry::Semaphore slots(4);                         // 4 at a time
//   ferry::Process child([&] { std::lock_guard slot(slots); download(); });
//
//   auto slots = ferry::Semaphore::create("downloads", 4);  // in one process
//   auto slots = ferry::Semaphore::attach("downloads");     // in any other
//
// A semaphore is a count, not an owner: any process may release what another
// acquired, which is what makes it a signal as well as a limit. So when a
// process dies between acquire and release, its slot is not given back —
// nothing knows that the slot was its (the same in Python and POSIX). Where
// slots belong to processes and must come back when one dies, use one
// ferry::Lock per slot and try_lock them in turn: the kernel releases a dead
// process's locks (see ferry/lock.hpp).
//
// The count lives in one word of shared memory: acquire and release are one
// atomic instruction each unless a process must sleep or be woken.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "ferry/detail/shared_region.hpp"
#include "ferry/detail/timeouts.hpp"

namespace ferry {

class Semaphore : public detail::SharedHandle {
 public:
  // At most 2^31 - 1; ferry::Error beyond.
  explicit Semaphore(unsigned value = 1);
  static Semaphore create(const std::string& name, unsigned value = 1);
  static Semaphore attach(const std::string& name);

  Semaphore(Semaphore&&) noexcept = default;
  Semaphore& operator=(Semaphore&&) noexcept = default;

  // Waits until the count is above zero, and takes one.
  void acquire() { acquire_until(std::nullopt); }
  bool try_acquire() { return acquire_until(detail::Clock::now()); }
  template <class Rep, class Period>
  bool try_acquire_for(const std::chrono::duration<Rep, Period>& timeout) {
    return acquire_until(detail::deadline_in(timeout));
  }
  template <class C, class Duration>
  bool try_acquire_until(const std::chrono::time_point<C, Duration>& when) {
    return acquire_until(detail::deadline_at(when));
  }
  // Adds `count` (a BoundedSemaphore refuses to go past its initial value,
  // with ferry::Error) and wakes as many waiters.
  void release(unsigned count = 1);
  // The count now (Python's get_value()); it may change at once.
  unsigned value() const;

  void lock() { acquire(); }
  bool try_lock() { return try_acquire(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_acquire_for(timeout);
  }
  template <class C, class Duration>
  bool try_lock_until(const std::chrono::time_point<C, Duration>& when) {
    return try_acquire_until(when);
  }
  void unlock() { release(); }

 protected:
  struct State;
  Semaphore(detail::OpenMode mode, const std::string& name, unsigned value, bool bounded);

 private:
  bool acquire_until(std::optional<detail::Clock::time_point> deadline);
  State* state_ = nullptr;
};

// A Semaphore whose count never goes above its initial value: one release
// too many is a bug, reported with ferry::Error instead of letting one more
// process in.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(unsigned value = 1);
  static BoundedSemaphore create(const std::string& name, unsigned value = 1);
  static BoundedSemaphore attach(const std::string& name);

 private:
  BoundedSemaphore(detail::OpenMode mode, const std::string& name, unsigned value)
      : Semaphore(mode, name, value, true) {}
};

}  // namespace ferry
