// ferry::run — the local parallel runner behind `ferry run`.
//
// Inputs are read as slots free up (src/run/inputs), each row becomes a job
// of a small JobQueue that also holds failed jobs until their retry delay
// (the same doubling delays as the scheduler's RetryPolicy), and the jobs
// run as processes of one ProcessSet (src/exec). Their output passes
// through an OutputOrder (grouped, line by line or in input order), spooled
// to temporary files when large. No threads: one loop waits on the
// children, the input, the retry timers and the signals. Memory follows the
// jobs in flight, never the length of the input or of an output.
//
// Interrupts: the first SIGINT stops starting jobs and lets running ones
// finish; a second one (or SIGTERM/SIGHUP) terminates the running process
// groups. A closed stdout (EPIPE) stops the run like a second interrupt.
// The joblog holds every attempt that ended, so --resume runs only what
// did not.
#pragma once

#include "run/options.hpp"

namespace ferry::run {

// Runs everything; returns the exit status (see run_help()). Job output goes
// to stdout/stderr. Throws UsageError for bad input found before any job
// started.
int run(const RunOptions& options, int stdin_fd);

}  // namespace ferry::run
