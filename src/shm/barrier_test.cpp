#include "ferry/barrier.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "ferry/shared_value.hpp"
#include "shm/test_support.hpp"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::run_processes;
using testing::test_name;

class BarrierTest : public testing::SharedTest {};

// Four processes meet 200 times. In every round each gets a different index
// and nobody starts the next round before all finished this one.
TEST_F(BarrierTest, FourProcessesMeetRoundAfterRound) {
  constexpr int kParties = 4, kRounds = 200;
  Value<int> actions(0);
  Barrier barrier(kParties, [&] { actions.atomic().fetch_add(1); });
  Array<int> indices(kParties * kRounds, -1);
  Array<int> arrived(kRounds);
  auto codes = run_processes(kParties, [&](int party) {
    for (int round = 0; round < kRounds; ++round) {
      arrived.atomic(round).fetch_add(1);
      unsigned index = barrier.wait(60s);
      // Everyone arrived at this round before anyone left it.
      if (arrived.atomic(round).load() != kParties) std::exit(5);
      indices[round * kParties + party] = static_cast<int>(index);
    }
  });
  EXPECT_EQ(codes, std::vector<int>(kParties, 0));
  for (int round = 0; round < kRounds; ++round) {
    std::vector<int> got(indices.begin() + round * kParties,
                         indices.begin() + (round + 1) * kParties);
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3})) << "round " << round;
  }
  EXPECT_EQ(actions.value(), kRounds);
  EXPECT_EQ(barrier.parties(), 4u);
  EXPECT_EQ(barrier.waiting(), 0u);
  EXPECT_FALSE(barrier.broken());
}

TEST_F(BarrierTest, ATimeoutBreaksItAndResetMendsIt) {
  Barrier barrier(2);
  EXPECT_THROW(barrier.wait(10ms), BrokenBarrierError);
  EXPECT_TRUE(barrier.broken());
  EXPECT_THROW(barrier.wait(), BrokenBarrierError);
  barrier.reset();
  EXPECT_FALSE(barrier.broken());
  Process other([&] { barrier.wait(60s); });
  other.start();
  EXPECT_LE(barrier.wait(60s), 1u);
  ASSERT_TRUE(other.join(30s));
  EXPECT_EQ(other.exit_code(), 0);
}

TEST_F(BarrierTest, TheDefaultTimeoutApplies) {
  Barrier barrier(2, {}, 10ms);
  EXPECT_THROW(barrier.wait(), BrokenBarrierError);
}

TEST_F(BarrierTest, AbortAndResetWakeTheWaitersWithAnError) {
  for (bool abort : {true, false}) {
    SCOPED_TRACE(abort ? "abort" : "reset");
    Barrier barrier(3);
    std::vector<Process> waiters;
    for (int i = 0; i < 2; ++i)
      waiters.emplace_back([&] {
        try {
          barrier.wait(60s);
        } catch (const BrokenBarrierError&) {
          std::exit(3);
        }
      });
    for (auto& waiter : waiters) waiter.start();
    for (auto& waiter : waiters) ASSERT_TRUE(testing::wait_until_asleep(waiter.pid()));
    EXPECT_EQ(barrier.waiting(), 2u);
    abort ? barrier.abort() : barrier.reset();
    for (auto& waiter : waiters) {
      ASSERT_TRUE(waiter.join(30s));
      EXPECT_EQ(waiter.exit_code(), 3);
    }
    EXPECT_EQ(barrier.broken(), abort);
  }
}

TEST_F(BarrierTest, AnActionThatThrowsBreaksIt) {
  Barrier barrier(2, [] { throw Error("the action failed"); });
  Process other([&] {
    try {
      barrier.wait(60s);
    } catch (const BrokenBarrierError&) {
      std::exit(3);
    } catch (const Error&) {
      std::exit(4);
    }
  });
  other.start();
  int code_here = 0;
  try {
    barrier.wait(60s);
  } catch (const BrokenBarrierError&) {
    code_here = 3;
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(), "the action failed");
    code_here = 4;
  }
  ASSERT_TRUE(other.join(30s));
  // The last to arrive ran the action and got its error; the other, broken.
  EXPECT_EQ(code_here + *other.exit_code(), 7);
  EXPECT_TRUE(barrier.broken());
}

TEST_F(BarrierTest, ThreadsMeetToo) {
  constexpr int kThreads = 4, kRounds = 1'000;
  Barrier barrier(kThreads);
  Array<int> arrived(kRounds);
  Value<int> misordered(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int round = 0; round < kRounds; ++round) {
        arrived.atomic(round).fetch_add(1);
        barrier.wait();
        if (arrived.atomic(round).load() != kThreads) misordered.atomic().fetch_add(1);
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(misordered.value(), 0);
}

TEST_F(BarrierTest, NamedTakesItsPartiesFromTheCreator) {
  std::string name = test_name("barrier");
  Barrier barrier = Barrier::create(name, 2);
  Process other([&] {
    Barrier mine = Barrier::attach(name);
    if (mine.parties() != 2) std::exit(2);
    mine.wait(60s);
  });
  other.start();
  barrier.wait(60s);
  ASSERT_TRUE(other.join(30s));
  EXPECT_EQ(other.exit_code(), 0);
  EXPECT_THROW(Barrier(0), Error);
}

}  // namespace
}  // namespace ferry
