#include "ferry/barrier.hpp"

#include <fmt/format.h>

#include <atomic>
#include <new>

#include "shm/futex.hpp"
#include "shm/robust_mutex.hpp"

namespace ferry {

// The futex word holds the round (the generation) above its lowest bit,
// which says the barrier is broken. Waiters sleep on the word they arrived
// with: the end of the round (released or reset) and a break both change
// it, so none of them can be missed. How a round ended is kept in a ring
// of the last 64 rounds, for waiters that wake after the next began (a
// waiter cannot fall 64 rounds behind: every released round needs it).
struct Barrier::State {
  detail::RobustMutex mutex;  // over count, outcomes and changes of the word
  std::uint32_t parties;
  std::uint32_t count;  // arrived in this round
  std::atomic<std::uint32_t> word;
  std::uint8_t outcomes[64];
};

namespace {
constexpr std::uint32_t kBroken = 1;
enum Outcome : std::uint8_t { kReleased = 1, kReset = 2 };

// Holds a barrier's mutex for a scope. A process that died holding it may
// have left the count half-updated: the barrier breaks (reset() mends it).
template <class State>
class Guard {
 public:
  explicit Guard(State& state) : state_(state) {
    if (state_.mutex.lock(std::nullopt) == detail::RobustMutex::Outcome::owner_died) breaks();
  }
  ~Guard() { state_.mutex.unlock(); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  void breaks() {
    state_.word.fetch_or(kBroken, std::memory_order_release);
    detail::futex_wake(state_.word);
  }

 private:
  State& state_;
};
}  // namespace

Barrier::Barrier(detail::OpenMode mode, const std::string& name, unsigned parties,
                 std::function<void()> action, std::optional<std::chrono::milliseconds> timeout)
    : action_(std::move(action)), timeout_(timeout) {
  if (mode != detail::OpenMode::attach && parties == 0)
    throw Error("a barrier needs at least one party");
  auto object = detail::open_object(mode, name,
                                    {.kind = detail::SharedKind::barrier,
                                     .payload_size = sizeof(State),
                                     .payload_align = alignof(State)},
                                    [&](const detail::SharedObject& fresh) {
                                      auto* state = new (fresh.payload) State;
                                      state->mutex.initialize();
                                      state->parties = parties;
                                      state->count = 0;
                                      state->word.store(0);
                                    });
  region_ = std::move(object.region);
  state_ = reinterpret_cast<State*>(object.payload);
}

Barrier::Barrier(unsigned parties, std::function<void()> action,
                 std::optional<std::chrono::milliseconds> timeout)
    : Barrier(detail::OpenMode::anonymous, {}, parties, std::move(action), timeout) {}
Barrier Barrier::create(const std::string& name, unsigned parties, std::function<void()> action,
                        std::optional<std::chrono::milliseconds> timeout) {
  return Barrier(detail::OpenMode::create, name, parties, std::move(action), timeout);
}
Barrier Barrier::attach(const std::string& name, std::function<void()> action,
                        std::optional<std::chrono::milliseconds> timeout) {
  return Barrier(detail::OpenMode::attach, name, 0, std::move(action), timeout);
}

unsigned Barrier::wait() {
  return wait_until(timeout_ ? detail::deadline_in(*timeout_) : std::nullopt);
}

unsigned Barrier::wait_until(std::optional<detail::Clock::time_point> deadline) {
  std::uint32_t arrived_with = 0;
  unsigned index = 0;
  {
    Guard guard(*state_);
    arrived_with = state_->word.load(std::memory_order_relaxed);
    if (arrived_with & kBroken) throw BrokenBarrierError("the barrier is broken");
    index = state_->count++;
    if (state_->count == state_->parties) {
      if (action_) {
        try {
          action_();
        } catch (...) {
          guard.breaks();
          throw;
        }
      }
      std::uint32_t round = arrived_with >> 1;
      state_->outcomes[round % 64] = kReleased;
      state_->count = 0;
      state_->word.store((round + 1) << 1, std::memory_order_release);
      detail::futex_wake(state_->word);
      return index;
    }
  }
  std::uint32_t now = arrived_with;
  bool timed_out = false;
  while (now == arrived_with && !timed_out) {
    timed_out = !detail::futex_wait(state_->word, arrived_with, deadline);
    now = state_->word.load(std::memory_order_acquire);
  }
  if (now == arrived_with) {
    // Timed out, unless the round ends as the barrier is broken.
    Guard guard(*state_);
    now = state_->word.load(std::memory_order_relaxed);
    if (now == arrived_with) {
      guard.breaks();
      throw BrokenBarrierError("a wait on the barrier timed out: the barrier is broken");
    }
  }
  std::uint32_t round = arrived_with >> 1;
  if ((now >> 1) == round) throw BrokenBarrierError("the barrier was broken while waiting");
  if (state_->outcomes[round % 64] == kReset)
    throw BrokenBarrierError("the barrier was reset while waiting");
  return index;
}

void Barrier::reset() {
  Guard guard(*state_);
  std::uint32_t round = state_->word.load(std::memory_order_relaxed) >> 1;
  state_->outcomes[round % 64] = kReset;
  state_->count = 0;
  state_->word.store((round + 1) << 1, std::memory_order_release);
  detail::futex_wake(state_->word);
}

void Barrier::abort() {
  Guard guard(*state_);
  guard.breaks();
}

bool Barrier::broken() const { return state_->word.load(std::memory_order_acquire) & kBroken; }

unsigned Barrier::parties() const { return state_->parties; }

unsigned Barrier::waiting() const {
  Guard guard(*state_);
  return broken() ? 0 : state_->count;
}

}  // namespace ferry
