// SignalWatch — SIGINT, SIGTERM and SIGHUP as readable events.
//
// While it lives, those signals are blocked in the calling thread and arrive
// through a descriptor that an event loop watches (ProcessSet::wait takes it
// as its wake fd); the old signal mask comes back on destruction. Children
// started by a ProcessSet get an empty mask, so they still receive signals.
#pragma once

#include <signal.h>

#include <vector>

namespace ferry::exec {

class SignalWatch {
 public:
  SignalWatch();
  ~SignalWatch();
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  int fd() const { return fd_; }
  // The signals that arrived since the last call, in order.
  std::vector<int> take();

 private:
  sigset_t set_;
  sigset_t old_mask_;
  int fd_ = -1;
};

}  // namespace ferry::exec
