#include "ferry/manager.hpp"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <thread>

#include "ferry/lock.hpp"
#include "ferry/pipe.hpp"
#include "ferry/process.hpp"
#include "pool/children.hpp"

namespace ferry {
namespace {

using namespace std::chrono_literals;

class ManagerTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(testing::children().empty()) << "a child was leaked"; }
};

int run(std::function<void()> body) {
  Process process(std::move(body));
  process.start();
  if (!process.join(60s)) {
    process.kill();
    process.join();
  }
  return *process.exit_code();
}

TEST_F(ManagerTest, ADictAListAndAQueueSharedByProcesses) {
  Manager manager;
  auto scores = manager.dict<std::string, int>("scores");
  auto log = manager.list<std::string>("log");
  auto results = manager.queue<std::pair<int, int>>("results");
  std::vector<Process> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&, w] {
      scores.set("worker " + std::to_string(w), w * 10);
      log.append("worker " + std::to_string(w) + " was here");
      results.put({w, w * w});
    });
  for (auto& worker : workers) worker.start();
  std::map<int, int> squares;
  for (int i = 0; i < 4; ++i) {
    auto result = results.get(30s);
    ASSERT_TRUE(result);
    squares.insert(*result);
  }
  for (auto& worker : workers) {
    ASSERT_TRUE(worker.join(30s));
    EXPECT_EQ(worker.exit_code(), 0);
  }
  EXPECT_EQ(squares, (std::map<int, int>{{0, 0}, {1, 1}, {2, 4}, {3, 9}}));
  EXPECT_EQ(scores.size(), 4u);
  EXPECT_EQ(scores.get("worker 3"), 30);
  EXPECT_EQ(scores.get("nobody"), std::nullopt);
  EXPECT_EQ(scores.get("nobody", -1), -1);
  EXPECT_TRUE(scores.contains("worker 0"));
  EXPECT_TRUE(scores.erase("worker 0"));
  EXPECT_FALSE(scores.erase("worker 0"));
  auto items = scores.items();
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0], (std::pair<std::string, int>{"worker 1", 10}));
  EXPECT_EQ(log.size(), 4u);
  EXPECT_EQ(results.size(), 0u);
  scores.clear();
  EXPECT_EQ(scores.size(), 0u);
}

TEST_F(ManagerTest, ListsIndexLikePython) {
  Manager manager;
  auto numbers = manager.list<int>("numbers");
  for (int i = 0; i < 5; ++i) numbers.append(i);
  EXPECT_EQ(numbers.get(0), 0);
  EXPECT_EQ(numbers.get(-1), 4);
  numbers.set(-2, 30);
  EXPECT_EQ(numbers.pop(), 4);
  EXPECT_EQ(numbers.pop(0), 0);
  EXPECT_EQ(numbers.items(), (std::vector<int>{1, 2, 30}));
  try {
    numbers.get(3);
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(), "list index 3 is out of range (size 3)");
  }
  EXPECT_THROW(numbers.get(-4), Error);
  numbers.clear();
  EXPECT_THROW(numbers.pop(), Error);
}

TEST_F(ManagerTest, QueueGetWaitsForAPutFromAnotherProcess) {
  Manager manager;
  auto tasks = manager.queue<std::string>("tasks");
  EXPECT_EQ(tasks.get(10ms), std::nullopt);
  EXPECT_EQ(tasks.get(0ms), std::nullopt);
  Process consumer([&] { std::exit(tasks.get() == "wake up" ? 0 : 1); });
  consumer.start();
  tasks.put("wake up");
  ASSERT_TRUE(consumer.join(30s));
  EXPECT_EQ(consumer.exit_code(), 0);
}

TEST_F(ManagerTest, ANameKeepsItsKindAndTypes) {
  Manager manager;
  manager.dict<std::string, int>("things").set("a", 1);
  try {
    manager.list<int>("things").size();
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(), "'things' is a dict of the manager, not a list");
  }
  auto other_types = manager.dict<std::string, double>("things");
  EXPECT_THROW(other_types.size(), Error);
  auto same = manager.dict<std::string, int>("things");
  EXPECT_EQ(same.get("a"), 1);
}

TEST_F(ManagerTest, ReadModifyWriteUnderALock) {
  Manager manager;
  Lock lock;
  auto counts = manager.dict<std::string, long>("counts");
  std::vector<Process> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        std::lock_guard guard(lock);
        counts.set("hits", counts.get("hits", 0) + 1);
      }
    });
  for (auto& worker : workers) worker.start();
  for (auto& worker : workers) {
    ASSERT_TRUE(worker.join(60s));
    EXPECT_EQ(worker.exit_code(), 0);
  }
  EXPECT_EQ(counts.get("hits"), 800);
}

TEST_F(ManagerTest, ThreadsShareOneProxy) {
  Manager manager;
  auto log = manager.list<int>("log");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) log.append(t);
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(log.size(), 400u);
}

TEST_F(ManagerTest, ConnectByAddress) {
  Manager manager;
  manager.queue<int>("jobs").put(42);
  std::string address = manager.address();
  EXPECT_EQ(address.rfind("@ferry-manager-", 0), 0u) << address;
  EXPECT_EQ(run([&] {
              Manager same = Manager::connect(address);  // as an unrelated program would
              std::exit(same.queue<int>("jobs").get(30s) == 42 ? 0 : 1);
            }),
            0);
  EXPECT_THROW(Manager::connect("@ferry-manager-nobody"), Error);
  EXPECT_THROW(Manager::connect("not an address"), Error);
}

TEST_F(ManagerTest, ProxiesFailClearlyAfterShutdown) {
  Manager manager;
  auto names = manager.dict<int, std::string>("names");
  names.set(1, "one");
  manager.shutdown();
  try {
    names.get(1);
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("is gone"), std::string::npos) << error.what();
  }
}

// The server keeps no copy of the file descriptors of the process that
// made it: a Pipe made earlier still reaches its end.
TEST_F(ManagerTest, TheServerHoldsNoCopyOfEarlierPipes) {
  auto [here, there] = Pipe<int>();
  Manager manager;
  there.close();
  EXPECT_THROW(here.recv(30s), EOFError);
}

}  // namespace
}  // namespace ferry
