// ferry::exec — runs commands as child processes and supervises them.
//
// A ProcessSet runs any number of children at once from one thread. Each child
// is spawned with posix_spawn into its own process group, so a timeout or an
// interrupt reaches its grandchildren too. Its stdin is /dev/null unless the
// Command carries data; its stdout and stderr are read through non-blocking
// pipes into buffers that keep at most `output_limit` bytes (the tail). One
// epoll loop watches every pipe and every child's pidfd: no polling, no
// SIGCHLD handler, and nothing is reaped that this set did not start.
//
// A program that cannot be started (missing, not executable) is not an error
// of the caller: its child "finishes" at once with End::failed_to_start and a
// shell-like exit code (127 or 126), so one bad job never stops a runner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::exec {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum class Stream { out, err };

// Receives a child's output as it arrives (see Command::on_output).
using OutputHandler = std::function<void(Stream stream, std::string_view data)>;

struct Command {
  std::vector<std::string> argv;          // argv[0] is searched in PATH unless it has a '/'
  std::vector<std::string> env;           // "NAME=value", added to the inherited environment
  std::string cwd;                        // empty: the caller's working directory
  std::optional<std::string> stdin_data;  // nullopt: stdin is /dev/null
  milliseconds timeout{0};                // 0: no timeout
  milliseconds kill_grace{2000};          // time between SIGTERM and SIGKILL
  std::size_t output_limit = 16 << 20;    // bytes kept per stream; older bytes are dropped
  // When set, stdout and stderr are handed to it as they arrive, in pieces,
  // and Result::out/err stay empty: nothing is kept or dropped here. It runs
  // inside wait() and must not call back into the ProcessSet.
  OutputHandler on_output;
  // >= 0: the child writes that stream straight to this descriptor of ours
  // (no pipe, nothing captured or counted).
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// `/bin/sh -c script`.
Command shell_command(std::string script);

enum class End {
  exited,           // exit_code holds the status
  signaled,         // signal holds the signal that ended it
  timed_out,        // killed by this set after `timeout`; signal says which one ended it
  failed_to_start,  // exit_code is 127 (not found) or 126 (not executable); error says why
};

struct Result {
  End end = End::exited;
  int exit_code = 0;
  int signal = 0;
  std::string error;  // set for failed_to_start
  std::chrono::nanoseconds wall{0};
  std::chrono::microseconds user_cpu{0};
  std::chrono::microseconds system_cpu{0};
  long max_rss_kb = 0;
  std::string out;
  std::string err;
  std::uint64_t out_dropped = 0;  // bytes of stdout dropped from the front past output_limit
  std::uint64_t err_dropped = 0;
  std::uint64_t out_bytes = 0;  // bytes the child wrote to the stdout pipe, dropped ones included
  std::uint64_t err_bytes = 0;

  bool succeeded() const { return end == End::exited && exit_code == 0; }
};

// A one-line human description: "exit 3", "killed by SIGKILL", "timed out", ...
std::string describe(const Result& result);

class ProcessSet {
 public:
  using Id = std::uint64_t;
  struct Finished {
    Id id;
    Result result;
  };

  // Ignores SIGPIPE in this process (when it is at its default), so that a
  // child closing its stdin early cannot kill the supervisor.
  ProcessSet();
  // Kills (SIGKILL) every child still running and reaps it: never leaks one.
  ~ProcessSet();
  ProcessSet(const ProcessSet&) = delete;
  ProcessSet& operator=(const ProcessSet&) = delete;

  // Starts a child. Throws std::system_error only for failures of the
  // supervisor itself (e.g. out of file descriptors).
  Id start(const Command& command);

  // The child's pid (also its process group id); 0 once it was returned by
  // wait() or when it failed to start.
  pid_t pid(Id id) const;

  // Blocks until at least one child finished, `deadline` passed, or `wake_fd`
  // (if >= 0) became readable; returns every child that finished meanwhile.
  // Timeouts and kill grace periods are enforced in here.
  std::vector<Finished> wait(std::optional<Clock::time_point> deadline, int wake_fd = -1);

  // SIGTERM to every running child's group now, SIGKILL to those still
  // running after `grace`.
  void terminate_all(milliseconds grace);

  // The same for one child; nothing when it already ended.
  void terminate(Id id, milliseconds grace);

  // Children started and not yet returned by wait().
  std::size_t size() const;

 private:
  struct Child;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::exec
