// JobQueue — the jobs of `ferry run` waiting to start: new ones in input
// order, and failed ones until their retry delay passed. It holds only what
// waits, never every job ever run, so a run's memory follows the jobs in
// flight, not the length of its input.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ferry::run {

struct PendingJob {
  std::uint64_t seq = 0;  // the input's position, 1-based
  int attempts = 0;       // attempts made so far
  std::vector<std::string> args;
  std::optional<std::string> stdin_data;  // --pipe: the job's block of input
};

class JobQueue {
 public:
  using Clock = std::chrono::steady_clock;

  void push(PendingJob job) { ready_.push_back(std::move(job)); }
  void push_at(PendingJob job, Clock::time_point at) { delayed_.emplace(at, std::move(job)); }

  // The next job that may start at `now`: retries that are due first (they
  // are older), then new ones in input order.
  std::optional<PendingJob> pop(Clock::time_point now);
  bool has_ready(Clock::time_point now) const;
  // When the earliest delayed job becomes due.
  std::optional<Clock::time_point> next_wakeup() const;
  std::size_t size() const { return ready_.size() + delayed_.size(); }
  std::size_t ready_count() const { return ready_.size(); }  // new jobs, not counting retries
  bool empty() const { return size() == 0; }
  // Empties the queue, returning every job in it (they will not run).
  std::vector<PendingJob> take_all();

 private:
  std::deque<PendingJob> ready_;
  std::multimap<Clock::time_point, PendingJob> delayed_;
};

}  // namespace ferry::run
