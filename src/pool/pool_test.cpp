#include "ferry/pool.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <numeric>
#include <set>
#include <thread>

#include "pool/children.hpp"

namespace ferry {
namespace {

using namespace std::chrono_literals;

int square(int n) { return n * n; }
long long square_wide(long long n) { return n * n; }
double add(int a, double b) { return a + b; }
int fail_on_three(int n) {
  if (n == 3) throw std::runtime_error("three is not allowed");
  return n;
}
int crash(int) {
  ::signal(SIGSEGV, SIG_DFL);  // die of it, even when a sanitizer would catch it
  ::raise(SIGSEGV);
  return 0;
}
int call_exit(int code) { std::exit(code); }
int hang(int seconds) {
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return seconds;
}
int worker_pid(int) { return ::getpid(); }
void nothing(int) {}
std::string describe(std::string name, std::vector<int> values) {
  return name + ":" + std::to_string(std::accumulate(values.begin(), values.end(), 0));
}

int configured = 0;
void configure() { configured = 42; }
int read_configured(int) { return configured; }
void broken_configure() { throw std::runtime_error("no configuration file"); }

long rss_peak_kb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

// The failure a task ended with (a test failure if it did not fail).
template <class R>
TaskError failure_of(AsyncResult<R>& handle) {
  try {
    handle.get();
  } catch (const TaskError& error) {
    return error;
  }
  ADD_FAILURE() << "the task did not fail";
  return TaskError(TaskError::Reason::exception, "");
}

class PoolTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(testing::children().empty()) << "a worker was leaked"; }
};

TEST_F(PoolTest, SubmitAndGet) {
  Pool pool(2);
  EXPECT_EQ(pool.processes(), 2);
  EXPECT_EQ(pool.worker_pids().size(), 2u);
  auto handle = pool.submit(square, 7);
  EXPECT_EQ(handle.get(), 49);
  EXPECT_TRUE(handle.ready());
  EXPECT_TRUE(handle.successful());
  EXPECT_EQ(handle.get(), 49);  // again: the result stays
  EXPECT_EQ(pool.submit([](int a, int b) { return a * b; }, 6, 7).get(), 42);
  EXPECT_EQ(pool.submit(describe, "sum", std::vector<int>{1, 2, 3}).get(), "sum:6");
  pool.submit(nothing, 1).get();
}

TEST_F(PoolTest, ManySubmissionsAllComeBack) {
  Pool pool(3);
  std::vector<AsyncResult<int>> handles;
  for (int i = 0; i < 500; ++i) handles.push_back(pool.submit(square, i));
  for (int i = 0; i < 500; ++i) EXPECT_EQ(handles[i].get(), i * i);
}

TEST_F(PoolTest, GetWithATimeoutAndWait) {
  Pool pool(1);
  auto slow = pool.submit(hang, 1);
  EXPECT_FALSE(slow.ready());
  EXPECT_THROW(slow.get(10ms), TimeoutError);
  EXPECT_FALSE(slow.wait(10ms));
  EXPECT_THROW(slow.successful(), Error);
  EXPECT_EQ(slow.get(30s), 1);
  slow.wait();
}

TEST_F(PoolTest, ExceptionsCarryTheirMessage) {
  Pool pool(2);
  auto failing = pool.submit(fail_on_three, 3);
  TaskError failing_error = failure_of(failing);
  EXPECT_EQ(failing_error.reason(), TaskError::Reason::exception);
  EXPECT_STREQ(failing_error.what(), "three is not allowed");
  EXPECT_FALSE(failing.successful());
  EXPECT_EQ(pool.submit(fail_on_three, 4).get(), 4);
}

TEST_F(PoolTest, ACrashingTaskFailsAloneAndItsWorkerIsReplaced) {
  Pool pool(2);
  auto before = pool.worker_pids();
  auto crashed = pool.submit(crash, 0);
  TaskError crashed_error = failure_of(crashed);
  EXPECT_EQ(crashed_error.reason(), TaskError::Reason::worker_lost);
  EXPECT_NE(std::string(crashed_error.what()).find("died (killed by SIGSEGV)"), std::string::npos)
      << crashed_error.what();
  auto exited = pool.submit(call_exit, 5);
  TaskError exited_error = failure_of(exited);
  EXPECT_NE(std::string(exited_error.what()).find("died (exit status 5)"), std::string::npos)
      << exited_error.what();
  std::vector<AsyncResult<int>> after;
  for (int i = 0; i < 20; ++i) after.push_back(pool.submit(square, i));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(after[i].get(), i * i);
  EXPECT_EQ(pool.worker_pids().size(), 2u);
  EXPECT_NE(pool.worker_pids(), before);
}

TEST_F(PoolTest, ATaskPastItsTimeoutIsKilledAndReplaced) {
  Pool pool(PoolOptions{.processes = 1, .task_timeout = 300ms});
  auto before = pool.worker_pids();
  auto stuck = pool.submit(hang, 60);
  auto next = pool.submit(square, 5);  // queued behind it on the same worker
  TaskError stuck_error = failure_of(stuck);
  EXPECT_EQ(stuck_error.reason(), TaskError::Reason::timed_out);
  EXPECT_NE(std::string(stuck_error.what()).find("ran longer than 300 ms"), std::string::npos)
      << stuck_error.what();
  EXPECT_EQ(next.get(), 25);  // not lost with the worker: it ran on the replacement
  EXPECT_NE(pool.worker_pids(), before);
}

