#include "ferry/process.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "ferry/error.hpp"
#include "ferry/pool.hpp"
#include "ferry/queue.hpp"
#include "pool/children.hpp"

namespace ferry {
namespace {

using namespace std::chrono_literals;

int square(int n) { return n * n; }

class ProcessTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(testing::children().empty()) << "a child was leaked"; }
};

TEST_F(ProcessTest, RunsALambdaThatCapturesAndJoins) {
  auto path =
      std::filesystem::temp_directory_path() / ("ferry-process-" + std::to_string(::getpid()));
  std::string greeting = "hello from the child";
  Process child([&] { std::ofstream(path) << greeting; }, "writer");
  EXPECT_EQ(child.name(), "writer");
  EXPECT_EQ(child.pid(), 0);
  EXPECT_FALSE(child.exit_code());
  child.start();
  EXPECT_GT(child.pid(), 0);
  EXPECT_NE(child.pid(), ::getpid());
  EXPECT_TRUE(child.join());
  EXPECT_EQ(child.exit_code(), 0);
  EXPECT_FALSE(child.is_alive());
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, greeting);
  std::filesystem::remove(path);
}

TEST_F(ProcessTest, ExitCodesAndSignalsAsPythonReportsThem) {
  Process exits([] { std::exit(3); });
  exits.start();
  exits.join();
  EXPECT_EQ(exits.exit_code(), 3);

  Process throws([] { throw std::runtime_error("boom"); }, "thrower");
  throws.start();
  throws.join();
  EXPECT_EQ(throws.exit_code(), 1);

  Process crashes([] {
    ::signal(SIGSEGV, SIG_DFL);  // die of it, even when a sanitizer would catch it
    ::raise(SIGSEGV);
  });
  crashes.start();
  crashes.join();
  EXPECT_EQ(crashes.exit_code(), -SIGSEGV);
}

TEST_F(ProcessTest, JoinWithTimeoutThenTerminateOrKill) {
  Process sleeper([] { std::this_thread::sleep_for(60s); });
  sleeper.start();
  EXPECT_TRUE(sleeper.is_alive());
  EXPECT_FALSE(sleeper.join(50ms));
  EXPECT_FALSE(sleeper.exit_code());
  sleeper.terminate();
  EXPECT_TRUE(sleeper.join(10s));
  EXPECT_EQ(sleeper.exit_code(), -SIGTERM);

  Process stubborn([] {
    ::signal(SIGTERM, SIG_IGN);
    std::this_thread::sleep_for(60s);
  });
  stubborn.start();
  stubborn.kill();
  stubborn.join();
  EXPECT_EQ(stubborn.exit_code(), -SIGKILL);
}

TEST_F(ProcessTest, RunsACommand) {
  Process ok = Process::command({"sh", "-c", "exit 4"});
  EXPECT_EQ(ok.name(), "sh");
  ok.start();
  ok.join();
  EXPECT_EQ(ok.exit_code(), 4);
  Process missing = Process::command({"ferry-no-such-program"});
  EXPECT_THROW(missing.start(), Error);
}

TEST_F(ProcessTest, MisuseIsAnError) {
  Process child([] {});
  EXPECT_THROW(child.join(), Error);
  child.start();
  EXPECT_THROW(child.start(), Error);
  child.join();
}

TEST_F(ProcessTest, DestructorKillsARunningChild) {
  pid_t pid = 0;
  {
    Process sleeper([] { std::this_thread::sleep_for(60s); });
    sleeper.start();
    pid = sleeper.pid();
  }
  EXPECT_EQ(::kill(pid, 0), -1);
}

TEST_F(ProcessTest, MovesKeepOwnership) {
  Process first([] { std::exit(7); });
  first.start();
  Process second = std::move(first);
  EXPECT_EQ(first.pid(), 0);
  second.join();
  EXPECT_EQ(second.exit_code(), 7);
}

TEST_F(ProcessTest, QueueBetweenAWriterAndAReader) {
  Queue<std::pair<int, std::string>> queue;
  Queue<int> totals;
  Process writer([&] {
    for (int i = 0; i < 100; ++i) queue.put({i, "item " + std::to_string(i)});
    queue.put({-1, ""});
  });
  Process reader([&] {
    int sum = 0;
    for (;;) {
      auto [number, text] = queue.get();
      if (number < 0) break;
      if (text != "item " + std::to_string(number)) std::exit(2);
      sum += number;
    }
    totals.put(sum);
  });
  reader.start();
  writer.start();
  EXPECT_EQ(totals.get(10s), 4950);
  writer.join();
  reader.join();
  EXPECT_EQ(writer.exit_code(), 0);
  EXPECT_EQ(reader.exit_code(), 0);
}

TEST_F(ProcessTest, QueueGetTimesOutWhenEmpty) {
  Queue<int> queue;
  EXPECT_FALSE(queue.get(20ms));
  EXPECT_FALSE(queue.try_get());
  queue.put(5);
  EXPECT_EQ(queue.try_get(), 5);
}

TEST_F(ProcessTest, QueueKeepsItemsWholeWithManyWriters) {
  Queue<std::vector<int>> queue;
  std::vector<Process> writers;
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&queue, w] {
      for (int i = 0; i < 200; ++i) queue.put(std::vector<int>(1000 + i, w));
    });
  for (auto& writer : writers) writer.start();
  std::map<int, int> per_writer;
  for (int i = 0; i < 800; ++i) {
    auto item = queue.get(10s);
    ASSERT_TRUE(item);
    ASSERT_GE(item->size(), 1000u);
    for (int value : *item) ASSERT_EQ(value, (*item)[0]);
    per_writer[(*item)[0]]++;
  }
  for (auto& writer : writers) writer.join();
  for (int w = 0; w < 4; ++w) EXPECT_EQ(per_writer[w], 200);
}

TEST_F(ProcessTest, QueueRefusesAnOversizedItem) {
  Queue<std::string> queue;
  EXPECT_THROW(queue.put(std::string(queue.max_item_bytes() + 1, 'x')), Error);
  queue.put(std::string(100000, 'y'));
  EXPECT_EQ(queue.get().size(), 100000u);
}

TEST_F(ProcessTest, ExitInAChildLeavesTheParentsPoolAlone) {
  // In a process of its own with a static pool: a child of it that calls
  // std::exit() must not run the pool's teardown (which kills its workers).
  Process pool_owner([] {
    static Pool pool(2);
    auto workers = pool.worker_pids();
    Process child([] { std::exit(3); });
    child.start();
    child.join();
    int outcome = child.exit_code() == 3 ? 0 : 10;
    try {
      if (pool.submit(square, 3).get(20s) != 9) outcome = 11;
    } catch (const Error&) {
      outcome = 12;
    }
    if (pool.worker_pids() != workers) outcome = 13;  // they were killed and replaced
    pool.terminate();
    std::fflush(nullptr);
    ::_exit(outcome);
  });
  pool_owner.start();
  ASSERT_TRUE(pool_owner.join(60s));
  EXPECT_EQ(pool_owner.exit_code(), 0);
}

}  // namespace
}  // namespace ferry
