// One suite, two backends: every test of StoreTest runs on SQLite and on
// PostgreSQL (a throwaway server of the test's own); what only one of them
// has (files, locks, backups, leadership) is tested by name below.
#include "store/store.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>
#include <tuple>

#include "store/election.hpp"
#include "throwaway_postgres.hpp"

namespace ferry::store {
namespace {

using testing::shared_postgres;
using testing::ThrowawayPostgres;

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

// A fresh database name for each test of this process.
std::string fresh_database() {
  static int counter = 0;
  return "t" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

// A PostgreSQL store that leads (so that it writes), as a server's does once
// elected.
std::unique_ptr<Store> open_leading(const std::string& url) {
  auto store = open_postgres_store(url);
  auto election = open_postgres_election(url, std::chrono::seconds(3));
  std::optional<std::uint64_t> epoch = election->try_lead("test", "");
  if (!epoch) {  // the last store of this database (a test reopening it) led
    election->resign(election->observe().epoch);
    epoch = election->try_lead("test", "");
  }
  store->lead(*epoch);
  return store;
}

enum class Backend { sqlite, postgres };

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::postgres) {
      if (auto why = ThrowawayPostgres::unavailable()) GTEST_SKIP() << *why;
      url_ = shared_postgres().create_database(fresh_database());
    }
    store_ = reopen();
  }
  // Another store on the same database, as a restarted server has.
  std::unique_ptr<Store> reopen() {
    store_.reset();
    return GetParam() == Backend::postgres ? open_leading(url_) : open_sqlite_store(file_.path());
  }
  // The number of rows `sql` counts, seen from a connection of its own.
  std::int64_t count_elsewhere(const std::string& sql) {
    if (GetParam() == Backend::postgres) return std::stoll(testing::query(url_, sql).at(0));
    sqlite3* db = nullptr;
    sqlite3_open_v2(file_.path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr);
    sqlite3_step(statement);
    std::int64_t count = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return count;
  }
  TempFile file_;
  std::string url_;
  std::unique_ptr<Store> store_;
};

std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::sqlite ? "sqlite" : "postgres";
}
INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values(Backend::sqlite, Backend::postgres),
                         backend_name);

JobRow ended(std::uint64_t id, std::string state, std::int64_t ended_ms) {
  JobRow row = job(id, std::move(state));
  row.ended_ms = ended_ms;
  return row;
}

TEST_P(StoreTest, KeepsJobsStatesAndAttempts) {
  Batch submit;
  submit.new_jobs = {job(1), job(2)};
  EXPECT_EQ(write_and_wait(*store_, submit), "");

  Batch finish;
  AttemptRow done = attempt(1, 1, "failed");
  done.ended_ms = 2500;
  done.reason = "exit 3";
  done.exit_code = 3;
  done.stdout_tail = "partial output\n";
  done.stderr_tail = "mended \xEF\xBF\xBD bytes, \"quoted\", back\\slash, NULL, {braces}";
  done.result = R"({"x":1})";
  done.cpu_us = 1234;
  done.max_rss_kb = 5678;
  finish.attempts = {done};
  finish.state_changes = {{2, "queued", 1000, "", 3},  // a retried job keeps its retry base
                          {1, "failed", 1000, "exit 3", 0, 2500}};
  EXPECT_EQ(write_and_wait(*store_, finish), "");

  // The server starts from the unfinished jobs; ended ones are read when asked for.
  Snapshot snapshot = store_->load();
  ASSERT_EQ(snapshot.jobs.size(), 1u);
  JobRow retried = job(2);
  retried.retry_base = 3;
  EXPECT_EQ(snapshot.jobs[0], retried);
  EXPECT_TRUE(snapshot.attempts.empty());
  EXPECT_EQ(snapshot.next_id, 3u);
  std::optional<StoredJob> failed = store_->read_job(1);
  ASSERT_TRUE(failed);
  JobRow expected = ended(1, "failed", 2500);
  expected.reason = "exit 3";
  EXPECT_EQ(failed->row, expected);
  ASSERT_EQ(failed->attempts.size(), 1u);
  EXPECT_EQ(failed->attempts[0], done);
  EXPECT_FALSE(store_->read_job(3));
}

