// The worker daemon behind `ferry worker`: it leases jobs from a server and
// runs command jobs as processes (src/exec).
//
// One thread, one loop: ask the server for work (carrying finished results
// and heartbeats for running jobs in the same request), start what it gives,
// wait for a process to end or for the next heartbeat, repeat. An idle
// worker long-polls, so new work starts at once. Results the server has not
// acknowledged are kept and sent again until it does, across server restarts
// and network trouble (reconnecting with backoff). A job the server took
// back (cancelled, or its lease expired) is terminated.
//
// SIGTERM or SIGINT: take no new jobs, let the running ones finish, deliver
// their results, exit 0. A second signal terminates the running jobs first.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "exec/process_set.hpp"
#include "server/job_spec.hpp"

namespace ferry::worker {

struct WorkerConfig {
  std::string server = "http://127.0.0.1:7077";
  std::string token;
  std::string id;                   // empty: HOSTNAME-PID
  int slots = 0;                    // 0: the number of cores
  std::vector<std::string> queues;  // empty: every queue
  std::vector<std::string> labels;
  std::chrono::milliseconds poll_wait{5000};    // the longest idle long poll (and the
                                                // longest a signal waits to be seen)
  std::chrono::milliseconds heartbeat{1'000};   // report to the server at least this often
  std::chrono::milliseconds kill_grace{5'000};  // SIGTERM to SIGKILL for stopped jobs
  std::size_t output_tail = 64 * 1024;          // bytes of stdout/stderr kept per attempt
};

// Runs until stopped; returns the exit status.
int run_worker(const WorkerConfig& config);

// The process that runs a command job (a call is not one): argv or
// `/bin/sh -c shell`, its env, cwd, stdin and timeout.
exec::Command command_for(const server::JobSpec& spec, std::chrono::milliseconds kill_grace,
                          std::size_t output_limit);

}  // namespace ferry::worker
