// ferry::Barrier — a meeting point for a fixed number of processes.
//
// Python's multiprocessing.Barrier: each of `parties` processes (or threads)
// calls wait(); the last to arrive runs the optional action, then all of
// them go on together. wait() returns an index, 0 to parties - 1, different
// for each (the arrival order; the last one gets parties - 1). The barrier
// is then ready for the next round.
//
//   ferry::Barrier start(4);
//   for (int i = 0; i < 3; ++i) workers.emplace_back([&] { load(); start.wait(); run(); });
//   ...
//   start.wait();  // the fourth party
//
// A barrier breaks — every waiter and every later wait() throws
// BrokenBarrierError — when a wait times out, when abort() is called, when
// the action throws (its caller gets the action's exception), or when a
// process dies inside the barrier's own bookkeeping. reset() mends it
// (waiters at that moment get BrokenBarrierError). A party that dies while
// waiting is not noticed: give wait() a timeout when that can happen.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "ferry/detail/shared_region.hpp"
#include "ferry/detail/timeouts.hpp"
#include "ferry/error.hpp"

namespace ferry {

class BrokenBarrierError : public Error {
 public:
  using Error::Error;
};

class Barrier : public detail::SharedHandle {
 public:
  // `action` runs in the process of the last party to arrive; `timeout` is
  // the default of wait() (none: wait forever).
  explicit Barrier(unsigned parties, std::function<void()> action = {},
                   std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  static Barrier create(const std::string& name, unsigned parties,
                        std::function<void()> action = {},
                        std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // The number of parties is the creator's.
  static Barrier attach(const std::string& name, std::function<void()> action = {},
                        std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  Barrier(Barrier&&) noexcept = default;
  Barrier& operator=(Barrier&&) noexcept = default;

  // Waits for the other parties; returns this party's index.
  unsigned wait();
  template <class Rep, class Period>
  unsigned wait(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until(detail::deadline_in(timeout));
  }

  void reset();
  void abort();
  bool broken() const;
  unsigned parties() const;
  unsigned waiting() const;  // Python's n_waiting

 private:
  struct State;
  Barrier(detail::OpenMode mode, const std::string& name, unsigned parties,
          std::function<void()> action, std::optional<std::chrono::milliseconds> timeout);
  unsigned wait_until(std::optional<detail::Clock::time_point> deadline);
  State* state_ = nullptr;
  std::function<void()> action_;
  std::optional<std::chrono::milliseconds> timeout_;
};

}  // namespace ferry
