// What only the PostgreSQL store has: servers sharing one database, the
// election of one of them, and the fence that keeps every other one from
// writing. (What both stores share is tested in store_test.cpp.)
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <thread>

#include "store/election.hpp"
#include "store/pg_connection.hpp"
#include "store/postgres_schema.hpp"
#include "store/store.hpp"
#include "throwaway_postgres.hpp"

namespace ferry::store {
namespace {

using namespace std::chrono_literals;
using testing::query;
using testing::shared_postgres;

std::string write_and_wait(Store& store, Batch batch) {
  std::promise<std::string> done;
  store.write(std::move(batch), [&](const std::string& error) { done.set_value(error); });
  return done.get_future().get();
}

JobRow job(std::uint64_t id) {
  JobRow row;
  row.id = id;
  row.spec = "{}";
  row.state = "queued";
  return row;
}

// Waits until `condition` holds, at most `seconds`; false if it never did.
bool eventually(const std::function<bool()>& condition, double seconds = 20) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = testing::ThrowawayPostgres::unavailable()) GTEST_SKIP() << *why;
    static int counter = 0;
    url_ = shared_postgres().create_database("p" + std::to_string(::getpid()) + "_" +
                                             std::to_string(++counter));
  }
  std::vector<std::string> ids() { return query(url_, "SELECT id FROM jobs ORDER BY id"); }
  std::string url_;
};

TEST_F(PostgresStoreTest, OnlyTheLeaderWritesAndATakenOverOneNeverAgain) {
  auto a = open_postgres_store(url_);
  auto b = open_postgres_store(url_);
  auto election_a = open_postgres_election(url_, 60s);
  auto election_b = open_postgres_election(url_, 60s);
  EXPECT_NE(write_and_wait(*a, Batch{.new_jobs = {job(1)}}), "") << "wrote before leading";

  std::optional<std::uint64_t> epoch_a = election_a->try_lead("a", "http://a:7077");
  ASSERT_TRUE(epoch_a);
  a->lead(*epoch_a);
  EXPECT_EQ(write_and_wait(*a, Batch{.new_jobs = {job(1)}}), "");
  // While a's lease runs and its session lives, nobody else leads.
  EXPECT_FALSE(election_b->try_lead("b", "http://b:7077"));
  Election::View seen = election_b->observe();
  EXPECT_EQ(seen.epoch, *epoch_a);
  EXPECT_EQ(seen.holder, "a");
  EXPECT_EQ(seen.url, "http://a:7077");
  EXPECT_FALSE(seen.expired);

  // a's session ends, as when its server is killed: b takes over without
  // waiting for the (minute-long) lease, as soon as the database has ended
  // that session (its backend exits a little after the client is gone).
  election_a.reset();
  std::optional<std::uint64_t> epoch_b;
  for (int tries = 0; !epoch_b && tries < 200; ++tries) {
    if (tries > 0) std::this_thread::sleep_for(50ms);
    epoch_b = election_b->try_lead("b", "http://b:7077");
  }
  ASSERT_TRUE(epoch_b);
  EXPECT_EQ(*epoch_b, *epoch_a + 1);
  b->lead(*epoch_b);

  // a never commits again: this write and every later one fail, whole.
  std::string refused = write_and_wait(*a, Batch{.new_jobs = {job(2)}, .epoch = 99});
  EXPECT_NE(refused.find("no longer leads"), std::string::npos) << refused;
  EXPECT_NE(write_and_wait(*a, Batch{.new_jobs = {job(3)}}), "");
  EXPECT_EQ(write_and_wait(*b, Batch{.new_jobs = {job(4)}}), "");
  EXPECT_EQ(ids(), (std::vector<std::string>{"1", "4"}));
  EXPECT_EQ(query(url_, "SELECT count(*) FROM server WHERE name = 'epoch'"),
            std::vector<std::string>{"0"});
}

