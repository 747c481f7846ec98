#include "ferry/event.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "ferry/shared_value.hpp"
#include "shm/test_support.hpp"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::run_processes;
using testing::test_name;

class EventTest : public testing::SharedTest {};

TEST_F(EventTest, SetClearAndTimeouts) {
  Event event;
  EXPECT_FALSE(event.is_set());
  EXPECT_FALSE(event.wait(20ms));
  EXPECT_FALSE(event.wait(0ms));
  EXPECT_FALSE(event.wait_until(std::chrono::steady_clock::now() + 5ms));
  event.set();
  event.set();  // twice: still set
  EXPECT_TRUE(event.is_set());
  EXPECT_TRUE(event.wait(0ms));
  event.wait();
  event.clear();
  EXPECT_FALSE(event.is_set());
  EXPECT_FALSE(event.wait(1ms));
}

TEST_F(EventTest, SetWakesEveryWaitingProcess) {
  Event go;
  std::vector<Process> waiters;
  for (int i = 0; i < 4; ++i) waiters.emplace_back([&] { std::exit(go.wait(60s) ? 0 : 1); });
  for (auto& waiter : waiters) waiter.start();
  for (auto& waiter : waiters) ASSERT_TRUE(testing::wait_until_asleep(waiter.pid()));
  go.set();
  for (auto& waiter : waiters) {
    ASSERT_TRUE(waiter.join(30s));
    EXPECT_EQ(waiter.exit_code(), 0);
  }
}

// Python's promise: a process waiting when set() is called returns true,
// even when the flag is cleared again before it runs.
TEST_F(EventTest, ASetFollowedByAClearStillWakesTheWaiter) {
  Event event;
  Value<int> waiting(0);
  Process waiter([&] {
    waiting.atomic().store(1);
    std::exit(event.wait(60s) ? 0 : 1);
  });
  waiter.start();
  for (int attempt = 0; attempt < 10'000 && waiting.atomic().load() == 0; ++attempt)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(waiting.atomic().load(), 1);
  ASSERT_TRUE(testing::wait_until_asleep(waiter.pid()));
  event.set();
  event.clear();
  ASSERT_TRUE(waiter.join(30s));
  EXPECT_EQ(waiter.exit_code(), 0);
}

TEST_F(EventTest, NoLostWakeUpInTenThousandRounds) {
  Event ping, pong;
  Value<long> rounds(0);
  constexpr int kRounds = 10'000;
  Process partner([&] {
    for (int i = 0; i < kRounds; ++i) {
      if (!ping.wait(30s)) std::exit(1);
      ping.clear();
      ++rounds.value();
      pong.set();
    }
  });
  partner.start();
  for (int i = 0; i < kRounds; ++i) {
    ping.set();
    ASSERT_TRUE(pong.wait(30s)) << "round " << i;
    pong.clear();
  }
  ASSERT_TRUE(partner.join(30s));
  EXPECT_EQ(partner.exit_code(), 0);
  EXPECT_EQ(rounds.value(), kRounds);
}

TEST_F(EventTest, ThreadsWaitForIt) {
  Event go;
  Value<int> woken(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      go.wait();
      woken.atomic().fetch_add(1);
    });
  go.set();
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(woken.value(), 4);
}

TEST_F(EventTest, Named) {
  std::string name = test_name("event");
  Event event = Event::create(name);
  auto codes = run_processes(1, [&](int) { Event::attach(name).set(); });
  EXPECT_EQ(codes[0], 0);
  EXPECT_TRUE(event.is_set());
}

}  // namespace
}  // namespace ferry
