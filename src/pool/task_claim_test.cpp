#include "pool/task_claim.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace ferry::detail {
namespace {

const auto now = std::chrono::steady_clock::now;

TEST(TaskClaim, AWorkerStartsTasksInOrder) {
  TaskClaim claim;
  EXPECT_EQ(claim.started(), 0u);
  auto before = now();
  EXPECT_TRUE(claim.try_start(1, before));
  EXPECT_EQ(claim.started(), 1u);
  EXPECT_EQ(claim.started_at(), before);
  EXPECT_TRUE(claim.try_start(2, now()));
  EXPECT_EQ(claim.started(), 2u);
}

TEST(TaskClaim, RevokedTasksNeverStart) {
  TaskClaim claim;
  EXPECT_TRUE(claim.try_start(1, now()));
  // Tasks 2..5 were sent; the pool takes back those not started.
  EXPECT_EQ(claim.revoke_unstarted(5), 1u);
  for (std::uint32_t task = 2; task <= 5; ++task) EXPECT_FALSE(claim.try_start(task, now()));
  EXPECT_EQ(claim.started(), 1u);
  // Tasks sent after the revocation start as usual.
  EXPECT_TRUE(claim.try_start(6, now()));
  EXPECT_EQ(claim.started(), 6u);
  // Revoking when everything started takes nothing back.
  EXPECT_EQ(claim.revoke_unstarted(6), 6u);
  EXPECT_TRUE(claim.try_start(7, now()));
}

TEST(TaskClaim, NumbersWrapAround) {
  EXPECT_TRUE(TaskClaim::later(1, 0));
  EXPECT_TRUE(TaskClaim::later(0, 0xFFFFFFFFu));
  EXPECT_TRUE(TaskClaim::later(1, 0xFFFFFFFEu));
  EXPECT_FALSE(TaskClaim::later(0xFFFFFFFFu, 1));
  TaskClaim claim;
  // As if 2^32 - 2 tasks had been sent and revoked, a quarter at a time.
  for (std::uint32_t last : {0x40000000u, 0x80000000u, 0xC0000000u, 0xFFFFFFFEu})
    EXPECT_EQ(claim.revoke_unstarted(last), 0u);
  EXPECT_FALSE(claim.try_start(0xFFFFFFFEu, now()));
  EXPECT_TRUE(claim.try_start(0xFFFFFFFFu, now()));
  EXPECT_TRUE(claim.try_start(0, now()));  // after 2^32 - 1 comes 0
  EXPECT_TRUE(claim.try_start(1, now()));
  EXPECT_EQ(claim.revoke_unstarted(3), 1u);
  EXPECT_FALSE(claim.try_start(2, now()));
  EXPECT_FALSE(claim.try_start(3, now()));
  EXPECT_TRUE(claim.try_start(4, now()));
}

TEST(TaskClaim, ManyTasksWithoutRevocationsStillStart) {
  // 2^31 tasks and more with no revocation: the limit moves with the starts.
  TaskClaim claim;
  EXPECT_TRUE(claim.try_start(1, now()));
  EXPECT_EQ(claim.revoke_unstarted(1), 1u);
  for (std::uint32_t task : {0x7FFFFFF0u, 0x80000010u, 0xFFFFFFF0u, 0x10u})
    EXPECT_TRUE(claim.try_start(task, now())) << task;  // each within 2^31 of the one before
}

// A worker starting tasks while the pool revokes them at any moment: every
// task ends up started or revoked, never both, never neither.
TEST(TaskClaim, EveryTaskIsStartedOrRevokedExactlyOnce) {
  constexpr std::uint32_t kTasks = 20000;
  TaskClaim claim;
  std::atomic<std::uint32_t> sent{0};
  auto started = std::make_unique<std::atomic<bool>[]>(kTasks + 1);
  auto revoked = std::make_unique<std::atomic<bool>[]>(kTasks + 1);
  std::thread worker([&] {
    for (std::uint32_t task = 1; task <= kTasks; ++task) {
      while (sent.load() < task) std::this_thread::yield();
      if (claim.try_start(task, now())) started[task] = true;
    }
  });
  auto revoke = [&] {
    std::uint32_t last_sent = sent.load();
    for (std::uint32_t task = claim.revoke_unstarted(last_sent) + 1; task <= last_sent; ++task)
      revoked[task] = true;
  };
  for (std::uint32_t task = 1; task <= kTasks; ++task) {
    sent.store(task);
    if (task % 7 == 0) revoke();
  }
  worker.join();
  revoke();
  for (std::uint32_t task = 1; task <= kTasks; ++task)
    ASSERT_NE(started[task].load(), revoked[task].load()) << "task " << task;
}

}  // namespace
}  // namespace ferry::detail
