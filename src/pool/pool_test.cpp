#include "ferry/pool.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#include "ferry/process.hpp"
#include "ferry/queue.hpp"
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

// A file that a test creates to release a task waiting for it: tasks block
// on events, never on guesses about time.
class Marker {
 public:
  Marker() {
    static int next = 0;
    path_ = (std::filesystem::temp_directory_path() /
             ("ferry-marker-" + std::to_string(::getpid()) + "-" + std::to_string(next++)))
                .string();
    std::filesystem::remove(path_);
  }
  ~Marker() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }
  void set() { std::ofstream(path_) << "go"; }

 private:
  std::string path_;
};

// Waits for the marker (at most 30 s, so a broken test ends); whether it came.
bool wait_for_marker(const std::string& path) {
  for (int i = 0; i < 6000; ++i) {
    if (std::filesystem::exists(path)) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

int sleep_ms(int milliseconds) {
  std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds));
  return milliseconds;
}

void append_line(std::string path) {
  std::this_thread::sleep_for(20ms);
  std::ofstream(path, std::ios::app) << "done\n";
}

std::size_t line_count(const std::string& path) {
  std::ifstream in(path);
  std::size_t lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  return lines;
}

struct Point {
  double x = 0, y = 0;
  template <class Fields>
  void ferry_fields(Fields&& fields) {
    fields(x, y);
  }
};
int twice(const int& n) { return 2 * n; }
double half(const double& x) { return x / 2; }
double length_squared(const Point& p) { return p.x * p.x + p.y * p.y; }
std::string shout(const std::string& text, const int& times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text + "!";
  return out;
}
std::size_t take_ownership(std::vector<int>&& values) {
  std::vector<int> mine = std::move(values);
  return mine.size();
}

// Counts the copies made of it in this process.
struct Counted {
  static inline int copies = 0;
  std::vector<int> payload;
  Counted() = default;
  Counted(const Counted& other) : payload(other.payload) { ++copies; }
  Counted& operator=(const Counted& other) {
    payload = other.payload;
    ++copies;
    return *this;
  }
  Counted(Counted&&) = default;
  Counted& operator=(Counted&&) = default;
  template <class Fields>
  void ferry_fields(Fields&& fields) {
    fields(payload);
  }
};
std::size_t payload_size(Counted counted) { return counted.payload.size(); }

// Set before a pool's owner process forks, so the pool's workers inherit it.
Queue<int>* started_tasks = nullptr;
int announce_then_hang(int seconds) {
  started_tasks->put(::getpid());
  return hang(seconds);
}

bool is_even(int n) { return n % 2 == 0; }
std::vector<bool> parities(std::vector<int> values) {
  std::vector<bool> out;
  for (int value : values) out.push_back(value % 2 == 0);
  return out;
}

// Appends `n` to the file at `path` as a line, after `milliseconds`.
int record(std::string path, int n, int milliseconds) {
  std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds));
  std::ofstream(path, std::ios::app) << n << "\n";
  return n;
}

// For the spawn start: state a fresh run of the program does not have.
int changed_before_the_pool = 0;
int read_changed(int) { return changed_before_the_pool; }
std::mutex held_by_the_test;
int lock_and_return(int n) {
  std::lock_guard lock(held_by_the_test);
  return n;
}

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
  // The task fails, or the pool (which found out first) refuses it: either
  // way with the reason.
  std::string message;
  try {
    auto handle = pool.submit(square, 2);
    message = failure_of(handle).what();
  } catch (const Error& error) {
    message = error.what();
  }
  EXPECT_NE(message.find("initializer failed"), std::string::npos) << message;
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

// --- What a new user hit: each of these failed before its fix. ---

TEST_F(PoolTest, ATaskTakingConstReferencesGetsItsArguments) {
  Pool pool(2);
  EXPECT_EQ(pool.submit(twice, 21).get(), 42);
  EXPECT_EQ(pool.submit(half, 5.0).get(), 2.5);
  EXPECT_EQ(pool.submit(length_squared, Point{3, 4}).get(), 25.0);
  EXPECT_EQ(pool.submit(shout, "hey", 2).get(), "hey!hey!");
  EXPECT_EQ(pool.submit(take_ownership, std::vector<int>{1, 2, 3}).get(), 3u);
  EXPECT_EQ(pool.map(twice, std::vector<int>{1, 2, 3}), (std::vector<int>{2, 4, 6}));
  std::vector<Point> points = {{1, 0}, {0, 2}};
  EXPECT_EQ(pool.map(length_squared, points), (std::vector<double>{1, 4}));
}

