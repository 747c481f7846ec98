#include "ferry/condition.hpp"

#include <gtest/gtest.h>
#include <signal.h>

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

class ConditionTest : public testing::SharedTest {};

// One producer, one consumer, a buffer of one item: 10,000 hand-overs, each
// needing a wake-up of the other side. A lost wake-up hangs (the hang guard
// reports it); every item arrives, in order.
TEST_F(ConditionTest, ProducerAndConsumerTenThousandRounds) {
  Condition changed;
  Array<long> buffer(3);  // [0]: items in it (0 or 1), [1]: the item, [2]: the consumer's sum
  constexpr long kRounds = 10'000;
  auto codes = run_processes(2, [&](int role) {
    for (long i = 1; i <= kRounds; ++i) {
      std::unique_lock guard(changed);
      if (role == 0) {
        if (!changed.wait(30s, [&] { return buffer[0] == 0; })) std::exit(3);
        buffer[1] = i;
        buffer[0] = 1;
      } else {
        if (!changed.wait(30s, [&] { return buffer[0] == 1; })) std::exit(3);
        if (buffer[1] != i) std::exit(4);  // out of order
        buffer[2] += buffer[1];
        buffer[0] = 0;
      }
      changed.notify();
    }
  });
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
  EXPECT_EQ(buffer[2], kRounds * (kRounds + 1) / 2);
}

// The classic bounded buffer: two conditions on one Lock, several producers
// and consumers.
TEST_F(ConditionTest, BoundedBufferWithTwoConditionsOnOneLock) {
  Lock lock;
  Condition not_empty(lock), not_full(lock);
  constexpr int kCapacity = 4, kProducers = 2, kConsumers = 2, kItems = 5'000;
  Array<long> ring(kCapacity);
  Array<long> counts(4);  // [0]: in the ring, [1]: next to write, [2]: next to read, [3]: sum read
  std::vector<Process> processes;
  for (int p = 0; p < kProducers; ++p)
    processes.emplace_back([&] {
      for (long i = 1; i <= kItems; ++i) {
        std::unique_lock guard(lock);
        if (!not_full.wait(30s, [&] { return counts[0] < kCapacity; })) std::exit(3);
        ring[counts[1]] = i;
        counts[1] = (counts[1] + 1) % kCapacity;
        ++counts[0];
        not_empty.notify();
      }
    });
  for (int c = 0; c < kConsumers; ++c)
    processes.emplace_back([&] {
      for (long i = 0; i < kItems * kProducers / kConsumers; ++i) {
        std::unique_lock guard(lock);
        if (!not_empty.wait(30s, [&] { return counts[0] > 0; })) std::exit(3);
        counts[3] += ring[counts[2]];
        counts[2] = (counts[2] + 1) % kCapacity;
        --counts[0];
        not_full.notify();
      }
    });
  for (auto& process : processes) process.start();
  for (auto& process : processes) {
    ASSERT_TRUE(process.join(60s));
    EXPECT_EQ(process.exit_code(), 0);
  }
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[3], long{kProducers} * kItems * (kItems + 1) / 2);
}

TEST_F(ConditionTest, NotifyAllWakesEveryWaiter) {
  Condition condition;
  Value<int> go(0);
  std::vector<Process> waiters;
  for (int i = 0; i < 3; ++i)
    waiters.emplace_back([&] {
      std::unique_lock guard(condition);
      bool woken = condition.wait(60s, [&] { return go.value() == 1; });
      guard.unlock();  // exiting with it held would hand the next owner an OwnerDiedError
      std::exit(woken ? 0 : 1);
    });
  for (auto& waiter : waiters) waiter.start();
  for (auto& waiter : waiters) ASSERT_TRUE(testing::wait_until_asleep(waiter.pid()));
  {
    std::lock_guard guard(condition);
    go.value() = 1;
  }
  condition.notify_all();  // without the lock: allowed
  for (auto& waiter : waiters) {
    ASSERT_TRUE(waiter.join(30s));
    EXPECT_EQ(waiter.exit_code(), 0);
  }
}

TEST_F(ConditionTest, NotifyOneWakesOneOfTwoSleepers) {
  Condition condition;
  Value<int> tokens(0);
  std::vector<Process> waiters;
  for (int i = 0; i < 2; ++i)
    waiters.emplace_back([&] {
      std::unique_lock guard(condition);
      condition.wait([&] { return tokens.value() > 0; });
      --tokens.value();
    });
  for (auto& waiter : waiters) waiter.start();
  for (auto& waiter : waiters) ASSERT_TRUE(testing::wait_until_asleep(waiter.pid()));
  for (int i = 0; i < 2; ++i) {
    {
      std::lock_guard guard(condition);
      ++tokens.value();
    }
    condition.notify();
    // Exactly one waiter can take the token; wait until one has ended.
    bool one_ended = false;
    for (int attempt = 0; attempt < 30'000 && !one_ended; ++attempt) {
      int ended = 0;
      for (auto& waiter : waiters) ended += waiter.is_alive() ? 0 : 1;
      one_ended = ended == i + 1;
      if (!one_ended) std::this_thread::sleep_for(1ms);
    }
    ASSERT_TRUE(one_ended) << "round " << i;
  }
  for (auto& waiter : waiters) {
    ASSERT_TRUE(waiter.join(30s));
    EXPECT_EQ(waiter.exit_code(), 0);
  }
  EXPECT_EQ(tokens.value(), 0);
}