TEST_F(PostgresStoreTest, AnExpiredLeaseIsTakenOverAndItsHolderKnowsAtItsNextRenewal) {
  auto leader = open_postgres_election(url_, 300ms);
  auto standby = open_postgres_election(url_, 300ms);
  std::optional<std::uint64_t> first = leader->try_lead("a", "http://a:7077");
  ASSERT_TRUE(first);
  // The leader's session lives on, but it stops renewing (paused, cut off).
  std::optional<std::uint64_t> second;
  ASSERT_TRUE(
      eventually([&] { return (second = standby->try_lead("b", "http://b:7077")).has_value(); }));
  EXPECT_EQ(*second, *first + 1);
  EXPECT_FALSE(leader->renew(*first));
  EXPECT_TRUE(standby->renew(*second));
  EXPECT_EQ(standby->observe().holder, "b");
}

TEST_F(PostgresStoreTest, AResignedLeaderIsReplacedAtOnce) {
  auto leader = open_postgres_election(url_, 60s);
  auto standby = open_postgres_election(url_, 60s);
  std::optional<std::uint64_t> first = leader->try_lead("a", "http://a:7077");
  ASSERT_TRUE(first);
  EXPECT_FALSE(standby->try_lead("b", "http://b:7077"));
  leader->resign(*first);
  EXPECT_TRUE(standby->observe().expired);
  EXPECT_EQ(standby->try_lead("b", "http://b:7077"), *first + 1);
}

// The fence in SQL: a transaction of the old epoch that began before the
// takeover holds it up until it ends (and so commits before it); one that
// begins after finds another epoch.
TEST_F(PostgresStoreTest, ATakeoverWaitsForTheOldEpochsTransactionsAndNoneCommitsAfterIt) {
  auto leader = open_postgres_election(url_, 300ms);
  auto standby = open_postgres_election(url_, 300ms);
  auto store = open_postgres_store(url_);
  std::optional<std::uint64_t> old_epoch = leader->try_lead("a", "");
  ASSERT_TRUE(old_epoch);
  store->lead(*old_epoch);  // migrates: the tables exist
  pg::Params fence = pg::Params().add(static_cast<std::int64_t>(*old_epoch));

  pg::Connection in_flight(url_, 5s);
  in_flight.run("BEGIN");
  ASSERT_EQ(in_flight.run(postgres::kFence, fence).rows(), 1);
  in_flight.run("INSERT INTO server VALUES ('before', 1)");
  ASSERT_TRUE(eventually([&] { return standby->observe().expired; }));
  // The lease ran out, but the transaction holds the row: no takeover yet.
  EXPECT_THROW(standby->try_lead("b", ""), std::runtime_error);
  EXPECT_EQ(standby->observe().epoch, *old_epoch);
  in_flight.run("COMMIT");

  std::optional<std::uint64_t> new_epoch;
  ASSERT_TRUE(eventually([&] { return (new_epoch = standby->try_lead("b", "")).has_value(); }));
  pg::Connection late(url_, 5s);
  late.run("BEGIN");
  EXPECT_EQ(late.run(postgres::kFence, fence).rows(), 0) << "the old epoch passed the fence";
  late.run("ROLLBACK");
  EXPECT_EQ(query(url_, "SELECT name FROM server WHERE name = 'before'"),
            std::vector<std::string>{"before"});
}

