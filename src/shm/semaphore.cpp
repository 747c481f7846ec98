#include "ferry/semaphore.hpp"

#include <fmt/format.h>
#include <immintrin.h>

#include <atomic>
#include <climits>
#include <new>

#include "ferry/error.hpp"
#include "shm/futex.hpp"

namespace ferry {

struct Semaphore::State {
  std::atomic<std::uint32_t> count;    // the futex word
  std::atomic<std::uint32_t> waiters;  // processes (threads) asleep or about to be
  std::uint32_t maximum;               // 0: unbounded
};

namespace {
constexpr unsigned kLargest = INT_MAX;
constexpr int kSpins = 50;  // tries before sleeping: a slot often comes back within a microsecond
}  // namespace

Semaphore::Semaphore(detail::OpenMode mode, const std::string& name, unsigned value, bool bounded) {
  if (value > kLargest)
    throw Error(fmt::format("a semaphore counts to at most {}, not {}", kLargest, value));
  auto kind = bounded ? detail::SharedKind::bounded_semaphore : detail::SharedKind::semaphore;
  auto object = detail::open_object(
      mode, name, {.kind = kind, .payload_size = sizeof(State), .payload_align = alignof(State)},
      [&](const detail::SharedObject& fresh) {
        auto* state = new (fresh.payload) State;
        state->count.store(value);
        state->waiters.store(0);
        state->maximum = bounded ? value : 0;
      });
  region_ = std::move(object.region);
  state_ = reinterpret_cast<State*>(object.payload);
}

Semaphore::Semaphore(unsigned value) : Semaphore(detail::OpenMode::anonymous, {}, value, false) {}
Semaphore Semaphore::create(const std::string& name, unsigned value) {
  return Semaphore(detail::OpenMode::create, name, value, false);
}
Semaphore Semaphore::attach(const std::string& name) {
  return Semaphore(detail::OpenMode::attach, name, 0, false);
}

BoundedSemaphore::BoundedSemaphore(unsigned value)
    : BoundedSemaphore(detail::OpenMode::anonymous, {}, value) {}
BoundedSemaphore BoundedSemaphore::create(const std::string& name, unsigned value) {
  return BoundedSemaphore(detail::OpenMode::create, name, value);
}
BoundedSemaphore BoundedSemaphore::attach(const std::string& name) {
  return BoundedSemaphore(detail::OpenMode::attach, name, 0);
}

namespace {
bool take_one(std::atomic<std::uint32_t>& count) {
  std::uint32_t seen = count.load(std::memory_order_relaxed);
  while (seen > 0)
    if (count.compare_exchange_weak(seen, seen - 1, std::memory_order_acquire)) return true;
  return false;
}
}  // namespace

bool Semaphore::acquire_until(std::optional<detail::Clock::time_point> deadline) {
  for (int spin = 0; spin < kSpins; ++spin) {
    if (take_one(state_->count)) return true;
    if (deadline && spin == 0 && *deadline <= detail::Clock::now()) return false;
    _mm_pause();
  }
  // Counted as a waiter before looking at the count again: a release either
  // sees this waiter and wakes it, or made the count that this look sees
  // (both sides are sequentially consistent). The futex compares the count
  // itself before sleeping, so a release in between is never missed.
  state_->waiters.fetch_add(1, std::memory_order_seq_cst);
  bool acquired = false;
  for (;;) {
    std::uint32_t seen = state_->count.load(std::memory_order_seq_cst);
    if (seen > 0) {
      if (state_->count.compare_exchange_weak(seen, seen - 1, std::memory_order_acquire)) {
        acquired = true;
        break;
      }
      continue;
    }
    if (!detail::futex_wait(state_->count, 0, deadline)) {
      acquired = take_one(state_->count);  // one last look, as the deadline passed
      break;
    }
  }
  state_->waiters.fetch_sub(1, std::memory_order_relaxed);
  return acquired;
}

void Semaphore::release(unsigned count) {
  if (count == 0) return;
  std::uint32_t seen = state_->count.load(std::memory_order_relaxed);
  std::uint32_t limit = state_->maximum != 0 ? state_->maximum : kLargest;
  for (;;) {
    if (count > limit || seen > limit - count)
      throw Error(
          state_->maximum != 0
              ? fmt::format("a BoundedSemaphore of {} was released too many times", state_->maximum)
              : fmt::format("a semaphore counts to at most {}", kLargest));
    if (state_->count.compare_exchange_weak(seen, seen + count, std::memory_order_seq_cst)) break;
  }
  if (state_->waiters.load(std::memory_order_seq_cst) > 0)
    detail::futex_wake(state_->count, static_cast<int>(count));
}

unsigned Semaphore::value() const { return state_->count.load(std::memory_order_relaxed); }

}  // namespace ferry
