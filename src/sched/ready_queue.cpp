#include "sched/ready_queue.hpp"

namespace ferry::sched {

void ReadyQueue::push(JobId id, int priority) { entries_.insert({priority, id}); }

bool ReadyQueue::erase(JobId id, int priority) { return entries_.erase({priority, id}) > 0; }

std::optional<std::pair<JobId, int>> ReadyQueue::peek() const {
  if (entries_.empty()) return std::nullopt;
  return std::pair{entries_.begin()->id, entries_.begin()->priority};
}

std::optional<JobId> ReadyQueue::pop() {
  if (entries_.empty()) return std::nullopt;
  JobId id = entries_.begin()->id;
  entries_.erase(entries_.begin());
  return id;
}

}  // namespace ferry::sched
