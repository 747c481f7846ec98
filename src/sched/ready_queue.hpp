// ReadyQueue — the jobs of one queue that may run now, best first.
//
// Order: higher priority first; within a priority, lower id (earlier submit)
// first, so equal-priority work is FIFO. Removal of any job (cancel) is
// O(log n).
//
// A server may hold a million queued jobs, so the common case costs 8 bytes
// a job: new jobs arrive with increasing ids and are appended to a sorted
// deque. A job queued again (a retry) has an older id and goes to a small
// ordered set beside it; a removed job inside the deque is remembered and
// skipped when it reaches the front.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>

namespace ferry::sched {

using JobId = std::uint64_t;

class ReadyQueue {
 public:
  void push(JobId id, int priority);
  bool erase(JobId id, int priority);
  // The best job and its priority, without removing it.
  std::optional<std::pair<JobId, int>> peek() const;
  std::optional<JobId> pop();
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  // The jobs of one priority. Invariant: the front of `in_order` is never
  // in `removed`; a lane with no jobs is dropped.
  struct Lane {
    std::deque<JobId> in_order;  // increasing
    std::set<JobId> out_of_order;
    std::set<JobId> removed;  // still in in_order, no longer queued
    JobId best() const;
    bool empty() const { return in_order.empty() && out_of_order.empty(); }
    void skip_removed();
  };
  std::map<int, Lane, std::greater<>> lanes_;  // highest priority first
  std::size_t size_ = 0;
};

}  // namespace ferry::sched