TEST_F(PoolTest, MaxTasksPerChildRecyclesWorkers) {
  Pool pool(PoolOptions{.processes = 1, .max_tasks_per_child = 2});
  std::vector<int> pids;
  for (int i = 0; i < 6; ++i) pids.push_back(pool.submit(worker_pid, i).get());
  std::map<int, int> tasks_per_pid;
  for (int pid : pids) tasks_per_pid[pid]++;
  EXPECT_EQ(tasks_per_pid.size(), 3u);
  for (auto& [pid, count] : tasks_per_pid) EXPECT_EQ(count, 2);
}

TEST_F(PoolTest, InitializerRunsInEveryWorker) {
  Pool pool(PoolOptions{.processes = 2, .initializer = configure});
  EXPECT_EQ(configured, 0);  // not here: in the workers
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pool.submit(read_configured, i).get(), 42);
}

TEST_F(PoolTest, AFailingInitializerFailsTasksClearly) {
  Pool pool(PoolOptions{.processes = 1, .initializer = broken_configure});
  auto handle = pool.submit(square, 2);
  TaskError handle_error = failure_of(handle);
  EXPECT_NE(std::string(handle_error.what()).find("initializer failed"), std::string::npos);
  EXPECT_THROW(pool.submit(square, 3), Error);
}

TEST_F(PoolTest, MapKeepsInputOrder) {
  Pool pool(3);
  std::vector<int> inputs(1000);
  std::iota(inputs.begin(), inputs.end(), 0);
  std::vector<int> expected;
  for (int n : inputs) expected.push_back(n * n);
  EXPECT_EQ(pool.map(square, inputs), expected);
  EXPECT_EQ(pool.map(square, inputs, 1), expected);
  EXPECT_EQ(pool.map(square, inputs, 7), expected);
  EXPECT_EQ(pool.map(square, std::vector<int>{}), std::vector<int>{});
  EXPECT_EQ(pool.map(square, std::views::iota(0, 5)), (std::vector<int>{0, 1, 4, 9, 16}));
  pool.map(nothing, inputs);
}

TEST_F(PoolTest, MapThrowsTheFirstFailure) {
  Pool pool(2);
  EXPECT_THROW(pool.map(fail_on_three, std::vector<int>{1, 2, 3, 4}), TaskError);
}

TEST_F(PoolTest, StarmapUnpacksTuples) {
  Pool pool(2);
  std::vector<std::tuple<int, double>> pairs = {{1, 0.5}, {2, 0.25}};
  EXPECT_EQ(pool.starmap(add, pairs), (std::vector<double>{1.5, 2.25}));
}

TEST_F(PoolTest, ImapUnorderedYieldsEveryResult) {
  Pool pool(3);
  std::multiset<int> results;
  std::vector<int> inputs = {5, 1, 4, 2, 3};
  for (int result : pool.imap_unordered(square, inputs)) results.insert(result);
  EXPECT_EQ(results, (std::multiset<int>{1, 4, 9, 16, 25}));
  auto failing = pool.imap_unordered(fail_on_three, std::vector<int>{3});
  EXPECT_THROW(failing.begin(), TaskError);
}

TEST_F(PoolTest, ImapUnorderedOverAMillionInputsInBoundedMemory) {
  Pool pool(2);
  std::ofstream("/proc/self/clear_refs") << "5";  // restart the peak RSS count
  [[maybe_unused]] long peak_before = rss_peak_kb();
  long long sum = 0;
  std::uint64_t count = 0;
  for (long long result :
       pool.imap_unordered(square_wide, std::views::iota(0LL, 1'000'000LL), 1000)) {
    sum += result;
    ++count;
  }
  EXPECT_EQ(count, 1'000'000u);
  EXPECT_EQ(sum, 333332833333500000LL);  // the sum of n*n for n < 10^6
  // A million results held at once would take tens of MiB; a stream takes ~none.
  // (AddressSanitizer keeps freed memory in quarantine, so RSS says nothing there.)
#if !defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(rss_peak_kb() - peak_before, 20 * 1024);
#endif
}

TEST_F(PoolTest, CloseThenJoinFinishesQueuedWork) {
  Pool pool(2);
  std::vector<AsyncResult<int>> handles;
  for (int i = 0; i < 50; ++i) handles.push_back(pool.submit(square, i));
  EXPECT_THROW(pool.join(), Error);  // not closed yet
  pool.close();
  EXPECT_THROW(pool.submit(square, 1), Error);
  pool.join();
  EXPECT_TRUE(testing::children().empty());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(handles[i].get(), i * i);
  pool.join();  // again: nothing to do
}

TEST_F(PoolTest, TerminateFailsWorkInFlight) {
  Pool pool(2);
  std::vector<AsyncResult<int>> handles;
  for (int i = 0; i < 5; ++i) handles.push_back(pool.submit(hang, 60));
  pool.terminate();
  EXPECT_TRUE(testing::children().empty());
  for (auto& handle : handles)
    EXPECT_EQ(failure_of(handle).reason(), TaskError::Reason::terminated);
  pool.join();  // after terminate, join returns at once
}

TEST_F(PoolTest, DestructorNeverLeaksOrHangs) {
  AsyncResult<int>* kept = nullptr;
  std::optional<AsyncResult<int>> handle;
  {
    Pool pool(2);
    handle.emplace(pool.submit(hang, 60));
    kept = &*handle;
  }
  EXPECT_THROW(kept->get(), TaskError);
}

TEST_F(PoolTest, UsableFromManyThreads) {
  Pool pool(2);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&pool, &wrong, t] {
      for (int i = 0; i < 100; ++i) {
        int n = t * 1000 + i;
        if (pool.submit(square, n).get() != n * n) ++wrong;
      }
      auto mapped = pool.map(square, std::vector<int>{t, t + 1});
      if (mapped != std::vector<int>{t * t, (t + 1) * (t + 1)}) ++wrong;
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace ferry
