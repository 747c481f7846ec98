#include "run/job_queue.hpp"

namespace ferry::run {

std::optional<PendingJob> JobQueue::pop(Clock::time_point now) {
  if (!delayed_.empty() && delayed_.begin()->first <= now) {
    PendingJob job = std::move(delayed_.begin()->second);
    delayed_.erase(delayed_.begin());
    return job;
  }
  if (ready_.empty()) return std::nullopt;
  PendingJob job = std::move(ready_.front());
  ready_.pop_front();
  return job;
}

bool JobQueue::has_ready(Clock::time_point now) const {
  return !ready_.empty() || (!delayed_.empty() && delayed_.begin()->first <= now);
}

std::optional<JobQueue::Clock::time_point> JobQueue::next_wakeup() const {
  if (delayed_.empty()) return std::nullopt;
  return delayed_.begin()->first;
}

std::vector<PendingJob> JobQueue::take_all() {
  std::vector<PendingJob> all;
  for (auto& [at, job] : delayed_) all.push_back(std::move(job));
  for (auto& job : ready_) all.push_back(std::move(job));
  delayed_.clear();
  ready_.clear();
  return all;
}

}  // namespace ferry::run