TEST_F(ConditionTest, TimeoutsAndPredicates) {
  Condition condition;
  std::unique_lock guard(condition);
  EXPECT_FALSE(condition.wait(10ms));
  EXPECT_FALSE(condition.wait(0ms));
  int calls = 0;
  EXPECT_FALSE(condition.wait(10ms, [&] { return ++calls > 1000; }));
  EXPECT_GE(calls, 2);  // asked first, and once more at the end
  EXPECT_TRUE(condition.wait(10ms, [] { return true; }));
  condition.wait([] { return true; });
}

TEST_F(ConditionTest, WaitNeedsTheLock) {
  Condition own;
  EXPECT_THROW(own.wait(1ms), Error);
  Lock lock;
  Condition on_lock(lock);
  EXPECT_THROW(on_lock.wait(1ms), Error);
  std::lock_guard guard(lock);
  EXPECT_FALSE(on_lock.wait(1ms));
}

// wait() releases every level of an RLock, so another process can take it,
// and gives every level back.
TEST_F(ConditionTest, WaitReleasesAnRLockFully) {
  RLock lock;
  Condition condition(lock);
  Value<int> taken(0);
  lock.lock();
  lock.lock();
  Process other([&] {
    std::lock_guard guard(condition);
    taken.value() = 1;
    condition.notify();
  });
  other.start();
  EXPECT_TRUE(condition.wait(60s, [&] { return taken.value() == 1; }));
  ASSERT_TRUE(other.join(30s));
  EXPECT_EQ(other.exit_code(), 0);
  EXPECT_TRUE(lock.held_by_this_thread());
  lock.unlock();
  EXPECT_TRUE(lock.held_by_this_thread());
  lock.unlock();
  EXPECT_FALSE(lock.held_by_this_thread());
}

// A process killed while it holds the lock: a waiter taking the lock back
// is told, and holds it as a wait promises (its guard releases it).
TEST_F(ConditionTest, AWaiterIsToldWhenTheLockHolderDied) {
  Lock lock;
  Condition condition(lock);
  Event holding;
  Value<int> outcome(0);
  Process waiter([&] {
    std::unique_lock guard(lock);
    try {
      condition.wait(60s);
      outcome.value() = 1;
    } catch (const OwnerDiedError&) {
      outcome.value() = 2;
    }
  });
  waiter.start();
  ASSERT_TRUE(testing::wait_until_asleep(waiter.pid()));
  Process victim([&] {
    lock.lock();
    condition.notify();
    holding.set();
    std::this_thread::sleep_for(60s);  // until killed (bounded, should the test go wrong)
  });
  victim.start();
  ASSERT_TRUE(holding.wait(30s));
  victim.kill();
  ASSERT_TRUE(victim.join(30s));
  ASSERT_TRUE(waiter.join(30s));
  EXPECT_EQ(waiter.exit_code(), 0);
  EXPECT_EQ(outcome.value(), 2);
  EXPECT_TRUE(lock.try_lock()) << "the waiter's guard released it";
  lock.unlock();
}

TEST_F(ConditionTest, ThreadsWaitAndNotify) {
  Condition condition;
  Value<long> count(0);
  constexpr int kThreads = 4, kRounds = 2'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        std::unique_lock guard(condition);
        condition.wait([&] { return count.value() % kThreads == t; });
        ++count.value();
        condition.notify_all();
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(count.value(), kThreads * kRounds);
}

TEST_F(ConditionTest, NamedWithTheSameLock) {
  std::string condition_name = test_name("condition"), lock_name = test_name("condition-lock");
  Lock lock = Lock::create(lock_name);
  Condition condition = Condition::create(condition_name, lock);
  Value<int> ready(0);
  auto codes = run_processes(1, [&](int) {
    Lock my_lock = Lock::attach(lock_name);
    try {
      Condition::attach(condition_name);  // without the lock the creator gave
      std::exit(2);
    } catch (const Error&) {
    }
    Condition mine = Condition::attach(condition_name, my_lock);
    std::lock_guard guard(mine);
    ready.value() = 1;
    mine.notify();
  });
  std::unique_lock guard(condition);
  EXPECT_TRUE(condition.wait(30s, [&] { return ready.value() == 1; }));
  EXPECT_EQ(codes[0], 0);
}

}  // namespace
}  // namespace ferry
