#include "sched/ready_queue.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ferry::sched
