// Errors of the ferry C++ library. Every exception it throws derives from
// ferry::Error, so one catch clause covers them all; what() is a complete
// sentence a program can show its user as is.
#pragma once

#include <stdexcept>
#include <string>

namespace ferry {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A wait with a timeout ran out. The work goes on: waiting again may succeed.
class TimeoutError : public Error {
 public:
  using Error::Error;
};

// A task (or a process's function) did not produce a result.
class TaskError : public Error {
 public:
  enum class Reason {
    exception,    // it threw: what() is the exception's message
    timed_out,    // it ran past its time limit and its worker process was killed
    worker_lost,  // its worker process died (a crash, exit(), a signal)
    terminated,   // the pool was terminated before it finished
  };
  TaskError(Reason reason, const std::string& message) : Error(message), reason_(reason) {}
  Reason reason() const { return reason_; }

 private:
  Reason reason_;
};

// The other end of a connection (a Pipe's) is closed in every process:
// nothing more will come, and nothing sent would be read.
class EOFError : public Error {
 public:
  using Error::Error;
};

// Bytes that do not decode as the expected type.
class DecodeError : public Error {
 public:
  using Error::Error;
};

}  // namespace ferry
