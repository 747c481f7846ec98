// What a Lock and an RLock are in shared memory (private to src/shm: a
// Condition releases and re-takes them around its waits).
#pragma once

#include <atomic>
#include <cstdint>

#include "ferry/lock.hpp"
#include "shm/robust_mutex.hpp"

namespace ferry {

struct Lock::State {
  detail::RobustMutex mutex;
};

struct RLock::State {
  detail::RobustMutex mutex;
  std::uint32_t depth;  // how many times its owner holds it; only the owner touches it
};

namespace detail {
// The message of an OwnerDiedError for the lock named `name` (or unnamed).
std::string owner_died_message(const std::string& name);
}  // namespace detail

}  // namespace ferry
