// ferry::Lock and ferry::RLock — locks shared between processes.
//
// Python's multiprocessing.Lock and RLock, used like std::mutex and
// std::recursive_mutex: lock, try_lock, try_lock_for/until (Python's
// acquire(timeout=...)), unlock; std::lock_guard, std::unique_lock and
// std::scoped_lock work. Make one before starting the processes that use it
// (they inherit it), or give it a name in /dev/shm for unrelated processes:
//
//   ferry::Lock lock;
//   ferry::Process child([&] { std::lock_guard guard(lock); ... });
//
//   auto lock = ferry::Lock::create("jobs-lock");   // in one process
//   auto lock = ferry::Lock::attach("jobs-lock");   // in any other
//
// Beyond Python: a process that dies holding a lock does not deadlock the
// others. The next thread to lock it gets it, made consistent, with an
// OwnerDiedError (below) that tells it what it protects may be half-changed.
//
// A lock belongs to the thread that locked it: only that thread unlocks it
// (ferry::Error otherwise), and a Lock locked twice by one thread throws
// instead of deadlocking. For a lock that one process takes and another
// gives back, as Python's Lock allows, use a BoundedSemaphore(1).
//
// A waiting thread tries again a hundred times (a few microseconds at most)
// before it sleeps in the kernel, so a lock held briefly changes hands
// without system calls.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ferry/detail/shared_region.hpp"
#include "ferry/detail/timeouts.hpp"
#include "ferry/error.hpp"

namespace ferry {

class Condition;
template <class T>
class Value;
template <class T>
class Array;

namespace detail {
// A lock held on behalf of an OwnerDiedError, released with its last copy.
struct HeldLock {
  std::function<void()> release;
  ~HeldLock();
};
}  // namespace detail

// Thrown when a process died holding the lock this thread now holds. The
// lock is consistent again. Thrown by lock(), try_lock() and try_lock_for(),
// it holds the lock while it lives: the handler repairs what the dead
// process left half-done, and the lock is released when the exception is
// destroyed (at the end of the catch block), or at once by release(), or
// kept by keep() for the caller to unlock:
//
//   try {
//     std::lock_guard guard(lock);
//     ...
//   } catch (const ferry::OwnerDiedError& died) {
//     repair();  // the lock is held here
//   }            // and released here
//
// Thrown by Condition::wait (re-acquiring), it holds nothing: the caller
// holds the lock as before the wait. Handle it on the thread that caught it.
class OwnerDiedError : public Error {
 public:
  OwnerDiedError(const std::string& message, std::shared_ptr<detail::HeldLock> held)
      : Error(message), held_(std::move(held)) {}
  // Releases the lock now.
  void release() const;
  // The caller takes the lock over and will unlock() it itself.
  void keep() const;

 private:
  std::shared_ptr<detail::HeldLock> held_;
};

class Lock : public detail::SharedHandle {
 public:
  // Shared with the processes started after it is made.
  Lock();
  // A new lock named `name` in /dev/shm (ferry::Error if the name exists).
  // Its creator's handle removes the name when it is destroyed.
  static Lock create(const std::string& name);
  // The lock another process created under `name`.
  static Lock attach(const std::string& name);

  Lock(Lock&&) noexcept = default;
  Lock& operator=(Lock&&) noexcept = default;

  void lock();
  bool try_lock() { return lock_until(detail::Clock::now()); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return lock_until(detail::deadline_in(timeout));
  }
  template <class C, class Duration>
  bool try_lock_until(const std::chrono::time_point<C, Duration>& when) {
    return lock_until(detail::deadline_at(when));
  }
  void unlock();

 private:
  friend class Condition;
  template <class T>
  friend class Value;
  template <class T>
  friend class Array;
  struct State;
  // A lock that lives inside another object's memory (a Value's, an Array's).
  static std::size_t state_size();
  static void initialize_state(std::byte* memory);
  Lock(detail::SharedRegion region, std::byte* state)
      : SharedHandle(std::move(region)), state_(reinterpret_cast<State*>(state)) {}
  static Lock open(detail::OpenMode mode, const std::string& name);
  bool lock_until(std::optional<detail::Clock::time_point> deadline);
  [[noreturn]] void owner_died();
  State* state_ = nullptr;
};

class RLock : public detail::SharedHandle {
 public:
  RLock();
  static RLock create(const std::string& name);
  static RLock attach(const std::string& name);

  RLock(RLock&&) noexcept = default;
  RLock& operator=(RLock&&) noexcept = default;

  // Each lock() by the thread holding it adds a level; as many unlock()s
  // release it.
  void lock() { lock_until(std::nullopt); }
  bool try_lock() { return lock_until(detail::Clock::now()); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return lock_until(detail::deadline_in(timeout));
  }
  template <class C, class Duration>
  bool try_lock_until(const std::chrono::time_point<C, Duration>& when) {
    return lock_until(detail::deadline_at(when));
  }
  void unlock();
  // Whether the calling thread holds it.
  bool held_by_this_thread() const;

 private:
  friend class Condition;
  struct State;
  RLock(detail::SharedRegion region, State* state)
      : SharedHandle(std::move(region)), state_(state) {}
  static std::size_t state_size();
  static void initialize_state(std::byte* memory);
  static RLock open(detail::OpenMode mode, const std::string& name);
  bool lock_until(std::optional<detail::Clock::time_point> deadline);
  // For Condition::wait: releases every level, and takes them all back.
  unsigned release_all();
  void restore(unsigned depth);
  State* state_ = nullptr;
};

}  // namespace ferry
