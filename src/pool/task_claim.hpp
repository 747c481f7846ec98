// TaskClaim — who runs a task sent ahead to a worker process.
//
// The pool sends a worker a few tasks ahead of time, so that it never waits
// for the parent between tiny tasks. A task sent ahead must not be stuck
// behind a long one while another worker is free, so the pool may take back
// the tasks a worker has not started. Both sides decide through one atomic
// word in memory shared by the two processes: the worker claims each task as
// it starts it, the pool revokes the ones not started; whichever comes first
// wins, and a task is never lost nor run twice.
//
// Tasks are numbered per worker, 1, 2, 3, ... in the order sent. The word
// holds the number of the last task started (low half) and the number up to
// which tasks may not start (high half): tasks up to it were started or
// revoked. Both stay within the tasks in flight to the worker (starting a
// task moves both to it), so comparisons modulo 2^32 are exact even as the
// numbers wrap around, while fewer than 2^31 tasks are in flight to one
// worker (the pool sends at most a few dozen).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ferry::detail {

// One cache line each: workers' claims do not share one.
class alignas(64) TaskClaim {
 public:
  // Worker side: claims task `sequence` (the next one it read) if the pool
  // did not revoke it, noting when it started. False: skip it.
  bool try_start(std::uint32_t sequence, std::chrono::steady_clock::time_point now) {
    // Written before the claim is published, so a pool that sees the claim
    // sees this start time (or a later one: never an earlier).
    started_at_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    std::uint64_t word = word_.load(std::memory_order_acquire);
    for (;;) {
      if (!later(sequence, high(word))) return false;  // revoked
      std::uint64_t claimed = std::uint64_t{sequence} << 32 | sequence;
      if (word_.compare_exchange_weak(word, claimed, std::memory_order_acq_rel)) return true;
    }
  }

  // Pool side: revokes every task up to `last_sent` that has not started.
  // Returns the last task started; the ones after it, up to `last_sent`,
  // will never start.
  std::uint32_t revoke_unstarted(std::uint32_t last_sent) {
    std::uint64_t word = word_.load(std::memory_order_acquire);
    for (;;) {
      std::uint32_t revoked_through = later(last_sent, high(word)) ? last_sent : high(word);
      std::uint64_t revoked = std::uint64_t{revoked_through} << 32 | low(word);
      if (word_.compare_exchange_weak(word, revoked, std::memory_order_acq_rel)) return low(word);
    }
  }

  // The last task the worker started (0: none yet).
  std::uint32_t started() const { return low(word_.load(std::memory_order_acquire)); }

  // When it started; call after started(). Never earlier than the truth.
  std::chrono::steady_clock::time_point started_at() const {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(started_at_.load(std::memory_order_relaxed)));
  }

  // For a new worker: nothing started, nothing revoked.
  void reset() {
    word_.store(0, std::memory_order_relaxed);
    started_at_.store(0, std::memory_order_relaxed);
  }

  // Whether task `a` was sent after task `b` (modulo 2^32).
  static bool later(std::uint32_t a, std::uint32_t b) {
    return static_cast<std::int32_t>(a - b) > 0;
  }

 private:
  static std::uint32_t low(std::uint64_t word) { return static_cast<std::uint32_t>(word); }
  static std::uint32_t high(std::uint64_t word) { return static_cast<std::uint32_t>(word >> 32); }

  std::atomic<std::uint64_t> word_{0};
  std::atomic<std::int64_t> started_at_{0};
};

// Shared memory between processes needs atomics that need no lock.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

}  // namespace ferry::detail
