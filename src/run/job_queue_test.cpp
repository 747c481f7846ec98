#include "run/job_queue.hpp"

#include <gtest/gtest.h>

namespace ferry::run {
namespace {

using namespace std::chrono_literals;

TEST(JobQueue, NewJobsInOrderDueRetriesFirst) {
  JobQueue queue;
  auto now = JobQueue::Clock::time_point{} + 1h;
  queue.push({1, 0, {"a"}});
  queue.push({2, 0, {"b"}});
  queue.push_at({7, 1, {"retry"}}, now + 5s);
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_EQ(queue.next_wakeup(), now + 5s);
  EXPECT_EQ(queue.pop(now)->seq, 1u);
  EXPECT_EQ(queue.pop(now + 5s)->seq, 7u);  // due: before the newer job 2
  EXPECT_EQ(queue.pop(now + 5s)->seq, 2u);
  EXPECT_FALSE(queue.pop(now + 5s));
  EXPECT_TRUE(queue.empty());
}

TEST(JobQueue, AJobNotDueWaits) {
  JobQueue queue;
  auto now = JobQueue::Clock::time_point{} + 1h;
  queue.push_at({3, 2, {}}, now + 1s);
  EXPECT_FALSE(queue.has_ready(now));
  EXPECT_FALSE(queue.pop(now));
  EXPECT_TRUE(queue.has_ready(now + 1s));
  EXPECT_EQ(queue.take_all().size(), 1u);
  EXPECT_TRUE(queue.empty());
}

}  // namespace
}  // namespace ferry::run
