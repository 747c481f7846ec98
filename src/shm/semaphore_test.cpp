#include "ferry/semaphore.hpp"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "ferry/event.hpp"
#include "ferry/shared_value.hpp"
#include "shm/test_support.hpp"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::run_processes;
using testing::test_name;

class SemaphoreTest : public testing::SharedTest {};

TEST_F(SemaphoreTest, LetsInAtMostItsCount) {
  Semaphore slots(2);
  Array<int> inside(2);  // [0]: inside now, [1]: the most ever inside
  Value<long> entries(0);
  constexpr int kProcesses = 6, kRounds = 2'000;
  auto codes = run_processes(kProcesses, [&](int) {
    for (int i = 0; i < kRounds; ++i) {
      std::lock_guard slot(slots);
      int now = inside.atomic(0).fetch_add(1) + 1;
      int most = inside.atomic(1).load();
      while (now > most && !inside.atomic(1).compare_exchange_weak(most, now)) {
      }
      entries.atomic().fetch_add(1);
      std::this_thread::yield();
      inside.atomic(0).fetch_sub(1);
    }
  });
  EXPECT_EQ(codes, std::vector<int>(kProcesses, 0));
  EXPECT_EQ(entries.value(), kProcesses * kRounds);
  EXPECT_LE(inside[1], 2);
  EXPECT_GE(inside[1], 1);
  EXPECT_EQ(slots.value(), 2u);
}

TEST_F(SemaphoreTest, TimeoutsWhenEmpty) {
  Semaphore empty(0);
  EXPECT_FALSE(empty.try_acquire());
  EXPECT_FALSE(empty.try_acquire_for(20ms));
  EXPECT_FALSE(empty.try_lock_for(0ms));
  EXPECT_FALSE(empty.try_acquire_until(std::chrono::steady_clock::now() + 5ms));
  empty.release();
  EXPECT_EQ(empty.value(), 1u);
  EXPECT_TRUE(empty.try_acquire_for(20ms));
  EXPECT_EQ(empty.value(), 0u);
}

TEST_F(SemaphoreTest, ReleaseOfSeveralWakesAsManySleepers) {
  Semaphore gate(0);
  Value<int> asleep(0);
  std::vector<Process> waiters;
  for (int i = 0; i < 3; ++i)
    waiters.emplace_back([&] {
      asleep.atomic().fetch_add(1);
      gate.acquire();
    });
  for (auto& waiter : waiters) waiter.start();
  for (auto& waiter : waiters) ASSERT_TRUE(testing::wait_until_asleep(waiter.pid()));
  EXPECT_EQ(asleep.value(), 3);
  gate.release(3);
  for (auto& waiter : waiters) {
    ASSERT_TRUE(waiter.join(30s));
    EXPECT_EQ(waiter.exit_code(), 0);
  }
  EXPECT_EQ(gate.value(), 0u);
}

// Two processes hand a token back and forth through two semaphores: every
// hand-over needs a wake-up, and none may be lost.
TEST_F(SemaphoreTest, NoLostWakeUpInTenThousandHandOvers) {
  Semaphore ping(0), pong(0);
  Value<long> rounds(0);
  constexpr int kRounds = 10'000;
  Process partner([&] {
    for (int i = 0; i < kRounds; ++i) {
      ping.acquire();
      ++rounds.value();
      pong.release();
    }
  });
  partner.start();
  for (int i = 0; i < kRounds; ++i) {
    ping.release();
    ASSERT_TRUE(pong.try_acquire_for(30s)) << "round " << i;
  }
  ASSERT_TRUE(partner.join(30s));
  EXPECT_EQ(partner.exit_code(), 0);
  EXPECT_EQ(rounds.value(), kRounds);
}

TEST_F(SemaphoreTest, ThreadsShareItToo) {
  Semaphore slots(3);
  Value<int> inside(0);
  Value<int> most(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2'000; ++i) {
        slots.acquire();
        int now = inside.atomic().fetch_add(1) + 1;
        int seen = most.atomic().load();
        while (now > seen && !most.atomic().compare_exchange_weak(seen, now)) {
        }
        inside.atomic().fetch_sub(1);
        slots.release();
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_LE(most.value(), 3);
  EXPECT_EQ(slots.value(), 3u);
}

TEST_F(SemaphoreTest, BoundedRefusesOneReleaseTooMany) {
  BoundedSemaphore bounded(2);
  bounded.acquire();
  bounded.release();
  try {
    bounded.release();
    ADD_FAILURE() << "released past its bound";
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(), "a BoundedSemaphore of 2 was released too many times");
  }
  EXPECT_EQ(bounded.value(), 2u);
  bounded.acquire();
  EXPECT_THROW(bounded.release(2), Error);
  EXPECT_EQ(bounded.value(), 1u);

  Semaphore plain(1);
  plain.release(5);  // an unbounded one counts on, as in Python
  EXPECT_EQ(plain.value(), 6u);
  EXPECT_THROW(Semaphore(1u << 31), Error);
}

// Documented: a semaphore has no owner, so a slot taken by a process that
// dies is not given back.
TEST_F(SemaphoreTest, ASlotTakenByADeadProcessStaysTaken) {
  Semaphore slots(2);
  auto codes = run_processes(1, [&](int) {
    slots.acquire();
    std::exit(0);
  });
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(slots.value(), 1u);
}

TEST_F(SemaphoreTest, NamedForUnrelatedProcesses) {
  std::string name = test_name("slots");
  BoundedSemaphore slots = BoundedSemaphore::create(name, 3);
  auto codes = run_processes(1, [&](int) {
    BoundedSemaphore mine = BoundedSemaphore::attach(name);
    if (mine.value() != 3) std::exit(2);
    mine.acquire();
    mine.acquire();
  });
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(slots.value(), 1u);
  EXPECT_THROW(Semaphore::attach(name), Error);  // a BoundedSemaphore, not a Semaphore
}

}  // namespace
}  // namespace ferry
