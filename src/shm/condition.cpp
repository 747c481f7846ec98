#include "ferry/condition.hpp"

#include <fmt/format.h>

#include <atomic>
#include <climits>
#include <new>

#include "shm/futex.hpp"
#include "shm/lock_states.hpp"

namespace ferry {

// A waiter reads `sequence` while it holds the lock, then sleeps on that
// value; notify() changes it before waking. A notify() between the waiter
// releasing the lock and falling asleep has changed the word already, so
// the futex refuses to sleep: that is what makes a lost wake-up impossible.
struct Condition::State {
  std::atomic<std::uint32_t> sequence;
  std::atomic<std::uint32_t> waiters;
  std::uint32_t lock_kind;  // which lock the creator gave: attachers must agree
  RLock::State own_lock;
};

namespace {
enum LockKind : std::uint32_t { kOwnLock = 0, kLock = 1, kRLock = 2 };
const char* describe(std::uint32_t kind) {
  return kind == kOwnLock ? "its own lock" : kind == kLock ? "a Lock" : "an RLock";
}
}  // namespace

Condition::Condition(detail::OpenMode mode, const std::string& name, Lock* lock, RLock* rlock)
    : external_lock_(lock), external_rlock_(rlock) {
  std::uint32_t kind = lock ? kLock : rlock ? kRLock : kOwnLock;
  auto object =
      detail::open_object(mode, name,
                          {.kind = detail::SharedKind::condition,
                           .payload_size = sizeof(State),
                           .payload_align = alignof(State)},
                          [&](const detail::SharedObject& fresh) {
                            auto* state = new (fresh.payload) State;
                            state->sequence.store(0);
                            state->waiters.store(0);
                            state->lock_kind = kind;
                            RLock::initialize_state(reinterpret_cast<std::byte*>(&state->own_lock));
                          });
  state_ = reinterpret_cast<State*>(object.payload);
  if (state_->lock_kind != kind)
    throw Error(fmt::format("Condition '{}' was created with {}, and is attached with {}", name,
                            describe(state_->lock_kind), describe(kind)));
  own_lock_ = RLock(object.region, &state_->own_lock);
  region_ = std::move(object.region);
}

Condition::Condition() : Condition(detail::OpenMode::anonymous, {}, nullptr, nullptr) {}
Condition::Condition(Lock& lock) : Condition(detail::OpenMode::anonymous, {}, &lock, nullptr) {}
Condition::Condition(RLock& lock) : Condition(detail::OpenMode::anonymous, {}, nullptr, &lock) {}
Condition Condition::create(const std::string& name) {
  return Condition(detail::OpenMode::create, name, nullptr, nullptr);
}
Condition Condition::create(const std::string& name, Lock& lock) {
  return Condition(detail::OpenMode::create, name, &lock, nullptr);
}
Condition Condition::create(const std::string& name, RLock& lock) {
  return Condition(detail::OpenMode::create, name, nullptr, &lock);
}
Condition Condition::attach(const std::string& name) {
  return Condition(detail::OpenMode::attach, name, nullptr, nullptr);
}
Condition Condition::attach(const std::string& name, Lock& lock) {
  return Condition(detail::OpenMode::attach, name, &lock, nullptr);
}
Condition Condition::attach(const std::string& name, RLock& lock) {
  return Condition(detail::OpenMode::attach, name, nullptr, &lock);
}

void Condition::lock() {
  if (external_lock_)
    external_lock_->lock();
  else if (external_rlock_)
    external_rlock_->lock();
  else
    own_lock_.lock();
}

bool Condition::try_lock() {
  return external_lock_    ? external_lock_->try_lock()
         : external_rlock_ ? external_rlock_->try_lock()
                           : own_lock_.try_lock();
}

void Condition::unlock() {
  if (external_lock_)
    external_lock_->unlock();
  else if (external_rlock_)
    external_rlock_->unlock();
  else
    own_lock_.unlock();
}

bool Condition::wait_until(std::optional<detail::Clock::time_point> deadline) {
  RLock* rlock = external_rlock_ ? external_rlock_ : external_lock_ ? nullptr : &own_lock_;
  if (external_lock_ ? external_lock_->state_->mutex.owner() != detail::thread_id()
                     : !rlock->held_by_this_thread())
    throw Error("cannot wait on a Condition whose lock this thread does not hold");

  // Read under the lock: a notify() after this point changes it.
  std::uint32_t sequence = state_->sequence.load(std::memory_order_acquire);
  state_->waiters.fetch_add(1, std::memory_order_seq_cst);
  unsigned depth = 0;
  if (external_lock_)
    external_lock_->unlock();
  else
    depth = rlock->release_all();

  bool timed_out = false;
  while (state_->sequence.load(std::memory_order_acquire) == sequence && !timed_out)
    timed_out = !detail::futex_wait(state_->sequence, sequence, deadline);
  bool notified = state_->sequence.load(std::memory_order_acquire) != sequence;
  state_->waiters.fetch_sub(1, std::memory_order_relaxed);

  if (external_lock_) {
    // As wait() promises the lock back, an OwnerDiedError here holds
    // nothing extra: the caller's guard releases it.
    if (external_lock_->state_->mutex.lock(std::nullopt) ==
        detail::RobustMutex::Outcome::owner_died)
      throw OwnerDiedError(detail::owner_died_message(external_lock_->name()), nullptr);
  } else {
    rlock->restore(depth);
  }
  return notified;
}

void Condition::notify(unsigned count) {
  if (count == 0 || state_->waiters.load(std::memory_order_seq_cst) == 0) return;
  state_->sequence.fetch_add(1, std::memory_order_seq_cst);
  detail::futex_wake(state_->sequence, count > INT_MAX ? INT_MAX : static_cast<int>(count));
}

void Condition::notify_all() { notify(UINT_MAX); }

}  // namespace ferry
