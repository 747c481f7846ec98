#include "store/store.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

namespace ferry::store {
namespace {

JobRow job(std::uint64_t id, std::string state = "queued") {
  JobRow row;
  row.id = id;
  row.queue = id % 2 ? "default" : "gpu";
  row.priority = static_cast<int>(id % 3);
  row.spec = R"({"command":{"argv":["echo",")" + std::to_string(id) + R"("]}})";
  row.state = std::move(state);
  row.created_ms = 1000 + static_cast<std::int64_t>(id);
  row.ready_at_ms = 1000;
  return row;
}

AttemptRow attempt(std::uint64_t job_id, int number, std::string end = "running") {
  AttemptRow row;
  row.job_id = job_id;
  row.number = number;
  row.lease = job_id * 10 + static_cast<std::uint64_t>(number);
  row.worker = "w1";
  row.started_ms = 2000;
  row.end = std::move(end);
  return row;
}

// Writes and waits for the commit; returns the error (empty on success).
std::string write_and_wait(Store& store, Batch batch) {
  std::promise<std::string> done;
  store.write(std::move(batch), [&](const std::string& error) { done.set_value(error); });
  return done.get_future().get();
}

class TempFile {
 public:
  TempFile() {
    dir_ = std::filesystem::temp_directory_path() /
           ("ferry-store-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
  }
  ~TempFile() { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name = "ferry.db") const { return (dir_ / name).string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
};

// The contract both stores keep.
class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    store_ = GetParam() == "memory" ? open_memory_store() : open_sqlite_store(file_.path());
  }
  TempFile file_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreContract, KeepsJobsStatesAndAttempts) {
  Batch submit;
  submit.new_jobs = {job(1), job(2)};
  EXPECT_EQ(write_and_wait(*store_, submit), "");

  Batch run;
  run.state_changes = {{1, "running", 1000, ""}};
  run.attempts = {attempt(1, 1)};
  EXPECT_EQ(write_and_wait(*store_, run), "");

  Batch finish;
  AttemptRow ended = attempt(1, 1, "failed");
  finish.state_changes = {{2, "queued", 1000, "", 3}};  // a retried job keeps its retry base
  ended.ended_ms = 2500;
  ended.reason = "exit 3";
  ended.exit_code = 3;
  ended.stdout_tail = "partial output\n";
  ended.stderr_tail = std::string("binary\0bytes", 12);
  ended.result = R"({"x":1})";
  ended.cpu_us = 1234;
  ended.max_rss_kb = 5678;
  finish.attempts = {ended};
  finish.state_changes.push_back({1, "failed", 1000, "exit 3"});
  EXPECT_EQ(write_and_wait(*store_, finish), "");

  Snapshot snapshot = store_->load();
  ASSERT_EQ(snapshot.jobs.size(), 2u);
  JobRow expected = job(1, "failed");
  expected.reason = "exit 3";
  EXPECT_EQ(snapshot.jobs[0], expected);
  JobRow retried = job(2);
  retried.retry_base = 3;
  EXPECT_EQ(snapshot.jobs[1], retried);
  ASSERT_EQ(snapshot.attempts.size(), 1u);
  EXPECT_EQ(snapshot.attempts[0], ended);  // the update replaced the started row
}

TEST_P(StoreContract, ABadBatchChangesNothingAndSparesTheOthers) {
  EXPECT_EQ(write_and_wait(*store_, Batch{.new_jobs = {job(1)}}), "");
  // A batch that is half good: a new job, and a change to a job that does not exist.
  Batch bad;
  bad.new_jobs = {job(2)};
  bad.state_changes = {{99, "running", 0, ""}};
  EXPECT_NE(write_and_wait(*store_, bad), "");
  EXPECT_NE(write_and_wait(*store_, Batch{.new_jobs = {job(1)}}), "");  // duplicate id
  EXPECT_NE(write_and_wait(*store_, Batch{.attempts = {attempt(42, 1)}}), "");
  EXPECT_EQ(write_and_wait(*store_, Batch{.new_jobs = {job(3)}}), "");

  Snapshot snapshot = store_->load();
  ASSERT_EQ(snapshot.jobs.size(), 2u);
  EXPECT_EQ(snapshot.jobs[0].id, 1u);
  EXPECT_EQ(snapshot.jobs[1].id, 3u);
  EXPECT_TRUE(snapshot.attempts.empty());
}

TEST_P(StoreContract, GroupCommitBatchesConcurrentWriters) {
  constexpr int kThreads = 4, kPerThread = 300;
  std::atomic<int> acknowledged{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Batch batch;
        batch.new_jobs = {job(static_cast<std::uint64_t>(t * kPerThread + i + 1))};
        store_->write(std::move(batch),
                      [&](const std::string& error) { (error.empty() ? acknowledged : failed)++; });
      }
    });
  for (auto& writer : writers) writer.join();
  store_->flush();
  EXPECT_EQ(acknowledged, kThreads * kPerThread);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(store_->load().jobs.size(), static_cast<std::size_t>(kThreads * kPerThread));
  Stats stats = store_->stats();
  EXPECT_EQ(stats.batches, static_cast<std::uint64_t>(kThreads * kPerThread));
  // Writers outpace commits, so batches share transactions.
  EXPECT_LT(stats.transactions, stats.batches);
}

