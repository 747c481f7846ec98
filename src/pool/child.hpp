// What every process the library creates does first (pool workers and
// ferry::Process children alike).
#pragma once

#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace ferry::detail {

// Makes this new process a well-behaved child of `parent`:
//  - it dies with its parent. PR_SET_PDEATHSIG sends SIGKILL when the thread
//    that created it ends (with the parent process, or earlier); the check of
//    getppid() after it covers a parent that died before it was set.
//  - exit() leaves at once through _exit with the same status, flushing
//    stdio: the parent's atexit handlers and static destructors (its pools,
//    its Process objects) belong to the parent and must not run here. This
//    handler, registered last, runs first.
inline void become_child(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::raise(SIGKILL);
  ::on_exit(
      [](int status, void*) {
        std::fflush(nullptr);
        ::_exit(status);
      },
      nullptr);
}

}  // namespace ferry::detail
