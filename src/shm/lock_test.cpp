#include "ferry/lock.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <mutex>
#include <thread>

#include "ferry/event.hpp"
#include "ferry/semaphore.hpp"
#include "ferry/shared_value.hpp"
#include "shm/test_support.hpp"

namespace ferry {
namespace {

using namespace std::chrono_literals;
using testing::run_processes;
using testing::test_name;

class LockTest : public testing::SharedTest {};

TEST_F(LockTest, MutualExclusionUnderEightProcesses) {
  Lock lock;
  Value<long> counter(0);  // its own lock unused: value() is plain memory
  constexpr int kProcesses = 8, kIncrements = 100'000;
  auto codes = run_processes(kProcesses, [&](int) {
    for (int i = 0; i < kIncrements; ++i) {
      std::lock_guard guard(lock);
      long seen = counter.value();
      counter.value() = seen + 1;  // a read and a write apart: any overlap loses counts
    }
  });
  EXPECT_EQ(codes, std::vector<int>(kProcesses, 0));
  EXPECT_EQ(counter.value(), long{kProcesses} * kIncrements);
}

TEST_F(LockTest, RLockIsMutuallyExclusiveAndReentrant) {
  RLock lock;
  Value<long> counter(0);
  constexpr int kProcesses = 8, kIncrements = 20'000;
  auto codes = run_processes(kProcesses, [&](int) {
    for (int i = 0; i < kIncrements; ++i) {
      std::lock_guard outer(lock);
      std::lock_guard inner(lock);
      counter.value() = counter.value() + 1;
    }
  });
  EXPECT_EQ(codes, std::vector<int>(kProcesses, 0));
  EXPECT_EQ(counter.value(), long{kProcesses} * kIncrements);
}

TEST_F(LockTest, ThreadsOfSeveralProcesses) {
  Lock lock;
  Value<long> counter(0);
  auto work = [&] {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        for (int i = 0; i < 10'000; ++i) {
          std::lock_guard guard(lock);
          ++counter.value();
        }
      });
    for (auto& thread : threads) thread.join();
  };
  auto codes = run_processes(2, [&](int) { work(); });
  work();
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
  EXPECT_EQ(counter.value(), 3 * 4 * 10'000);
}

TEST_F(LockTest, TryLockAndTimeoutsWhileAnotherProcessHoldsIt) {
  Lock lock;
  Event holding, release;
  Process holder([&] {
    std::lock_guard guard(lock);
    holding.set();
    release.wait();
  });
  holder.start();
  ASSERT_TRUE(holding.wait(30s));
  EXPECT_FALSE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock_for(20ms));
  EXPECT_FALSE(lock.try_lock_for(0s));
  EXPECT_FALSE(lock.try_lock_for(-5s));  // Python: a negative timeout is one try
  EXPECT_FALSE(lock.try_lock_until(std::chrono::steady_clock::now() + 10ms));
  EXPECT_FALSE(lock.try_lock_until(std::chrono::system_clock::now() + 10ms));
  release.set();
  EXPECT_TRUE(lock.try_lock_for(30s));
  lock.unlock();
  ASSERT_TRUE(holder.join(30s));
  EXPECT_EQ(holder.exit_code(), 0);
  // Free: every form takes it at once.
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
  EXPECT_TRUE(lock.try_lock_for(std::chrono::hours::max()));
  lock.unlock();
}

TEST_F(LockTest, MisuseIsAnErrorNotADeadlock) {
  Lock lock;
  EXPECT_THROW(lock.unlock(), Error);  // not held
  lock.lock();
  try {
    lock.lock();
    ADD_FAILURE() << "locked twice";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("already holds"), std::string::npos) << error.what();
  }
  // Another thread may not release what this one holds.
  std::thread other([&] { EXPECT_THROW(lock.unlock(), Error); });
  other.join();
  lock.unlock();

  RLock rlock;
  EXPECT_THROW(rlock.unlock(), Error);
  rlock.lock();
  EXPECT_TRUE(rlock.held_by_this_thread());
  std::thread another([&] {
    EXPECT_FALSE(rlock.held_by_this_thread());
    EXPECT_FALSE(rlock.try_lock());
    EXPECT_THROW(rlock.unlock(), Error);
  });
  another.join();
  rlock.unlock();
  EXPECT_FALSE(rlock.held_by_this_thread());
}

TEST_F(LockTest, RLockIsHeldUntilEveryLevelIsReleased) {
  RLock lock;
  lock.lock();
  lock.lock();
  EXPECT_TRUE(lock.try_lock());
  auto try_elsewhere = [&] {
    return run_processes(1, [&](int) {
      if (!lock.try_lock()) std::exit(0);
      lock.unlock();
      std::exit(1);
    })[0];
  };
  lock.unlock();
  lock.unlock();
  EXPECT_EQ(try_elsewhere(), 0) << "another process took it while one level was held";
  lock.unlock();
  EXPECT_EQ(try_elsewhere(), 1);
}

