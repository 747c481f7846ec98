// The mutex under ferry's locks: a pthread mutex in shared memory that is
// process-shared (any process mapping it may lock it), robust (when its
// owner dies holding it, the next locker is told EOWNERDEAD instead of
// waiting forever) and error-checking (a thread locking it twice, or
// unlocking what it does not hold, is told instead of deadlocking).
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>

#include "shm/futex.hpp"

namespace ferry::detail {

// The kernel's id of the calling thread (unique across processes), cached
// per thread; a forked child's thread forgets the id it inherited (see
// robust_mutex.cpp).
inline thread_local pid_t cached_thread_id = 0;
inline pid_t thread_id() {
  if (cached_thread_id == 0) cached_thread_id = ::gettid();
  return cached_thread_id;
}

struct RobustMutex {
  enum class Outcome {
    acquired,
    owner_died,  // acquired, and made consistent: its last owner died holding it
    timed_out,
  };

  void initialize();
  // Waits until the deadline (nullopt: forever; a past deadline: one try).
  // Throws ferry::Error when this thread holds it already. The free case is
  // inline: a lock of a free mutex is one call into pthreads.
  Outcome lock(const Deadline& deadline) {
    int result = ::pthread_mutex_trylock(&mutex);
    if (result == 0) return Outcome::acquired;
    return lock_slowly(result, deadline);
  }
  // Throws ferry::Error when this thread does not hold it: checked here,
  // not left to pthread_mutex_unlock's EPERM, because unlocking what another
  // thread holds is a mistake to report, not to attempt.
  void unlock() {
    if (owner() != thread_id()) not_held();
    int result = ::pthread_mutex_unlock(&mutex);
    if (result != 0) unlock_failed(result);
  }
  // The kernel id of the thread holding it, 0 when free. Read from the
  // mutex's own futex word, which the kernel clears when its owner dies, so
  // a new thread that reuses a dead owner's id is never taken for it.
  // (glibc keeps the owner's id in the low bits of __data.__lock, the futex
  // word of a robust mutex: the kernel's robust-futex contract.)
  pid_t owner() const {
    int word = std::atomic_ref<const int>(mutex.__data.__lock).load(std::memory_order_relaxed);
    return static_cast<pid_t>(static_cast<unsigned>(word) & FUTEX_TID_MASK);
  }

  // lock() after a first pthread_mutex_trylock that answered `first_try`.
  Outcome lock_slowly(int first_try, const Deadline& deadline);

  pthread_mutex_t mutex;

 private:
  [[noreturn]] static void not_held();
  [[noreturn]] static void unlock_failed(int result);
};

}  // namespace ferry::detail
