#include "shm/robust_mutex.hpp"

#include <fmt/format.h>
#include <immintrin.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "ferry/error.hpp"

namespace ferry::detail {
namespace {

// Tries before sleeping: a lock is usually held for a few instructions, and
// trying again for about a microsecond is much cheaper than the two system
// calls of sleeping and being woken.
constexpr int kSpins = 100;

// TSan does not see pthread_mutex_clocklock, so a timed wait is made of
// pthread_mutex_timedlock (on CLOCK_REALTIME) slices of at most this long,
// each measured against the steady deadline: a jump of the wall clock
// shortens or stretches one slice, never the wait.
constexpr auto kSlice = std::chrono::milliseconds(50);

RobustMutex::Outcome outcome_of(int result) {
  switch (result) {
    case 0:
      return RobustMutex::Outcome::acquired;
    case EOWNERDEAD:
      return RobustMutex::Outcome::owner_died;
    case EBUSY:
    case ETIMEDOUT:
      return RobustMutex::Outcome::timed_out;
    case EDEADLK:
      throw Error(
          "this thread already holds the lock (a Lock is not recursive: an RLock is, or "
          "release it first)");
    case ENOTRECOVERABLE:
      throw Error("the lock is unusable: its owner died and it was not made consistent");
    default:
      throw Error(fmt::format("cannot lock: {}", std::strerror(result)));
  }
}

}  // namespace

void RobustMutex::initialize() {
  pthread_mutexattr_t attributes;
  ::pthread_mutexattr_init(&attributes);
  ::pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
  ::pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_ERRORCHECK);
  int result = ::pthread_mutex_init(&mutex, &attributes);
  ::pthread_mutexattr_destroy(&attributes);
  if (result != 0) throw Error(fmt::format("cannot make a lock: {}", std::strerror(result)));
}

RobustMutex::Outcome RobustMutex::lock_slowly(int first_try, const Deadline& deadline) {
  int result = first_try;
  // Asked here rather than of pthread_mutex_lock, which would answer
  // EDEADLK only after sanitizers reported a double lock.
  if (result == EBUSY && owner() == thread_id()) result = EDEADLK;
  // try_lock() is one try: no spinning for a deadline that has passed.
  bool one_try = deadline && *deadline <= std::chrono::steady_clock::now();
  for (int spin = 0; result == EBUSY && !one_try && spin < kSpins; ++spin) {
    _mm_pause();
    result = ::pthread_mutex_trylock(&mutex);
  }
  if (result != EBUSY) {
    Outcome outcome = outcome_of(result);
    if (outcome == Outcome::owner_died) ::pthread_mutex_consistent(&mutex);
    return outcome;
  }
  if (!deadline) {
    result = ::pthread_mutex_lock(&mutex);
  } else {
    for (;;) {
      auto left = *deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds(0)) break;  // result stays EBUSY: timed out
      auto slice = std::min<std::chrono::nanoseconds>(left, kSlice);
      timespec until{};
      ::clock_gettime(CLOCK_REALTIME, &until);
      long long nanoseconds = until.tv_nsec + slice.count();
      until.tv_sec += static_cast<time_t>(nanoseconds / 1'000'000'000);
      until.tv_nsec = static_cast<long>(nanoseconds % 1'000'000'000);
      result = ::pthread_mutex_timedlock(&mutex, &until);
      if (result != ETIMEDOUT) break;
      result = EBUSY;
    }
  }
  Outcome outcome = outcome_of(result);
  if (outcome == Outcome::owner_died) ::pthread_mutex_consistent(&mutex);
  return outcome;
}

void RobustMutex::not_held() { throw Error("cannot release a lock this thread does not hold"); }

void RobustMutex::unlock_failed(int result) {
  throw Error(fmt::format("cannot release a lock: {}", std::strerror(result)));
}

// A forked child's only thread keeps the cached id of the thread that forked:
// forget it there. Registered once, when the library is loaded.
const bool kForgetsThreadIdInChildren =
    ::pthread_atfork(nullptr, nullptr, [] { cached_thread_id = 0; }) == 0;

}  // namespace ferry::detail
