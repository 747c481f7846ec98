#include "ferry/lock.hpp"

#include <fmt/format.h>

#include <new>

#include "shm/lock_states.hpp"

namespace ferry {
namespace detail {

HeldLock::~HeldLock() {
  if (!release) return;
  try {
    release();
  } catch (const Error&) {
    // Released already by another path (the thread unlocked it itself).
  }
}

std::string owner_died_message(const std::string& name) {
  return fmt::format(
      "a process died holding the lock{}; this thread holds it now, and what it protects may "
      "be half-changed",
      name.empty() ? "" : fmt::format(" '{}'", name));
}

}  // namespace detail

void OwnerDiedError::release() const {
  if (!held_ || !held_->release) return;
  auto release = std::move(held_->release);
  held_->release = nullptr;
  release();
}

void OwnerDiedError::keep() const {
  if (held_) held_->release = nullptr;
}

// ---------------------------------------------------------------------------
// Lock

std::size_t Lock::state_size() { return sizeof(State); }

void Lock::initialize_state(std::byte* memory) { (new (memory) State)->mutex.initialize(); }

Lock Lock::open(detail::OpenMode mode, const std::string& name) {
  auto object = detail::open_object(
      mode, name,
      {.kind = detail::SharedKind::lock,
       .payload_size = sizeof(State),
       .payload_align = alignof(State)},
      [](const detail::SharedObject& fresh) { initialize_state(fresh.payload); });
  return Lock(std::move(object.region), object.payload);
}

Lock::Lock() : Lock(open(detail::OpenMode::anonymous, {})) {}
Lock Lock::create(const std::string& name) { return open(detail::OpenMode::create, name); }
Lock Lock::attach(const std::string& name) { return open(detail::OpenMode::attach, name); }

// The uncontended case in few instructions (no frame for what follows):
// the first try is the whole of it.
void Lock::lock() {
  int first_try = ::pthread_mutex_trylock(&state_->mutex.mutex);
  if (first_try == 0) return;
  if (state_->mutex.lock_slowly(first_try, std::nullopt) ==
      detail::RobustMutex::Outcome::owner_died)
    owner_died();
}

bool Lock::lock_until(std::optional<detail::Clock::time_point> deadline) {
  switch (state_->mutex.lock(deadline)) {
    case detail::RobustMutex::Outcome::acquired:
      return true;
    case detail::RobustMutex::Outcome::timed_out:
      return false;
    case detail::RobustMutex::Outcome::owner_died:
      break;
  }
  owner_died();
}

// This thread holds the lock its last owner died holding. The exception
// keeps the memory mapped (a copy of the region) while it holds the lock,
// even if this handle goes away first.
void Lock::owner_died() {
  auto held = std::make_shared<detail::HeldLock>();
  held->release = [region = region_, state = state_] { state->mutex.unlock(); };
  throw OwnerDiedError(detail::owner_died_message(name()), std::move(held));
}

void Lock::unlock() { state_->mutex.unlock(); }

// ---------------------------------------------------------------------------
// RLock

std::size_t RLock::state_size() { return sizeof(State); }

void RLock::initialize_state(std::byte* memory) {
  auto* state = new (memory) State;
  state->mutex.initialize();
  state->depth = 0;
}

RLock RLock::open(detail::OpenMode mode, const std::string& name) {
  auto object = detail::open_object(
      mode, name,
      {.kind = detail::SharedKind::rlock,
       .payload_size = sizeof(State),
       .payload_align = alignof(State)},
      [](const detail::SharedObject& fresh) { initialize_state(fresh.payload); });
  return RLock(std::move(object.region), reinterpret_cast<State*>(object.payload));
}

RLock::RLock() : RLock(open(detail::OpenMode::anonymous, {})) {}
RLock RLock::create(const std::string& name) { return open(detail::OpenMode::create, name); }
RLock RLock::attach(const std::string& name) { return open(detail::OpenMode::attach, name); }

bool RLock::held_by_this_thread() const { return state_->mutex.owner() == detail::thread_id(); }

bool RLock::lock_until(std::optional<detail::Clock::time_point> deadline) {
  pid_t self = detail::thread_id();
  // Only this thread can have put its own id there: a relaxed read is exact.
  if (state_->mutex.owner() == self) {
    ++state_->depth;
    return true;
  }
  auto outcome = state_->mutex.lock(deadline);
  if (outcome == detail::RobustMutex::Outcome::timed_out) return false;
  state_->depth = 1;
  if (outcome == detail::RobustMutex::Outcome::acquired) return true;
  auto held = std::make_shared<detail::HeldLock>();
  held->release = [region = region_, this_state = state_] {
    // Releases the level the exception holds, as unlock() would.
    if (this_state->mutex.owner() != detail::thread_id()) return;
    if (--this_state->depth == 0) this_state->mutex.unlock();
  };
  throw OwnerDiedError(detail::owner_died_message(name()), std::move(held));
}

void RLock::unlock() {
  if (!held_by_this_thread()) throw Error("cannot release an RLock this thread does not hold");
  if (--state_->depth == 0) state_->mutex.unlock();
}

unsigned RLock::release_all() {
  if (!held_by_this_thread())
    throw Error("cannot wait on a Condition whose lock this thread does not hold");
  unsigned depth = state_->depth;
  state_->depth = 0;
  state_->mutex.unlock();
  return depth;
}

void RLock::restore(unsigned depth) {
  auto outcome = state_->mutex.lock(std::nullopt);
  state_->depth = depth;
  if (outcome == detail::RobustMutex::Outcome::owner_died)
    throw OwnerDiedError(detail::owner_died_message(name()), nullptr);
}

}  // namespace ferry
