// ferry::run — the local parallel runner behind `ferry run`.
//
// Every input row becomes a job of the scheduler (src/sched), which decides
// what runs next and when failures are retried; the jobs run as processes of
// one ProcessSet (src/exec). No server, no threads: one loop waits on the
// children, the retry timers and the signals.
//
// Interrupts: the first SIGINT stops starting jobs and lets running ones
// finish; a second one (or SIGTERM/SIGHUP) terminates the running process
// groups. Either way the joblog holds every attempt that ended, so --resume
// runs only what did not succeed.
#pragma once

#include <chrono>
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "run/inputs.hpp"

namespace ferry::run {

// When to stop early because of failures (--halt).
struct HaltPolicy {
  enum class When { never, soon, now } when = When::never;  // soon: let running jobs finish
  double failures = 0;  // stop when this many jobs failed (a count, or a percent of all jobs)
  bool percent = false;
};

// Parses "never", "soon,fail=3", "now,fail=10%" (and "fail=N", meaning soon).
HaltPolicy parse_halt(const std::string& text);

// Parses -j: "8", "0" (one slot per job), "150%" of the cores, "+2"/"-1" cores.
int parse_jobs(const std::string& text, int cores);

struct RunOptions {
  CommandLine command_line;
  bool shell = false;
  int jobs = 0;  // 0: one slot per job, up to a cap set by the fd limit
  int retries = 0;
  std::chrono::milliseconds retry_delay{0};  // before the first retry; doubles after
  std::chrono::milliseconds timeout{0};      // per attempt; 0: none
  std::chrono::milliseconds kill_grace{2000};
  bool keep_order = false;
  std::string joblog;
  bool resume = false;
  HaltPolicy halt;
  bool bar = false;
  bool dry_run = false;
};

// Runs everything; returns the exit status: 0 when every job succeeded, else
// the number of jobs that did not (failed, or never ran), at most 101.
// Job output goes to stdout/stderr, grouped per job. Throws UsageError for
// bad input found before any job started.
int run(const RunOptions& options, std::istream& stdin_stream);

}  // namespace ferry::run
