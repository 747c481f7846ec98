#include "sched/ready_queue.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace ferry::sched {
namespace {

TEST(ReadyQueue, HigherPriorityFirstThenFifo) {
  ReadyQueue queue;
  queue.push(1, 0);
  queue.push(2, 5);
  queue.push(3, 0);
  queue.push(4, 5);
  queue.push(5, -1);
  std::vector<JobId> order;
  while (auto id = queue.pop()) order.push_back(*id);
  EXPECT_EQ(order, (std::vector<JobId>{2, 4, 1, 3, 5}));
  EXPECT_TRUE(queue.empty());
}

TEST(ReadyQueue, EraseRemovesExactlyThatJob) {
  ReadyQueue queue;
  queue.push(1, 0);
  queue.push(2, 0);
  EXPECT_FALSE(queue.erase(2, 7));  // wrong priority: not that entry
  EXPECT_TRUE(queue.erase(1, 0));
  EXPECT_FALSE(queue.erase(1, 0));
  ASSERT_TRUE(queue.peek());
  EXPECT_EQ(queue.peek()->first, 2u);
  EXPECT_EQ(queue.size(), 1u);
}

TEST(ReadyQueue, JobsQueuedAgainKeepTheirPlaceByIdAndRemovalsAreSkipped) {
  ReadyQueue queue;
  for (JobId id : {10, 11, 12, 13, 14}) queue.push(id, 0);
  queue.push(3, 0);  // an older job, queued again
  EXPECT_TRUE(queue.erase(12, 0));
  EXPECT_FALSE(queue.erase(12, 0));
  EXPECT_FALSE(queue.erase(99, 0));
  EXPECT_TRUE(queue.erase(10, 0));  // at the front
  queue.push(12, 0);                // back again, out of order
  EXPECT_EQ(queue.size(), 5u);
  std::vector<JobId> order;
  while (auto id = queue.pop()) order.push_back(*id);
  EXPECT_EQ(order, (std::vector<JobId>{3, 11, 12, 13, 14}));
  EXPECT_TRUE(queue.empty());
  EXPECT_FALSE(queue.peek());
}

// Against a plain ordered set, over many random operations.
TEST(ReadyQueue, MatchesAnOrderedSet) {
  ReadyQueue queue;
  std::set<std::pair<int, JobId>> model;  // (-priority, id)
  std::mt19937 random(7);
  JobId next = 1;
  for (int step = 0; step < 20000; ++step) {
    int op = static_cast<int>(random() % 10);
    int priority = static_cast<int>(random() % 3);
    if (op < 5) {
      JobId id = random() % 4 == 0 && next > 1 ? 1 + random() % (next - 1) : next++;
      if (model.insert({-priority, id}).second) queue.push(id, priority);
    } else if (op < 7 && !model.empty()) {
      auto it = model.begin();
      std::advance(it, random() % model.size());
      EXPECT_TRUE(queue.erase(it->second, -it->first));
      model.erase(it);
    } else if (!model.empty()) {
      ASSERT_EQ(queue.peek()->first, model.begin()->second);
      EXPECT_EQ(queue.pop(), model.begin()->second);
      model.erase(model.begin());
    }
    ASSERT_EQ(queue.size(), model.size());
  }
}

}  // namespace
}  // namespace ferry::sched