TEST_P(StoreTest, ABadBatchChangesNothingAndSparesTheOthers) {
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

TEST_P(StoreTest, GroupCommitBatchesConcurrentWriters) {
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

TEST_P(StoreTest, CallbacksRunOnlyAfterTheBatchIsVisible) {
  std::promise<std::int64_t> seen;
  Batch batch;
  batch.new_jobs = {job(7)};
  store_->write(std::move(batch), [&](const std::string&) {
    // Another connection sees the row: it was committed before this call.
    seen.set_value(count_elsewhere("SELECT count(*) FROM jobs WHERE id = 7"));
  });
  EXPECT_EQ(seen.get_future().get(), 1);
  // The reading connection sees it too, at once.
  EXPECT_TRUE(store_->read_job(7));
}

TEST_P(StoreTest, CountsEveryKeptJobByQueueAndState) {
  ASSERT_EQ(write_and_wait(*store_, Batch{.new_jobs = {job(1), job(2), ended(3, "succeeded", 5),
                                                       ended(4, "failed", 5), job(5)}}),
            "");
  std::vector<Count> counts = store_->load().counts;
  std::sort(counts.begin(), counts.end(), [](const Count& a, const Count& b) {
    return std::tie(a.queue, a.state) < std::tie(b.queue, b.state);
  });
  // Odd ids are in "default", even ones in "gpu".
  EXPECT_EQ(counts, (std::vector<Count>{{"default", "queued", 2},
                                        {"default", "succeeded", 1},
                                        {"gpu", "failed", 1},
                                        {"gpu", "queued", 1}}));
}

TEST_P(StoreTest, ListsKeptJobsNewestFirstWithFiltersAndACursor) {
  Batch batch;
  for (std::uint64_t id = 1; id <= 30; ++id)
    batch.new_jobs.push_back(id % 3 == 0 ? ended(id, "failed", 9) : job(id));
  batch.new_jobs[9].spec = R"({"command":{"argv":["needle"]},"name":"findme"})";  // job 10
  ASSERT_EQ(write_and_wait(*store_, batch), "");
  ASSERT_EQ(write_and_wait(*store_, Batch{.attempts = {attempt(30, 1, "failed")}}), "");

  ListPage newest = store_->list_jobs({.limit = 4});
  ASSERT_EQ(newest.jobs.size(), 4u);
  EXPECT_EQ(newest.jobs[0].row.id, 30u);
  EXPECT_EQ(newest.jobs[0].attempts, 1u);
  EXPECT_EQ(newest.next_before, 27u);
  ListPage older = store_->list_jobs({.before = newest.next_before, .limit = 100});
  EXPECT_EQ(older.jobs.size(), 26u);
  EXPECT_EQ(older.next_before, 0u);

  ListPage failed = store_->list_jobs({.state = "failed", .limit = 3});
  ASSERT_EQ(failed.jobs.size(), 3u);
  EXPECT_EQ(failed.jobs[2].row.id, 24u);
  ListPage gpu_failed = store_->list_jobs({.state = "failed", .queue = "gpu", .limit = 100});
  EXPECT_EQ(gpu_failed.jobs.size(), 5u);  // 6, 12, 18, 24, 30
  ListPage found = store_->list_jobs({.text = "findme", .limit = 100});
  ASSERT_EQ(found.jobs.size(), 1u);
  EXPECT_EQ(found.jobs[0].row.id, 10u);
  // A search by text looks at a bounded range of ids per page.
  ListPage bounded = store_->list_jobs({.text = "findme", .limit = 100, .max_scan = 5});
  EXPECT_TRUE(bounded.jobs.empty());
  EXPECT_EQ(bounded.next_before, 26u);  // ids 26 to 30 were looked at
}

TEST_P(StoreTest, KeysAreUniqueAmongKeptJobs) {
  JobRow keyed = job(1);
  keyed.key = "flow-17";
  ASSERT_EQ(write_and_wait(*store_, Batch{.new_jobs = {keyed, job(2)}}), "");
  EXPECT_EQ(store_->find_key("flow-17"), 1u);
  EXPECT_FALSE(store_->find_key("flow-18"));
  JobRow again = job(3);
  again.key = "flow-17";
  EXPECT_NE(write_and_wait(*store_, Batch{.new_jobs = {again}}), "");
  EXPECT_EQ(store_->read_job(1)->row.key, "flow-17");
}

TEST_P(StoreTest, RetentionRemovesExactlyWhatItShould) {
  JobRow forever = ended(5, "succeeded", 100);
  forever.keep_ms = 0;
  JobRow long_kept = ended(6, "failed", 100);
  long_kept.keep_ms = 1'000'000;
  JobRow short_kept = ended(7, "cancelled", 5000);
  short_kept.keep_ms = 10;
  JobRow keyed = ended(4, "succeeded", 200);
  keyed.key = "once";
  ASSERT_EQ(write_and_wait(
                *store_, Batch{.new_jobs = {ended(1, "succeeded", 100), ended(2, "failed", 300),
                                            job(3), keyed, forever, long_kept, short_kept, job(8)},
                               .attempts = {attempt(1, 1, "succeeded")}}),
            "");
  auto removed = std::make_shared<std::vector<Count>>();
  // Ended jobs without a keep of their own go when they ended before 250;
  // those with one, when it ran out by 6000.
  Batch expire{.expiry = Expiry{.now_ms = 6000, .default_until_ms = 250}, .expired = removed};
  ASSERT_EQ(write_and_wait(*store_, std::move(expire)), "");
  std::sort(removed->begin(), removed->end(), [](const Count& a, const Count& b) {
    return std::tie(a.queue, a.state) < std::tie(b.queue, b.state);
  });
  EXPECT_EQ(*removed, (std::vector<Count>{{"default", "cancelled", 1},
                                          {"default", "succeeded", 1},
                                          {"gpu", "succeeded", 1}}));
  for (std::uint64_t gone : {1, 4, 7}) EXPECT_FALSE(store_->read_job(gone)) << gone;
  for (std::uint64_t kept : {2, 3, 5, 6, 8}) EXPECT_TRUE(store_->read_job(kept)) << kept;
  EXPECT_FALSE(store_->find_key("once"));  // the key is free again
  // At most `limit` at a time; ids are never reused, even the highest's.
  removed->clear();
  ASSERT_EQ(write_and_wait(
                *store_,
                Batch{.expiry = Expiry{.now_ms = 1'000'200, .default_until_ms = 1000, .limit = 1},
                      .expired = removed}),
            "");
  EXPECT_EQ(removed->size(), 1u);
  EXPECT_FALSE(store_->read_job(2));
  EXPECT_TRUE(store_->read_job(6));
  ASSERT_EQ(write_and_wait(*store_, Batch{.new_jobs = {ended(9, "failed", 10)}}), "");
  ASSERT_EQ(write_and_wait(*store_, Batch{.expiry = Expiry{.now_ms = 20, .default_until_ms = 20}}),
            "");
  EXPECT_FALSE(store_->read_job(9));
  EXPECT_EQ(store_->load().next_id, 10u);
}

// A job of a flow, waiting for `after`.
JobRow in_flow(std::uint64_t id, std::uint64_t flow, std::vector<std::uint64_t> after = {}) {
  JobRow row = job(id, after.empty() ? "queued" : "waiting");
  row.flow = flow;
  row.after = std::move(after);
  return row;
}

TEST_P(StoreTest, KeepsFlowsTheirJobsAndWhoWaitsForWhom) {
  FlowRow build{
      .id = 1, .name = "build", .key = "nightly-1", .created_ms = 42, .first_job = 1, .jobs = 3};
  FlowRow other{.id = 2, .name = "other", .created_ms = 43, .first_job = 4, .jobs = 1};
  ASSERT_EQ(write_and_wait(*store_, Batch{.new_flows = {build, other},
                                          .new_jobs = {in_flow(1, 1), in_flow(2, 1, {1}),
                                                       in_flow(3, 1, {1, 2}), in_flow(4, 2)}}),
            "");
  EXPECT_EQ(store_->read_flow(1), build);
  EXPECT_EQ(store_->read_flow(2), other);
  EXPECT_FALSE(store_->read_flow(3));
  EXPECT_EQ(store_->find_flow_key("nightly-1"), 1u);
  EXPECT_FALSE(store_->find_flow_key("nightly-2"));
  EXPECT_EQ(store_->list_flows(0, 10), (std::vector<FlowRow>{other, build}));
  EXPECT_EQ(store_->list_flows(2, 10), (std::vector<FlowRow>{build}));
  EXPECT_EQ(store_->list_flows(0, 1), (std::vector<FlowRow>{other}));
  EXPECT_EQ(store_->dependants(1), (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(store_->dependants(2), (std::vector<std::uint64_t>{3}));
  EXPECT_TRUE(store_->dependants(3).empty());

  // A flow's key is unique among kept flows; a bad flow spares the batch nothing.
  FlowRow again{
      .id = 3, .name = "again", .key = "nightly-1", .created_ms = 44, .first_job = 5, .jobs = 1};
  EXPECT_NE(write_and_wait(*store_, Batch{.new_flows = {again}, .new_jobs = {in_flow(5, 3)}}), "");
  EXPECT_FALSE(store_->read_job(5));

  // Skipped: cancelled because a dependency failed; a retry clears it.
  ASSERT_EQ(
      write_and_wait(*store_, Batch{.state_changes = {{1, "failed", 1000, "exit 1", 0, 50},
                                                      {2, "cancelled", 1000, "", 0, 50, true}}}),
      "");
  std::optional<StoredJob> skipped = store_->read_job(2);
  ASSERT_TRUE(skipped);
  EXPECT_TRUE(skipped->row.skipped);
  EXPECT_EQ(skipped->row.flow, 1u);
  EXPECT_TRUE(skipped->row.after.empty());  // dependencies are read through dependants()
  ASSERT_EQ(write_and_wait(*store_, Batch{.state_changes = {{2, "waiting", 1000, ""}}}), "");
  EXPECT_FALSE(store_->read_job(2)->row.skipped);

  // All of it survives a restart; new flow ids go above the highest.
  store_ = reopen();
  Snapshot snapshot = store_->load();
  EXPECT_EQ(snapshot.next_flow, 3u);
  ASSERT_EQ(snapshot.jobs.size(), 3u);  // 2, 3 and 4: job 1 ended
  EXPECT_EQ(snapshot.jobs[0].flow, 1u);
  EXPECT_EQ(store_->read_flow(1), build);
  EXPECT_EQ(store_->dependants(1), (std::vector<std::uint64_t>{2, 3}));
}

TEST_P(StoreTest, RetentionRemovesAFlowWithTheLastOfItsJobs) {
  FlowRow pair{.id = 1, .name = "pair", .key = "p", .created_ms = 1, .first_job = 1, .jobs = 2};
  FlowRow single{.id = 2, .name = "single", .key = "s", .created_ms = 1, .first_job = 3, .jobs = 1};
  JobRow first = ended(1, "succeeded", 100), second = ended(2, "succeeded", 300),
         third = ended(3, "failed", 100);
  for (JobRow* row : {&first, &second}) row->flow = 1;
  second.after = {1};
  third.flow = 2;
  ASSERT_EQ(write_and_wait(*store_,
                           Batch{.new_flows = {pair, single}, .new_jobs = {first, second, third}}),
            "");
  // Jobs 1 and 3 go: flow 2 with its only job, flow 1 stays for job 2.
  ASSERT_EQ(
      write_and_wait(*store_, Batch{.expiry = Expiry{.now_ms = 1000, .default_until_ms = 200}}),
      "");
  EXPECT_FALSE(store_->read_job(1));
  EXPECT_EQ(store_->read_flow(1), pair);
  EXPECT_FALSE(store_->read_flow(2));
  EXPECT_FALSE(store_->find_flow_key("s"));
  EXPECT_EQ(store_->find_flow_key("p"), 1u);
  EXPECT_EQ(store_->dependants(1), (std::vector<std::uint64_t>{2}));  // a dependant's record
  // Job 2 goes, with its dependencies, and flow 1 with it.
  ASSERT_EQ(
      write_and_wait(*store_, Batch{.expiry = Expiry{.now_ms = 1000, .default_until_ms = 400}}),
      "");
  EXPECT_FALSE(store_->read_flow(1));
  EXPECT_TRUE(store_->list_flows(0, 10).empty());
  EXPECT_TRUE(store_->dependants(1).empty());
  EXPECT_EQ(count_elsewhere("SELECT count(*) FROM dependencies"), 0);
  // Flow ids are never reused.
  store_ = reopen();
  EXPECT_EQ(store_->load().next_flow, 3u);
}

TEST_P(StoreTest, FindsTheFirstMissingId) {
  ASSERT_EQ(write_and_wait(*store_, Batch{.new_jobs = {job(2), job(3), job(5)}}), "");
  EXPECT_EQ(store_->first_missing({2, 3, 5}), std::nullopt);
  EXPECT_EQ(store_->first_missing({2, 4, 5}), 4u);
  EXPECT_EQ(store_->first_missing({1}), 1u);
  EXPECT_EQ(store_->first_missing({5, 6}), 6u);
  EXPECT_EQ(store_->first_missing({}), std::nullopt);
}

TEST_P(StoreTest, ABackupIsAConsistentCopyWhileWritersGoOn) {
  if (GetParam() == Backend::postgres) {
    // pg_dump's work: refused, saying so.
    try {
      store_->backup(file_.path("copy.db"));
      FAIL() << "a PostgreSQL store made a backup";
    } catch (const Unsupported& refused) {
      EXPECT_NE(std::string(refused.what()).find("pg_dump"), std::string::npos) << refused.what();
    }
    return;
  }
  std::atomic<std::uint64_t> acknowledged{0};
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (std::uint64_t id = 1; writing && id < 200'000; ++id) {
      Batch batch;
      batch.new_jobs = {job(id)};
      store_->write(std::move(batch), [&, id](const std::string& error) {
        if (error.empty()) acknowledged = id;
      });
      if (id % 100 == 0) store_->flush();
    }
  });
  while (acknowledged < 2000) std::this_thread::yield();
  std::uint64_t before = acknowledged;
  store_->backup(file_.path("copy.db"));
  writing = false;
  writer.join();
  EXPECT_THROW(store_->backup(file_.path("copy.db")), std::runtime_error);  // never overwrites
  EXPECT_EQ(check_sqlite_database(file_.path("copy.db")), std::vector<std::string>{});
  store_.reset();
  auto restored = open_sqlite_store(file_.path("copy.db"));
  Snapshot snapshot = restored->load();
  ASSERT_GE(snapshot.jobs.size(), before);
  for (std::uint64_t id = 1; id <= before; ++id) ASSERT_EQ(snapshot.jobs[id - 1].id, id);
}

TEST(SqliteStore, MigratesADatabaseOfSchemaVersion1) {
  TempFile file;
  std::filesystem::copy_file(FERRY_SOURCE_DIR "/tests/fixtures/schema-v1.db", file.path());
  auto store = open_sqlite_store(file.path());
  Snapshot snapshot = store->load();
  ASSERT_EQ(snapshot.jobs.size(), 1u);  // job 2 is queued; 1 succeeded, 3 was cancelled
  EXPECT_EQ(snapshot.jobs[0].id, 2u);
  EXPECT_EQ(snapshot.jobs[0].queue, "q2");
  EXPECT_EQ(snapshot.next_id, 4u);
  EXPECT_GE(snapshot.epoch, 1u);
  std::optional<StoredJob> succeeded = store->read_job(1);
  ASSERT_TRUE(succeeded);
  EXPECT_EQ(succeeded->row.state, "succeeded");
  EXPECT_GT(succeeded->row.ended_ms, 0);  // taken from its attempt
  ASSERT_EQ(succeeded->attempts.size(), 1u);
  EXPECT_EQ(succeeded->attempts[0].stdout_tail, "one\n");
  EXPECT_EQ(store->read_job(3)->row.reason, "cancelled by request");
  JobRow keyed = job(4);
  keyed.key = "new";
  EXPECT_EQ(write_and_wait(*store, Batch{.new_jobs = {keyed}}), "");
}

TEST_P(StoreTest, KeepsSchedulesAcrossReopening) {
  ScheduleRow nightly{"nightly", R"({"cron":"0 2 * * *"})", false, 1000, 10};
  ScheduleRow hourly{"hourly", R"({"cron":"@hourly"})", false, 2000, 20};
  EXPECT_EQ(write_and_wait(*store_, Batch{.schedules = {nightly, hourly}}), "");
  nightly.next_ms = 5000;  // fired: replaced in place, with the jobs it made
  nightly.paused = true;
  EXPECT_EQ(write_and_wait(*store_, Batch{.new_jobs = {job(1)}, .schedules = {nightly}}), "");
  store_ = reopen();
  EXPECT_EQ(store_->load().schedules, (std::vector<ScheduleRow>{hourly, nightly}));
  EXPECT_EQ(write_and_wait(*store_, Batch{.removed_schedules = {"hourly", "unknown"}}), "");
  EXPECT_EQ(store_->load().schedules, std::vector<ScheduleRow>{nightly});
}

TEST_P(StoreTest, KeepsQueueSettingsAcrossReopening) {
  QueueRow paused{"mail", R"({"paused":true})"};
  QueueRow limited{"api", R"({"max_running":4})"};
  EXPECT_EQ(write_and_wait(*store_, Batch{.queues = {paused, limited}}), "");
  limited.settings = R"({"max_running":8})";
  EXPECT_EQ(write_and_wait(*store_, Batch{.new_jobs = {job(1)}, .queues = {limited}}), "");
  store_ = reopen();
  EXPECT_EQ(store_->load().queues, (std::vector<QueueRow>{limited, paused}));
}

TEST_P(StoreTest, SurvivesReopening) {
  EXPECT_EQ(write_and_wait(*store_, Batch{.new_jobs = {job(1), job(2)}, .epoch = 4}), "");
  store_ = reopen();
  Snapshot snapshot = store_->load();
  EXPECT_EQ(snapshot.jobs.size(), 2u);
  EXPECT_EQ(snapshot.epoch, 4u);
  EXPECT_EQ(write_and_wait(*store_, Batch{.new_jobs = {job(3)}}), "");
  EXPECT_EQ(store_->load().jobs.size(), 3u);
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

TEST_P(StoreTest, NewDatabasesGetTheCurrentSchemaVersion) {
  EXPECT_EQ(count_elsewhere(GetParam() == Backend::postgres ? "SELECT version FROM ferry_schema"
                                                            : "PRAGMA user_version"),
            schema_version());
}

// A database with tables of ferry's names but not made by ferry, and one
// made by a newer ferry, are refused and left as they were.
TEST_P(StoreTest, RefusesAnotherProgramsDatabaseAndANewerSchema) {
  store_.reset();
  auto open_other = [&](const std::string& setup) -> std::string {
    if (GetParam() == Backend::postgres) {
      std::string url = shared_postgres().create_database(fresh_database());
      testing::query(url, setup);
      try {
        open_leading(url);
      } catch (const std::runtime_error& error) {
        return error.what();
      }
      return "";
    }
    std::string path = file_.path(fresh_database() + ".db");
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(db, setup.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(db);
    try {
      open_sqlite_store(path);
    } catch (const std::runtime_error& error) {
      return error.what();
    }
    return "";
  };
  std::string other = open_other("CREATE TABLE jobs (name TEXT)");
  EXPECT_NE(other.find("not ferry's"), std::string::npos) << other;
  std::string newer =
      open_other(GetParam() == Backend::postgres
                     ? "CREATE TABLE ferry_schema (version integer); INSERT INTO ferry_schema "
                       "VALUES (99)"
                     : "CREATE TABLE t (x); PRAGMA user_version = 99");
  EXPECT_NE(newer.find("schema version 99, newer than this ferry's"), std::string::npos) << newer;
}

// A writer process is killed with SIGKILL while it writes as fast as it can;
// every batch it had been told was durable is in the database afterwards.
TEST_P(StoreTest, NoAcknowledgedBatchIsLostWhenTheProcessIsKilled) {
  store_.reset();
  int acks[2];
  ASSERT_EQ(::pipe(acks), 0);
  pid_t writer = ::fork();
  ASSERT_GE(writer, 0);
  if (writer == 0) {
    ::close(acks[0]);
    auto store = reopen();
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
    // Not before every batch committed: on a busy machine the writes are
    // queued long before 3000 of them are, and the killing must find it alive.
    store->flush();
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

  auto store = reopen();
  Snapshot snapshot = store->load();
  std::set<std::uint64_t> stored;
  for (const JobRow& row : snapshot.jobs) stored.insert(row.id);
  for (std::uint64_t acked : acknowledged) ASSERT_TRUE(stored.count(acked)) << "lost job " << acked;
  // Whole batches or nothing: every stored job has its attempt.
  EXPECT_EQ(snapshot.attempts.size(), snapshot.jobs.size());
}

}  // namespace
}  // namespace ferry::store
