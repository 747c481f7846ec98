// ferry::Event — a flag shared between processes that they can wait for.
//
// Python's multiprocessing.Event: set() raises the flag and wakes every
// waiter; clear() lowers it; wait() returns once it is raised. Make one
// before starting the processes that use it, or give it a name:
//
//   ferry::Event ready;
//   ferry::Process child([&] { ready.wait(); work(); });
//   child.start();
//   prepare();
//   ready.set();
//
// No wake-up is lost: a process waiting when set() is called returns true
// even if the flag is cleared again before it runs (each set() is counted),
// as Python promises. The flag lives in one word of shared memory: set()
// costs a system call only when someone sleeps.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "ferry/detail/shared_region.hpp"
#include "ferry/detail/timeouts.hpp"

namespace ferry {

class Event : public detail::SharedHandle {
 public:
  Event();
  static Event create(const std::string& name);
  static Event attach(const std::string& name);

  Event(Event&&) noexcept = default;
  Event& operator=(Event&&) noexcept = default;

  void set();
  void clear();
  bool is_set() const;

  // Waits until the flag is set.
  void wait() { wait_until(std::nullopt); }
  // Waits at most `timeout`; true when the flag was set (Python's return value).
  template <class Rep, class Period>
  bool wait(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until(detail::deadline_in(timeout));
  }
  template <class C, class Duration>
  bool wait_until(const std::chrono::time_point<C, Duration>& when) {
    return wait_until(detail::deadline_at(when));
  }

 private:
  struct State;
  explicit Event(detail::OpenMode mode, const std::string& name);
  bool wait_until(std::optional<detail::Clock::time_point> deadline);
  State* state_ = nullptr;
};

}  // namespace ferry