TEST_F(PoolTest, TerminateInterruptsAThreadWaitingInGet) {
  Pool pool(1);
  auto slow = pool.submit(hang, 20);
  std::promise<void> waiting;
  std::optional<TaskError::Reason> reason;
  std::thread waiter([&] {
    waiting.set_value();
    try {
      slow.get();
    } catch (const TaskError& error) {
      reason = error.reason();
    }
  });
  waiting.get_future().wait();
  std::this_thread::sleep_for(100ms);  // into get(), most likely; the test holds either way
  pool.terminate();
  waiter.join();
  EXPECT_EQ(reason, TaskError::Reason::terminated);
}

TEST_F(PoolTest, TerminateInterruptsAThreadWaitingInMap) {
  Pool pool(2);
  std::promise<void> waiting;
  std::optional<TaskError::Reason> reason;
  std::thread waiter([&] {
    waiting.set_value();
    try {
      pool.map(hang, std::vector<int>{20, 20});
    } catch (const TaskError& error) {
      reason = error.reason();
    }
  });
  waiting.get_future().wait();
  std::this_thread::sleep_for(100ms);
  pool.terminate();
  waiter.join();
  EXPECT_EQ(reason, TaskError::Reason::terminated);
}

TEST_F(PoolTest, DestructorInterruptsAThreadWaitingInGet) {
  std::optional<AsyncResult<int>> slow;
  std::optional<TaskError::Reason> reason;
  std::thread waiter;
  {
    Pool pool(1);
    slow.emplace(pool.submit(hang, 20));
    std::promise<void> waiting;
    waiter = std::thread([&] {
      waiting.set_value();
      try {
        slow->get();
      } catch (const TaskError& error) {
        reason = error.reason();
      }
    });
    waiting.get_future().wait();
    std::this_thread::sleep_for(100ms);
  }
  waiter.join();
  EXPECT_EQ(reason, TaskError::Reason::terminated);
}

TEST_F(PoolTest, TaskTimeoutCountsFromWhenTheTaskStarted) {
  Pool pool(PoolOptions{.processes = 1, .task_timeout = 3s});
  Marker first_done, second_done;
  auto first = pool.submit(wait_for_marker, first_done.path());
  auto second = pool.submit(wait_for_marker, second_done.path());  // queued behind the first
  std::this_thread::sleep_for(2s);
  first_done.set();  // the second starts now, 2 s after it was submitted
  std::this_thread::sleep_for(1500ms);
  // 3.5 s after submission, 1.5 s after it started: within its 3 s.
  EXPECT_FALSE(second.wait(100ms));
  second_done.set();
  EXPECT_TRUE(first.get());
  EXPECT_TRUE(second.get());
}

