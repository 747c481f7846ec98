#include "sched/ready_queue.hpp"

#include <algorithm>

namespace ferry::sched {

JobId ReadyQueue::Lane::best() const {
  if (in_order.empty()) return *out_of_order.begin();
  if (out_of_order.empty()) return in_order.front();
  return std::min(in_order.front(), *out_of_order.begin());
}

void ReadyQueue::Lane::skip_removed() {
  while (!in_order.empty() && removed.erase(in_order.front())) in_order.pop_front();
}

void ReadyQueue::push(JobId id, int priority) {
  Lane& lane = lanes_[priority];
  if (lane.in_order.empty() || id > lane.in_order.back())
    lane.in_order.push_back(id);
  else
    lane.out_of_order.insert(id);
  ++size_;
}

bool ReadyQueue::erase(JobId id, int priority) {
  auto found = lanes_.find(priority);
  if (found == lanes_.end()) return false;
  Lane& lane = found->second;
  if (!lane.out_of_order.erase(id)) {
    bool queued = std::binary_search(lane.in_order.begin(), lane.in_order.end(), id) &&
                  !lane.removed.contains(id);
    if (!queued) return false;
    lane.removed.insert(id);
    lane.skip_removed();
  }
  --size_;
  if (lane.empty()) lanes_.erase(found);
  return true;
}

std::optional<std::pair<JobId, int>> ReadyQueue::peek() const {
  if (lanes_.empty()) return std::nullopt;
  return std::pair{lanes_.begin()->second.best(), lanes_.begin()->first};
}

std::optional<JobId> ReadyQueue::pop() {
  if (lanes_.empty()) return std::nullopt;
  Lane& lane = lanes_.begin()->second;
  JobId id = lane.best();
  if (!lane.in_order.empty() && lane.in_order.front() == id) {
    lane.in_order.pop_front();
    lane.skip_removed();
  } else {
    lane.out_of_order.erase(lane.out_of_order.begin());
  }
  --size_;
  if (lane.empty()) lanes_.erase(lanes_.begin());
  return id;
}

}  // namespace ferry::sched
