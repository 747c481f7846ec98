// ReadyQueue — the jobs of one queue that may run now, best first.
//
// Order: higher priority first; within a priority, lower id (earlier submit)
// first, so equal-priority work is FIFO. Removal of any job (cancel) is
// O(log n), which a binary heap would not give.
#pragma once

#include <cstddef>
#include <cstdint>
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
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    int priority;
    JobId id;
    bool operator<(const Entry& other) const {
      return priority != other.priority ? priority > other.priority : id < other.id;
    }
  };
  std::set<Entry> entries_;
};

}  // namespace ferry::sched
