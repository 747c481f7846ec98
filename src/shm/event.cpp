#include "ferry/event.hpp"

#include <atomic>
#include <new>

#include "shm/futex.hpp"

namespace ferry {

// The flag is the low bit of the futex word; the bits above count the
// set()s. A waiter that saw the flag down sleeps on that exact word, so any
// set() (which always changes the count) wakes it or stops it from sleeping,
// and it can tell a set() happened even if a clear() followed.
struct Event::State {
  std::atomic<std::uint32_t> word;
  std::atomic<std::uint32_t> waiters;
};

namespace {
constexpr std::uint32_t kFlag = 1;
}

Event::Event(detail::OpenMode mode, const std::string& name) {
  auto object = detail::open_object(mode, name,
                                    {.kind = detail::SharedKind::event,
                                     .payload_size = sizeof(State),
                                     .payload_align = alignof(State)},
                                    [](const detail::SharedObject& fresh) {
                                      auto* state = new (fresh.payload) State;
                                      state->word.store(0);
                                      state->waiters.store(0);
                                    });
  region_ = std::move(object.region);
  state_ = reinterpret_cast<State*>(object.payload);
}

Event::Event() : Event(detail::OpenMode::anonymous, {}) {}
Event Event::create(const std::string& name) { return Event(detail::OpenMode::create, name); }
Event Event::attach(const std::string& name) { return Event(detail::OpenMode::attach, name); }

void Event::set() {
  std::uint32_t seen = state_->word.load(std::memory_order_relaxed);
  do {
    if (seen & kFlag) return;  // set already: its waiters were woken by that set()
  } while (
      !state_->word.compare_exchange_weak(seen, (seen + 2) | kFlag, std::memory_order_seq_cst));
  if (state_->waiters.load(std::memory_order_seq_cst) > 0) detail::futex_wake(state_->word);
}

void Event::clear() { state_->word.fetch_and(~kFlag, std::memory_order_seq_cst); }

bool Event::is_set() const { return state_->word.load(std::memory_order_acquire) & kFlag; }

bool Event::wait_until(std::optional<detail::Clock::time_point> deadline) {
  std::uint32_t seen = state_->word.load(std::memory_order_acquire);
  if (seen & kFlag) return true;
  state_->waiters.fetch_add(1, std::memory_order_seq_cst);
  // Looked at again after counting this waiter (see Semaphore::acquire).
  std::uint32_t now = state_->word.load(std::memory_order_seq_cst);
  bool timed_out = false;
  while (now == seen && !timed_out) {
    timed_out = !detail::futex_wait(state_->word, seen, deadline);
    now = state_->word.load(std::memory_order_acquire);
  }
  state_->waiters.fetch_sub(1, std::memory_order_relaxed);
  // The word moved only by a set() (a clear() of a lowered flag changes
  // nothing): the flag was raised while this process waited.
  return now != seen;
}

}  // namespace ferry
