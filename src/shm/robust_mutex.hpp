// The mutex under ferry's locks: a pthread mutex in shared memory that is
// process-shared (any process mapping it may lock it), robust (when its
// owner dies holding it, the next locker is told EOWNERDEAD instead of
// waiting forever) and error-checking (a thread locking it twice, or
// unlocking what it does not hold, is told instead of deadlocking).
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include "shm/futex.hpp"

namespace ferry::detail {

struct RobustMutex {
  enum class Outcome {
    acquired,
    owner_died,  // acquired, and made consistent: its last owner died holding it
    timed_out,
  };

  void initialize();
  // Waits until the deadline (nullopt: forever; a past deadline: one try).
  // Throws ferry::Error when this thread holds it already.
  Outcome lock(const Deadline& deadline);
  // Throws ferry::Error when this thread does not hold it.
  void unlock();
  // The kernel id of the thread holding it, 0 when free. Read from the
  // mutex's own futex word, which the kernel clears when its owner dies, so
  // a new thread that reuses a dead owner's id is never taken for it.
  pid_t owner() const;

  pthread_mutex_t mutex;
};

// The kernel's id of the calling thread (unique across processes), cached.
pid_t thread_id();

}  // namespace ferry::detail
