// Metrics — what `ferry server` counts of its work, and the text Prometheus
// scrapes from `GET /metrics` (docs/api.md lists every metric).
//
// Counting costs the job path next to nothing: counters are plain integers
// and histograms fixed buckets, kept on the server's one event-loop thread
// and updated as the Service announces changes that became durable — so the
// counters agree with the event stream and with the store. What needs the
// store or the system (the database's size, the process's memory, CPU time
// and descriptors) is read only when /metrics is scraped.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sched/scheduler.hpp"
#include "store/histogram.hpp"
#include "store/store.hpp"

namespace ferry::server {

using Time = sched::Time;

// Buckets, in seconds, of how long attempts ran and how long jobs waited
// in their queue: from a millisecond (times are kept to the millisecond) to
// an hour.
inline constexpr double kJobSecondsBounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1,
                                               5,     10,    30,   60,   300, 900, 3600};

// One change of a job's state, as metrics count it. Taken when the change
// is made (the job then is as the change left it), counted once durable.
struct Step {
  std::optional<sched::State> from;        // none: a job just submitted
  std::optional<sched::AttemptEnd> ended;  // the attempt this change ended, if any
  // For an attempt that ended: how long it ran. For one that started: how
  // long the job waited in its queue for it.
  double seconds = 0;
};

// The step a scheduler change made of `job` (as it is right after).
Step step_of(const sched::Job& job, std::optional<sched::State> from, sched::State to);

// Counters and histograms of the jobs, by queue, and the jobs that ended in
// each minute of the last hour (for the dashboard). Since the server started.
class JobMetrics {
 public:
  struct Queue {
    std::uint64_t submitted = 0;       // jobs made by submits
    std::uint64_t started = 0;         // attempts started (leases handed out)
    std::uint64_t succeeded = 0;       // jobs that ended so
    std::uint64_t failed = 0;          // jobs that ended so, with no retry left
    std::uint64_t cancelled = 0;       // jobs that ended so
    std::uint64_t retried = 0;         // failed attempts run again, and jobs retried by request
    std::uint64_t lease_expiries = 0;  // attempts ended lease_expired
    store::Histogram run_seconds{kJobSecondsBounds};   // attempts that succeeded or failed
    store::Histogram wait_seconds{kJobSecondsBounds};  // from queued to started
  };

  void count(std::string_view queue, sched::State to, const Step& step, Time now);
  const std::map<std::string, Queue, std::less<>>& queues() const { return queues_; }

  // Per minute, oldest first, the last being the minute `now` is in.
  static constexpr std::size_t kMinutes = 60;
  struct LastHour {
    Time first_minute{0};  // when the oldest minute began
    std::array<std::uint64_t, kMinutes> submitted{};
    std::array<std::uint64_t, kMinutes> succeeded{};
    std::array<std::uint64_t, kMinutes> failed{};
  };
  LastHour last_hour(Time now) const;

 private:
  Queue& queue(std::string_view name);
  struct Minute {
    std::int64_t number = -1;  // minutes since the epoch
    std::uint64_t submitted = 0, succeeded = 0, failed = 0;
  };
  Minute& minute(Time now);

  std::map<std::string, Queue, std::less<>> queues_;
  Queue* last_queue_ = nullptr;  // most changes are of the queue before
  std::string_view last_name_;   // its key in queues_
  std::array<Minute, kMinutes> minutes_;
};

// What the process uses, from /proc/self (zeros where unreadable).
struct ProcessStats {
  double cpu_seconds = 0;  // user + system
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;
  double start_time_seconds = 0;  // since the Unix epoch
};
ProcessStats read_process_stats();

// Everything /metrics shows, gathered when it is scraped.
struct MetricsSnapshot {
  const JobMetrics* jobs = nullptr;
  std::map<std::string, sched::Counts> kept;  // jobs kept, by queue and state
  std::uint64_t stale_completions = 0;
  std::size_t jobs_in_memory = 0;
  std::size_t workers_connected = 0;  // heard from within the lease timeout
  std::size_t workers_known = 0;      // heard from within the last hour
  std::size_t event_streams = 0;
  std::size_t connections = 0;
  store::Stats store;
  store::Size store_size;
  ProcessStats process;
};

// The Prometheus text exposition format (version 0.0.4).
std::string render_metrics(const MetricsSnapshot& snapshot);
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace ferry::server
