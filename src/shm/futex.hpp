// Waiting on a 32-bit word of shared memory, across processes: Linux futexes
// of the shared kind (std::atomic::wait uses the private kind, which only
// wakes threads of one process).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>
#include <optional>

namespace ferry::detail {

using Deadline = std::optional<std::chrono::steady_clock::time_point>;

inline Deadline deadline_after(std::chrono::nanoseconds timeout) {
  return std::chrono::steady_clock::now() + std::max(timeout, std::chrono::nanoseconds(0));
}

// Sleeps while `word` holds `expected`, until a wake, a signal or the
// deadline (nullopt: none). Returns false only when the deadline passed.
// It may return without a wake: callers look at the word again.
inline bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       const Deadline& deadline) {
  timespec until{};
  if (deadline) {
    // steady_clock is CLOCK_MONOTONIC, which FUTEX_WAIT_BITSET takes as an
    // absolute time: no drift however often a wait is interrupted.
    auto since_epoch = deadline->time_since_epoch();
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    until.tv_sec = static_cast<time_t>(seconds.count());
    until.tv_nsec = static_cast<long>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count());
    if (std::chrono::steady_clock::now() >= *deadline) return false;
  }
  long result = ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_BITSET,
                          expected, deadline ? &until : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
  return !(result < 0 && errno == ETIMEDOUT);
}

// Wakes up to `count` processes or threads sleeping on `word`.
inline void futex_wake(std::atomic<std::uint32_t>& word, int count = INT_MAX) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count, nullptr, nullptr,
            0);
}

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "a futex word must be a plain 32-bit word");

}  // namespace ferry::detail