// The holder writes a half-done state and is killed inside its critical
// section: the next owner is told, repairs under the lock, and the other
// processes go on to the exact count.
TEST_F(LockTest, AHolderKilledMidCriticalSectionDoesNotStopTheOthers) {
  Lock lock;
  Array<long> state(2);  // [0]: the counter, [1]: its last committed value
  Value<int> recoveries(0);
  Event holding;
  Process victim([&] {
    lock.lock();
    state[0] = -1000;  // half-changed
    holding.set();
    std::this_thread::sleep_for(60s);  // until killed (bounded, should the test go wrong)
  });
  victim.start();
  ASSERT_TRUE(holding.wait(30s));

  constexpr int kOthers = 3, kIncrements = 10'000;
  std::vector<Process> others;
  for (int p = 0; p < kOthers; ++p)
    others.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        try {
          std::lock_guard guard(lock);
          state[1] = ++state[0];
        } catch (const OwnerDiedError&) {
          // Held here: put back the last committed value, then count this one.
          recoveries.atomic().fetch_add(1);
          state[0] = state[1];
          state[1] = ++state[0];
        }
      }
    });
  for (auto& other : others) other.start();
  victim.kill();
  ASSERT_TRUE(victim.join(30s));
  EXPECT_EQ(victim.exit_code(), -SIGKILL);
  for (auto& other : others) {
    ASSERT_TRUE(other.join(60s));
    EXPECT_EQ(other.exit_code(), 0);
  }
  EXPECT_EQ(recoveries.value(), 1);
  EXPECT_EQ(state[0], kOthers * kIncrements);
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST_F(LockTest, OwnerDiedErrorHoldsTheLockUntilItIsGone) {
  for (bool recursive : {false, true}) {
    SCOPED_TRACE(recursive ? "RLock" : "Lock");
    Lock lock;
    RLock rlock;
    auto try_elsewhere = [&] {
      return run_processes(1, [&](int) {
        if (!(recursive ? rlock.try_lock() : lock.try_lock())) std::exit(0);
        recursive ? rlock.unlock() : lock.unlock();
        std::exit(1);
      })[0];
    };
    auto codes = run_processes(1, [&](int) {
      if (recursive) {
        rlock.lock();
        rlock.lock();
      } else {
        lock.lock();
      }
      std::exit(0);  // dies holding it
    });
    ASSERT_EQ(codes[0], 0);
    try {
      recursive ? rlock.lock() : lock.lock();
      ADD_FAILURE() << "no OwnerDiedError";
    } catch (const OwnerDiedError& died) {
      EXPECT_NE(std::string(died.what()).find("died holding the lock"), std::string::npos);
      EXPECT_EQ(try_elsewhere(), 0) << "the lock was free while the error lived";
    }
    EXPECT_EQ(try_elsewhere(), 1) << "the lock stayed held after the error was gone";
  }
}

TEST_F(LockTest, OwnerDiedErrorReleaseAndKeep) {
  Lock lock;
  auto die_holding = [&] { run_processes(1, [&](int) { lock.lock(); }); };
  auto free_elsewhere = [&] {
    return run_processes(1, [&](int) {
             if (!lock.try_lock()) std::exit(0);
             lock.unlock();
             std::exit(1);
           })[0] == 1;
  };
  die_holding();
  try {
    std::lock_guard guard(lock);
  } catch (const OwnerDiedError& died) {
    died.release();
    EXPECT_TRUE(free_elsewhere());
    died.release();  // twice: nothing more
  }
  die_holding();
  try {
    EXPECT_FALSE(lock.try_lock());  // not reached: it throws
  } catch (const OwnerDiedError& died) {
    died.keep();
  }
  EXPECT_FALSE(free_elsewhere()) << "kept, so still held";
  lock.unlock();
  EXPECT_TRUE(free_elsewhere());
}

TEST_F(LockTest, ScopedLockTakesSeveral) {
  Lock first;
  RLock second;
  Semaphore third(1);
  {
    std::scoped_lock all(first, second, third);
    EXPECT_EQ(third.value(), 0u);
  }
  EXPECT_EQ(third.value(), 1u);
  EXPECT_TRUE(first.try_lock());
  first.unlock();
}

TEST_F(LockTest, NamedLocksForUnrelatedProcesses) {
  std::string name = test_name("lock");
  Value<long> counter(0);
  {
    Lock lock = Lock::create(name);
    EXPECT_EQ(lock.name(), name);
    EXPECT_THROW(Lock::create(name), Error);
    auto codes = run_processes(4, [&](int) {
      Lock mine = Lock::attach(name);  // by name, as an unrelated program would
      for (int i = 0; i < 10'000; ++i) {
        std::lock_guard guard(mine);
        counter.value() = counter.value() + 1;
      }
    });
    EXPECT_EQ(codes, std::vector<int>(4, 0));
    EXPECT_EQ(counter.value(), 40'000);
  }
  // The creator's handle removed the name.
  try {
    Lock::attach(name);
    ADD_FAILURE() << "attached to a removed name";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), "no shared memory is named '" + name + "'");
  }
}

TEST_F(LockTest, AttachingTheWrongKindIsRefused) {
  std::string name = test_name("semaphore");
  Semaphore semaphore = Semaphore::create(name, 1);
  try {
    Lock::attach(name);
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()), "'" + name + "' is a Semaphore, not a Lock");
  }
  EXPECT_THROW(RLock::attach(name), Error);
  EXPECT_THROW(Lock::create("no/slashes"), Error);
  EXPECT_THROW(Lock::create(""), Error);
}

TEST_F(LockTest, KeepNameLeavesItForLaterProcesses) {
  std::string name = test_name("kept");
  {
    Lock lock = Lock::create(name);
    lock.keep_name();
  }
  Lock later = Lock::attach(name);
  EXPECT_TRUE(later.try_lock());
  later.unlock();
  later.unlink();
  EXPECT_THROW(Lock::attach(name), Error);
}

}  // namespace
}  // namespace ferry