TEST_F(PoolTest, TasksProgressWhileNobodyWaits) {
  Pool pool(2);
  Marker log;  // each task appends a line to it
  std::vector<AsyncResult<void>> handles;
  for (int i = 0; i < 20; ++i) handles.push_back(pool.submit(append_line, log.path()));
  // No pool call until all 20 are done (or 20 s passed, to end a broken test).
  for (int i = 0; i < 2000 && line_count(log.path()) < 20; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(line_count(log.path()), 20u);
  for (auto& handle : handles) handle.get();
}

TEST_F(PoolTest, AFreeWorkerNeverWaitsBehindALongTask) {
  Pool pool(2);
  pool.map(square, std::views::iota(0, 2000), 1);  // the pool has seen tiny tasks
  Marker release;
  auto blocker = pool.submit(wait_for_marker, release.path());
  std::vector<AsyncResult<int>> shorts;
  for (int i = 0; i < 20; ++i) shorts.push_back(pool.submit(sleep_ms, 10));
  for (auto& handle : shorts) EXPECT_EQ(handle.get(), 10);  // the other worker ran them all
  EXPECT_FALSE(blocker.ready());
  release.set();
  EXPECT_TRUE(blocker.get());  // released by the marker, not by its own 30 s limit
}

TEST_F(PoolTest, ExitInATaskDoesNotRunThePoolsTeardown) {
  // A static pool in a process of its own: std::exit() in its worker would run
  // the static destructors, and with them a copy of the pool's teardown.
  Process pool_owner([] {
    static Pool pool(1);
    int outcome = 0;
    // Twice: the first worker started before the static's destructor was
    // registered; its replacement starts after.
    for (int i = 0; i < 2 && outcome == 0; ++i) {
      try {
        pool.submit(call_exit, 0).get(20s);
        outcome = 11;
      } catch (const TaskError& error) {
        if (error.reason() != TaskError::Reason::worker_lost) outcome = 12;
      } catch (const TimeoutError&) {
        outcome = 13;  // the worker hung in the pool's teardown
      }
    }
    if (outcome == 0 && pool.submit(square, 4).get(20s) != 16) outcome = 14;
    pool.terminate();
    std::fflush(nullptr);
    ::_exit(outcome);
  });
  pool_owner.start();
  ASSERT_TRUE(pool_owner.join(60s));
  EXPECT_EQ(pool_owner.exit_code(), 0);
}

TEST_F(PoolTest, WorkersDieWithTheirParent) {
  // Orphans come to this process instead of init, so the test can see them.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  for (int signal : {SIGTERM, SIGINT}) {
    Queue<int> started;
    started_tasks = &started;
    Process parent([] {
      Pool pool(2);
      pool.map(announce_then_hang, std::vector<int>{20, 20}, 1);
    });
    parent.start();
    std::vector<pid_t> workers;
    for (int i = 0; i < 2; ++i)
      if (auto pid = started.get(20s)) workers.push_back(*pid);
    ASSERT_EQ(workers.size(), 2u);
    ::kill(parent.pid(), signal);  // the parent alone, not its process group
    parent.join();
    EXPECT_EQ(parent.exit_code(), -signal);
    for (pid_t worker : workers) {
      int status = 0;
      ASSERT_EQ(::waitpid(worker, &status, 0), worker);
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
          << "worker " << worker << " outlived its parent (status " << status << ")";
    }
    started_tasks = nullptr;
  }
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

TEST_F(PoolTest, MapOverAnInputWithoutASizeIsChunked) {
  // One task per worker process makes the number of chunks visible.
  Pool pool(PoolOptions{.processes = 2, .max_tasks_per_child = 1});
  auto odd = std::views::iota(0, 2000) | std::views::filter([](int n) { return n % 2 == 1; });
  std::vector<int> pids = pool.map(worker_pid, odd);
  EXPECT_EQ(pids.size(), 1000u);
  EXPECT_LE(std::set<int>(pids.begin(), pids.end()).size(), 8u);  // 4 chunks per worker
  std::vector<int> squares = pool.map(square, odd);
  ASSERT_EQ(squares.size(), 1000u);
  EXPECT_EQ(squares[0], 1);
  EXPECT_EQ(squares[999], 1999 * 1999);
}

TEST_F(PoolTest, RefusesANegativeProcessCount) {
  EXPECT_THROW(Pool(-3), Error);
  EXPECT_THROW(Pool(PoolOptions{.processes = -1}), Error);
}

TEST_F(PoolTest, SubmitDoesNotCopyItsArguments) {
  Pool pool(1);
  Counted big;
  big.payload.assign(100000, 7);
  Counted::copies = 0;
  EXPECT_EQ(pool.submit(payload_size, big).get(), 100000u);
  EXPECT_EQ(pool.submit(payload_size, std::move(big)).get(), 100000u);
  EXPECT_EQ(Counted::copies, 0);
}

TEST_F(PoolTest, TerminateWakesEveryKindOfWaiter) {
  Pool pool(2);
  auto single = pool.submit(hang, 20);
  auto whole_map = pool.map_async(hang, std::vector<int>{20, 20});
  std::vector<AsyncResult<int>> handles = {pool.submit(hang, 20), pool.submit(hang, 20)};
  auto stream = pool.imap(hang, std::vector<int>{20, 20});
  std::mutex mutex;
  std::vector<std::string> woken;
  auto waiter = [&](std::string name, auto wait) {
    return std::thread([&woken, &mutex, name, wait] {
      try {
        wait();
      } catch (const Error& error) {
        // A task failed by terminate(), or (a thread that started late) a
        // submission refused because the pool was terminated.
        if (std::string(error.what()).find("terminated") == std::string::npos) return;
        std::lock_guard lock(mutex);
        woken.push_back(name);
      }
    });
  };
  std::vector<std::thread> threads;
  threads.push_back(waiter("get", [&] { single.get(); }));
  threads.push_back(waiter("map", [&] { whole_map.get(); }));
  threads.push_back(waiter("as_completed", [&] {
    for (std::size_t i : as_completed(handles)) handles[i].get();
  }));
  threads.push_back(waiter("imap", [&] {
    for (int result : stream) (void)result;
  }));
  std::this_thread::sleep_for(200ms);  // into their waits, most likely; the test holds either way
  pool.terminate();
  for (auto& thread : threads) thread.join();
  std::sort(woken.begin(), woken.end());
  EXPECT_EQ(woken, (std::vector<std::string>{"as_completed", "get", "imap", "map"}));
}

TEST_F(PoolTest, TerminateInterruptsJoin) {
  Pool pool(1);
  auto slow = pool.submit(hang, 20);
  pool.close();
  std::thread joiner([&] { pool.join(); });
  std::this_thread::sleep_for(100ms);
  pool.terminate();
  joiner.join();
  EXPECT_EQ(failure_of(slow).reason(), TaskError::Reason::terminated);
}

// --- The rest of Python's API, and how the pool dispatches. ---

TEST_F(PoolTest, TasksMayReturnBool) {
  Pool pool(2);
  EXPECT_TRUE(pool.submit(is_even, 4).get());
  EXPECT_EQ(pool.map(is_even, std::vector<int>{1, 2, 3}), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(pool.submit(parities, std::vector<int>{2, 3}).get(), (std::vector<bool>{true, false}));
}

TEST_F(PoolTest, ImapYieldsResultsInInputOrder) {
  Pool pool(3);
  // Later inputs finish first; imap still yields them in input order.
  std::vector<int> delays = {40, 30, 20, 10, 0, 0, 0};
  std::vector<int> results;
  for (int result : pool.imap(sleep_ms, delays)) results.push_back(result);
  EXPECT_EQ(results, delays);
  std::vector<int> squares;
  for (int result : pool.imap(square, std::views::iota(0, 1000), 7)) squares.push_back(result);
  ASSERT_EQ(squares.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(squares[i], i * i);
  auto failing = pool.imap(fail_on_three, std::vector<int>{1, 3, 4});
  auto it = failing.begin();
  EXPECT_EQ(*it, 1);
  EXPECT_THROW(++it, TaskError);
}

TEST_F(PoolTest, MapAsyncReturnsAHandleForTheWholeMap) {
  Pool pool(2);
  auto squares = pool.map_async(square, std::vector<int>{1, 2, 3});
  auto sums = pool.starmap_async(add, std::vector<std::tuple<int, double>>{{1, 0.5}, {2, 0.5}});
  auto failing = pool.map_async(fail_on_three, std::vector<int>{1, 2, 3});
  EXPECT_EQ(squares.get(), (std::vector<int>{1, 4, 9}));
  EXPECT_EQ(sums.get(10s), (std::vector<double>{1.5, 2.5}));
  failing.wait();
  EXPECT_TRUE(failing.ready());
  EXPECT_FALSE(failing.successful());
  EXPECT_THROW(failing.get(), TaskError);
  auto nothing_to_do = pool.map_async(square, std::vector<int>{});
  EXPECT_TRUE(nothing_to_do.ready());
  EXPECT_EQ(nothing_to_do.get(), std::vector<int>{});
  pool.map_async(nothing, std::vector<int>{1, 2}).get();
}

TEST_F(PoolTest, AsCompletedYieldsEachHandleOnceAsItFinishes) {
  Pool pool(2);
  Marker release;
  std::vector<AsyncResult<bool>> handles;
  handles.push_back(pool.submit(wait_for_marker, release.path()));  // finishes last
  for (int i = 0; i < 5; ++i) handles.push_back(pool.submit(wait_for_marker, std::string("/")));
  std::vector<std::size_t> order;
  for (std::size_t index : as_completed(handles)) {
    order.push_back(index);
    EXPECT_TRUE(handles[index].get());
    if (order.size() == 5) release.set();  // the others are done: now the first may end
  }
  ASSERT_EQ(order.size(), 6u);
  EXPECT_EQ(order.back(), 0u);
  EXPECT_EQ(std::set<std::size_t>(order.begin(), order.end()).size(), 6u);
  std::vector<AsyncResult<int>> none;
  EXPECT_TRUE(as_completed(none).begin() == as_completed(none).end());
  std::vector<AsyncResult<int>> one = {pool.submit(square, 3)};
  EXPECT_EQ(pool.wait_any(one), 0u);
}

TEST_F(PoolTest, EveryTaskRunsExactlyOnceWhileTasksAreTakenBack) {
  // Long tasks among tiny ones: tiny tasks sent ahead to a worker busy with
  // a long one are taken back and run elsewhere, never twice, never lost.
  Pool pool(2);
  Marker log;
  std::vector<AsyncResult<int>> handles;
  for (int i = 0; i < 600; ++i)
    handles.push_back(pool.submit(record, log.path(), i, i % 60 == 0 ? 30 : 0));
  for (int i = 0; i < 600; ++i) EXPECT_EQ(handles[i].get(), i);
  std::map<int, int> runs;
  std::ifstream in(log.path());
  for (int n; in >> n;) runs[n]++;
  ASSERT_EQ(runs.size(), 600u);
  for (auto& [n, count] : runs) EXPECT_EQ(count, 1) << "task " << n;
}

TEST_F(PoolTest, JoinEndsWhileAForkedChildHoldsThePipes) {
  Pool pool(2);
  Marker release;
  // Started after the pool: it holds copies of the pool's descriptors.
  Process child([&] { wait_for_marker(release.path()); });
  child.start();
  EXPECT_EQ(pool.submit(square, 5).get(), 25);
  pool.close();
  pool.join();  // does not wait for the child to let go of the pipes
  EXPECT_TRUE(child.is_alive());
  release.set();
  child.join();
}

TEST_F(PoolTest, SpawnedWorkersAreFreshRunsOfTheProgram) {
  changed_before_the_pool = 7;
  Pool forked(PoolOptions{.processes = 1});
  Pool spawned(PoolOptions{.processes = 2, .initializer = configure, .start = StartMethod::spawn});
  EXPECT_EQ(forked.submit(read_changed, 0).get(), 7);   // a copy of this process
  EXPECT_EQ(spawned.submit(read_changed, 0).get(), 0);  // the program afresh
  EXPECT_EQ(spawned.submit(read_configured, 0).get(), 42);
  EXPECT_EQ(spawned.map(square, std::views::iota(0, 100)).back(), 99 * 99);
  EXPECT_EQ(spawned.submit(twice, 21).get(), 42);
  EXPECT_EQ(spawned.submit([](int n) { return n + 1; }, 1).get(), 2);
  changed_before_the_pool = 0;
  for (pid_t pid : spawned.worker_pids())
    EXPECT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe"),
              std::filesystem::read_symlink("/proc/self/exe"));
  // A lock another thread holds while workers start is not held in theirs.
  std::lock_guard lock(held_by_the_test);
  Pool started_while_locked(PoolOptions{.processes = 1, .start = StartMethod::spawn});
  EXPECT_EQ(started_while_locked.submit(lock_and_return, 3).get(), 3);
}

TEST_F(PoolTest, SpawnedWorkersRefuseAnInitializerTheyCannotFind) {
  int captured = 1;
  auto refused = [&] {
    Pool pool(PoolOptions{.processes = 1,
                          .initializer = [captured] { configured = captured; },
                          .start = StartMethod::spawn});
  };
  EXPECT_THROW(refused(), Error);
}

TEST_F(PoolTest, ACrashingSpawnedWorkerIsReplaced) {
  Pool pool(PoolOptions{.processes = 1, .start = StartMethod::spawn});
  auto crashed = pool.submit(crash, 0);
  EXPECT_EQ(failure_of(crashed).reason(), TaskError::Reason::worker_lost);
  EXPECT_EQ(pool.submit(square, 6).get(), 36);
}

}  // namespace
}  // namespace ferry