// A leader paused in the middle of a transaction (SIGSTOP, a long GC-like
// stall) holds the leadership row; the database ends that transaction after
// a lease, the takeover goes through, and the paused one commits nothing.
TEST_F(PostgresStoreTest, APausedLeadersTransactionCannotHoldUpATakeover) {
  auto leader = open_postgres_election(url_, 300ms);
  auto standby = open_postgres_election(url_, 300ms);
  auto store = open_postgres_store(url_);
  std::optional<std::uint64_t> old_epoch = leader->try_lead("a", "");
  ASSERT_TRUE(old_epoch);
  store->lead(*old_epoch);
  // As the store's writer sets it up, with this test's lease.
  pg::Connection paused(url_, 5s, "SET idle_in_transaction_session_timeout = '300ms'");
  paused.run("BEGIN");
  ASSERT_EQ(
      paused.run(postgres::kFence, pg::Params().add(static_cast<std::int64_t>(*old_epoch))).rows(),
      1);
  paused.run("INSERT INTO server VALUES ('paused', 1)");
  std::optional<std::uint64_t> new_epoch;
  ASSERT_TRUE(eventually([&] {
    try {
      return bool(new_epoch = standby->try_lead("b", ""));
    } catch (const std::runtime_error&) {
      return false;  // the row is still held: try again
    }
  }));
  EXPECT_EQ(*new_epoch, *old_epoch + 1);
  EXPECT_THROW(paused.run("COMMIT"), pg::Error);
  EXPECT_TRUE(query(url_, "SELECT name FROM server WHERE name = 'paused'").empty());
}

TEST_F(PostgresStoreTest, MigratesADatabaseOfSchemaVersion1) {
  // A database as a server of schema version 1 left it.
  query(url_, postgres::kBootstrap);
  query(url_, postgres::kMigrations[0]);
  query(url_,
        "UPDATE ferry_schema SET version = 1;"
        "INSERT INTO jobs (id, queue, priority, spec, state, created_ms, ready_at_ms) VALUES "
        "(1, 'q1', 0, '{}', 'succeeded', 100, 100), (2, 'q2', 0, '{}', 'queued', 200, 200);"
        "INSERT INTO attempts VALUES (1, 1, 7, 'w', 100, 150, 'succeeded', 'exit 0', 0, NULL, "
        "'one', '', '', 1, 1);"
        "INSERT INTO server VALUES ('epoch', 3)");
  auto store = open_postgres_store(url_);
  auto election = open_postgres_election(url_, 60s);
  store->lead(*election->try_lead("a", ""));
  EXPECT_EQ(query(url_, "SELECT version FROM ferry_schema"),
            std::vector<std::string>{std::to_string(schema_version())});
  Snapshot snapshot = store->load();
  ASSERT_EQ(snapshot.jobs.size(), 1u);
  EXPECT_EQ(snapshot.jobs[0].queue, "q2");
  EXPECT_EQ(snapshot.epoch, 3u);
  EXPECT_EQ(snapshot.next_id, 3u);
  std::optional<StoredJob> ended = store->read_job(1);
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->row.ended_ms, 150);  // from its last attempt
  ASSERT_EQ(ended->attempts.size(), 1u);
  EXPECT_EQ(ended->attempts[0].stdout_tail, "one");
  JobRow keyed = job(3);
  keyed.key = "new";
  EXPECT_EQ(write_and_wait(*store, Batch{.new_jobs = {keyed}}), "");
  EXPECT_EQ(store->find_key("new"), 3u);
}

// A server may start before its database (a standby waits for it): the
// store opens, and leading is what fails, naming the address, never the
// password.
TEST_F(PostgresStoreTest, AnUnreachableDatabaseIsNamedWithoutItsPassword) {
  std::string unreachable = "postgresql://ferry:secret@127.0.0.1:1/nothing";
  auto store = open_postgres_store(unreachable);
  auto election = open_postgres_election(unreachable, 1s);
  for (std::function<void()> use : std::vector<std::function<void()>>{
           [&] { store->lead(1); }, [&] { election->try_lead("a", ""); }, [&] { store->load(); }}) {
    try {
      use();
      ADD_FAILURE() << "used a database that is not there";
    } catch (const std::runtime_error& error) {
      std::string message = error.what();
      EXPECT_NE(message.find("127.0.0.1:1"), std::string::npos) << message;
      EXPECT_EQ(message.find("secret"), std::string::npos) << message;
    }
  }
  EXPECT_NE(write_and_wait(*store, Batch{.new_jobs = {job(1)}}), "");
}

}  // namespace
}  // namespace ferry::store