TEST_P(StoreContract, CallbacksRunOnlyAfterTheBatchIsVisible) {
  std::promise<std::size_t> seen;
  Batch batch;
  batch.new_jobs = {job(7)};
  store_->write(std::move(batch), [&](const std::string&) {
    if (GetParam() == "memory") {
      seen.set_value(1);
      return;
    }
    // Another connection sees the row: it was committed before this call.
    sqlite3* db = nullptr;
    sqlite3_open_v2(file_.path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM jobs WHERE id = 7", -1, &statement, nullptr);
    sqlite3_step(statement);
    seen.set_value(static_cast<std::size_t>(sqlite3_column_int(statement, 0)));
    sqlite3_finalize(statement);
    sqlite3_close(db);
  });
  EXPECT_EQ(seen.get_future().get(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContract, ::testing::Values("memory", "sqlite"),
                         [](const auto& test) { return test.param; });

TEST(SqliteStore, SurvivesReopening) {
  TempFile file;
  {
    auto store = open_sqlite_store(file.path());
    EXPECT_EQ(write_and_wait(*store, Batch{.new_jobs = {job(1), job(2)}}), "");
  }
  auto store = open_sqlite_store(file.path());
  EXPECT_EQ(store->load().jobs.size(), 2u);
  EXPECT_EQ(write_and_wait(*store, Batch{.new_jobs = {job(3)}}), "");
  EXPECT_EQ(store->load().jobs.size(), 3u);
}

TEST(SqliteStore, RefusesWhatItCannotUse) {
  TempFile file;
  std::ofstream(file.path("text.db")) << "this is not a database at all, just some text\n";
  EXPECT_THROW(open_sqlite_store(file.path("text.db")), std::runtime_error);

  sqlite3* db = nullptr;
  sqlite3_open(file.path("other.db").c_str(), &db);
  sqlite3_exec(db, "CREATE TABLE customers (name TEXT)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  try {
    open_sqlite_store(file.path("other.db"));
    FAIL() << "opened another program's database";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("not ferry's"), std::string::npos) << error.what();
  }

  { auto store = open_sqlite_store(file.path("newer.db")); }
  sqlite3_open(file.path("newer.db").c_str(), &db);
  sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  try {
    open_sqlite_store(file.path("newer.db"));
    FAIL() << "opened a newer schema";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("schema version 99, newer than this ferry's"),
              std::string::npos)
        << error.what();
  }
  EXPECT_THROW(open_sqlite_store(file.path("no/such/dir/ferry.db")), std::runtime_error);
}

// The message of the runtime_error `action` throws; "" when none.
template <class Action>
std::string error_of(Action action) {
  try {
    action();
  } catch (const std::runtime_error& error) {
    return error.what();
  }
  return "";
}

TEST(SqliteStore, ADamagedDatabaseIsRefusedNeverHalfLoaded) {
  TempFile file;
  {
    auto store = open_sqlite_store(file.path());
    Batch batch;
    for (std::uint64_t id = 1; id <= 5000; ++id) {
      batch.new_jobs.push_back(job(id));
      batch.new_jobs.back().spec += std::string(200, ' ');
    }
    ASSERT_EQ(write_and_wait(*store, std::move(batch)), "");
  }
  EXPECT_EQ(check_sqlite_database(file.path()), std::vector<std::string>{});
  {
    // A page in the middle of the jobs table becomes garbage.
    auto size = std::filesystem::file_size(file.path());
    std::fstream damage(file.path(), std::ios::in | std::ios::out | std::ios::binary);
    damage.seekp(static_cast<std::streamoff>(size / 2 / 4096 * 4096));
    std::string garbage(4096, '\x55');
    damage.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  std::string refused = error_of([&] { open_sqlite_store(file.path())->load(); });
  EXPECT_NE(refused.find("is damaged"), std::string::npos) << refused;
  EXPECT_NE(refused.find("ferry check"), std::string::npos) << refused;
  std::vector<std::string> problems = check_sqlite_database(file.path());
  EXPECT_FALSE(problems.empty());
}

TEST(SqliteStore, OneStoreAtATimeOnADatabase) {
  TempFile file;
  auto first = open_sqlite_store(file.path());
  std::string refused = error_of([&] { open_sqlite_store(file.path()); });
  EXPECT_NE(refused.find("is in use by another ferry server"), std::string::npos) << refused;
  first.reset();
  EXPECT_NE(open_sqlite_store(file.path()), nullptr);
}

TEST(SqliteStore, NewDatabasesGetTheCurrentSchemaVersion) {
  TempFile file;
  { auto store = open_sqlite_store(file.path()); }
  sqlite3* db = nullptr;
  sqlite3_open(file.path().c_str(), &db);
  sqlite3_stmt* statement = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &statement, nullptr);
  sqlite3_step(statement);
  EXPECT_EQ(sqlite3_column_int(statement, 0), schema_version());
  sqlite3_finalize(statement);
  sqlite3_close(db);
}

// A writer process is killed with SIGKILL while it writes as fast as it can;
// every batch it had been told was durable is in the database afterwards.
TEST(SqliteStore, NoAcknowledgedBatchIsLostWhenTheProcessIsKilled) {
  TempFile file;
  int acks[2];
  ASSERT_EQ(::pipe(acks), 0);
  pid_t writer = ::fork();
  ASSERT_GE(writer, 0);
  if (writer == 0) {
    ::close(acks[0]);
    auto store = open_sqlite_store(file.path());
    for (std::uint64_t id = 1; id < 1'000'000; ++id) {
      Batch batch;
      batch.new_jobs = {job(id)};
      batch.attempts = {attempt(id, 1)};
      store->write(std::move(batch), [&, id](const std::string& error) {
        if (error.empty()) [[maybe_unused]]
          auto n = ::write(acks[1], &id, sizeof id);
      });
      if (id % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ::_exit(0);
  }
  ::close(acks[1]);
  std::set<std::uint64_t> acknowledged;
  std::uint64_t id = 0;
  while (acknowledged.size() < 3000 && ::read(acks[0], &id, sizeof id) == sizeof id)
    acknowledged.insert(id);
  ::kill(writer, SIGKILL);
  while (::read(acks[0], &id, sizeof id) == sizeof id) acknowledged.insert(id);
  ::close(acks[0]);
  int status = 0;
  ::waitpid(writer, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_GE(acknowledged.size(), 3000u);

  auto store = open_sqlite_store(file.path());
  Snapshot snapshot = store->load();
  std::set<std::uint64_t> stored;
  for (const JobRow& row : snapshot.jobs) stored.insert(row.id);
  for (std::uint64_t acked : acknowledged) ASSERT_TRUE(stored.count(acked)) << "lost job " << acked;
  // Whole batches or nothing: every stored job has its attempt.
  EXPECT_EQ(snapshot.attempts.size(), snapshot.jobs.size());
}

}  // namespace
}  // namespace ferry::store
