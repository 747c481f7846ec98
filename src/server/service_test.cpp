#include "server/service.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

#include "store/election.hpp"
#include "throwaway_postgres.hpp"

namespace ferry::server {
namespace {

using namespace std::chrono_literals;

enum class Backend { sqlite, postgres };

// A service on a real store, with a clock the test moves and a `post` queue
// the test runs: every interleaving is the test's choice. Every test runs on
// both stores: an SQLite file, and a PostgreSQL database (a throwaway
// server's) that this service leads.
class ServiceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    static int tests = 0;
    ++tests;
    if (GetParam() == Backend::postgres) {
      if (auto why = ferry::testing::ThrowawayPostgres::unavailable()) GTEST_SKIP() << *why;
      url = ferry::testing::shared_postgres().create_database(
          fmt::format("s{}_{}", ::getpid(), tests));
    }
    dir = std::filesystem::temp_directory_path() /
          fmt::format("ferry-service-{}-{}", ::getpid(), tests);
    std::filesystem::create_directories(dir);
    store = open_store();
    restart();
  }

  std::unique_ptr<store::Store> open_store() {
    if (GetParam() == Backend::sqlite) return store::open_sqlite_store((dir / "ferry.db").string());
    // Elected, as a server is before its service starts.
    auto opened = store::open_postgres_store(url);
    auto election = store::open_postgres_election(url, 3s);
    std::optional<std::uint64_t> epoch = election->try_lead("test", "");
    if (!epoch) {  // the store before this one (the same test's) led
      election->resign(election->observe().epoch);
      epoch = election->try_lead("test", "");
    }
    opened->lead(epoch.value());
    return opened;
  }
  void TearDown() override {
    service.reset();
    store.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }

  // As after a crash: a new store and service on the same database.
  void reopen() {
    service.reset();
    store.reset();
    store = open_store();
    restart();
  }

  void restart() {
    service.reset();
    service = std::make_unique<Service>(
        *store,
        [this](std::function<void()> work) {
          std::lock_guard lock(mutex);
          posted.push_back(std::move(work));
        },
        [this] { return clock; }, options);
    service->start();
    settle();
  }

  // Lets every store write commit and runs what it posted back, until quiet.
  void settle() {
    for (;;) {
      store->flush();
      std::vector<std::function<void()>> work;
      {
        std::lock_guard lock(mutex);
        work.swap(posted);
      }
      if (work.empty()) return;
      for (auto& function : work) function();
    }
  }

  std::vector<JobId> submit(const std::vector<std::string>& jobs) {
    Submission submission;
    for (const std::string& json : jobs) submission.jobs.push_back(parse_job_spec(json));
    return submit(std::move(submission)).ids;
  }

  // A batch as POST /v1/jobs takes it: {"jobs": [...], "flow": {...}}.
  Service::Submitted submit_batch(const std::string& body) { return submit(parse_job_batch(body)); }

  Service::Submitted submit(Submission submission) {
    EXPECT_EQ(service->check(submission), "");
    Service::Submitted answer{.error = "no answer"};
    service->submit(std::move(submission),
                    [&](Service::Submitted given) { answer = std::move(given); });
    settle();
    EXPECT_EQ(answer.error, "");
    return answer;
  }

  std::optional<LeaseReply> lease_async(LeaseRequest request, std::optional<LeaseReply>& reply) {
    service->lease(std::move(request), [&](LeaseReply given) { reply = std::move(given); });
    settle();
    return reply;
  }

  LeaseReply lease(LeaseRequest request) {
    std::optional<LeaseReply> reply;
    lease_async(std::move(request), reply);
    EXPECT_TRUE(reply) << "the lease was not answered";
    return reply.value_or(LeaseReply{});
  }

  static LeaseRequest poll(std::string worker, int slots = 1) {
    LeaseRequest request;
    request.worker = std::move(worker);
    request.free_slots = slots;
    return request;
  }

  static Completion done(const LeasedJob& job, bool succeeded, std::string reason = "") {
    Completion completion;
    completion.job = job.id;
    completion.token = job.token;
    completion.succeeded = succeeded;
    completion.reason = reason.empty() ? (succeeded ? "exit 0" : "exit 1") : reason;
    completion.exit_code = succeeded ? 0 : 1;
    completion.stdout_tail = "out\n";
    return completion;
  }

  sched::State state(JobId id) { return service->job(id)->state; }

  std::mutex mutex;
  std::vector<std::function<void()>> posted;
  Time clock{1'700'000'000'000};
  Service::Options options{.lease_duration = 10s, .max_wait = 30s};
  std::filesystem::path dir;
  std::string url;  // the PostgreSQL database's
  std::unique_ptr<store::Store> store;
  std::unique_ptr<Service> service;
};

std::string backend_name(const ::testing::TestParamInfo<Backend>& backend) {
  return backend.param == Backend::sqlite ? "sqlite" : "postgres";
}
INSTANTIATE_TEST_SUITE_P(Backends, ServiceTest,
                         ::testing::Values(Backend::sqlite, Backend::postgres), backend_name);

TEST_P(ServiceTest, AJobCanBeLeasedOnlyOnceItIsDurable) {
  std::vector<JobId> ids;
  service->submit(Submission{{parse_job_spec(R"({"command": {"argv": ["true"]}})")}, {}},
                  [&](Service::Submitted given) { ids = given.ids; });
  // Not committed yet: no id for the client, nothing for a worker.
  std::optional<LeaseReply> early;
  service->lease(poll("w1"), [&](LeaseReply reply) { early = reply; });
  ASSERT_TRUE(early);
  EXPECT_TRUE(early->jobs.empty());
  EXPECT_TRUE(ids.empty());
  settle();
  ASSERT_EQ(ids, std::vector<JobId>{1});
  EXPECT_EQ(store->load().jobs.size(), 1u);
  EXPECT_EQ(lease(poll("w1")).jobs.size(), 1u);
}

TEST_P(ServiceTest, EventsComeOnceDurableInOrderAndUnsubscribingStopsThem) {
  std::vector<std::string> seen;
  auto record = [&](const JobEvent& event) {
    seen.push_back(fmt::format("{} {} {} {}", event.id, sched::name(event.state), event.queue,
                               event.last_report ? event.last_report->stdout_tail : "-"));
  };
  std::uint64_t subscription = service->subscribe(record);
  JobId id = submit({R"({"command": {"argv": ["true"]}, "queue": "q"})"}).at(0);
  EXPECT_EQ(seen, std::vector<std::string>{"1 queued q -"});
  EXPECT_EQ(service->current(id, record), Service::Known::settled);
  EXPECT_EQ(service->current(99, record), Service::Known::no_such_job);
  seen.clear();

  LeasedJob job = lease(poll("w1")).jobs.at(0);
  LeaseRequest report = poll("w1", 0);
  report.completions.push_back(done(job, true));
  std::optional<LeaseReply> reply;
  service->lease(report, [&](LeaseReply given) { reply = std::move(given); });
  // Recorded in memory, not yet durable: no event, and no current state.
  EXPECT_EQ(seen, std::vector<std::string>{"1 running q -"});
  EXPECT_EQ(service->current(id, record), Service::Known::changing);
  EXPECT_EQ(seen.size(), 1u);
  settle();
  EXPECT_EQ(seen, (std::vector<std::string>{"1 running q -", "1 succeeded q out\n"}));
  EXPECT_EQ(service->current(id, record), Service::Known::settled);

  service->unsubscribe(subscription);
  EXPECT_EQ(service->subscribers(), 0u);
  seen.clear();
  submit({R"({"command": {"argv": ["true"]}})"});
  EXPECT_TRUE(seen.empty());
}

TEST_P(ServiceTest, RunsAJobAndRecordsItsResult) {
  auto ids = submit({R"({"command": {"argv": ["echo", "hi"]}, "name": "greet"})"});
  LeaseReply first = lease(poll("w1"));
  ASSERT_EQ(first.jobs.size(), 1u);
  LeasedJob job = first.jobs[0];
  EXPECT_EQ(job.id, ids[0]);
  EXPECT_EQ(job.attempt, 1);
  EXPECT_EQ(job.lease_expires, clock + 10s);
  EXPECT_NE(job.spec_json.find("\"argv\":[\"echo\",\"hi\"]"), std::string::npos);
  EXPECT_EQ(state(job.id), sched::State::running);

  LeaseRequest report = poll("w1", 0);
  report.completions = {done(job, true)};
  LeaseReply answer = lease(report);
  EXPECT_EQ(answer.acknowledged, std::vector<std::uint64_t>{job.token});

  JobView view = *service->job(job.id);
  EXPECT_EQ(view.state, sched::State::succeeded);
  EXPECT_EQ(view.name, "greet");
  ASSERT_EQ(view.attempts.size(), 1u);
  ASSERT_TRUE(view.attempts[0].details);
  EXPECT_EQ(view.attempts[0].details->stdout_tail, "out\n");
  std::optional<store::StoredJob> durable = store->read_job(job.id);
  ASSERT_TRUE(durable);
  EXPECT_EQ(durable->row.state, "succeeded");
  ASSERT_EQ(durable->attempts.size(), 1u);
  EXPECT_EQ(durable->attempts[0].end, "succeeded");
  EXPECT_EQ(durable->attempts[0].exit_code, 0);
  EXPECT_EQ(durable->attempts[0].stdout_tail, "out\n");
  EXPECT_EQ(durable->attempts[0].lease, job.token);
  // Ended and durable: memory let go of it, and reads come from the store.
  EXPECT_EQ(service->jobs_in_memory(), 0u);
  EXPECT_EQ(service->counts()[sched::State::succeeded], 1u);
}

TEST_P(ServiceTest, EndedJobsLeaveMemoryAndAreReadBackFromTheStore) {
  auto ids =
      submit({R"({"command": {"argv": ["a"]}, "name": "first"})",
              R"({"command": {"argv": ["b"]}, "queue": "q2"})", R"({"command": {"argv": ["c"]}})"});
  LeaseReply leased = lease(poll("w", 2));
  ASSERT_EQ(leased.jobs.size(), 2u);
  LeaseRequest report = poll("w", 0);
  report.completions = {done(leased.jobs[0], true), done(leased.jobs[1], false, "exit 1")};
  lease(report);
  EXPECT_EQ(service->jobs_in_memory(), 1u);  // the one still queued

  std::optional<JobView> first = service->job(ids[0]);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->state, sched::State::succeeded);
  EXPECT_EQ(first->name, "first");
  ASSERT_EQ(first->attempts.size(), 1u);
  EXPECT_EQ(first->attempts[0].details->stdout_tail, "out\n");
  EXPECT_EQ(first->attempts[0].attempt.worker, "w");
  EXPECT_EQ(service->job(ids[1])->queue, "q2");
  EXPECT_FALSE(service->job(99));
  EXPECT_TRUE(service->exists(ids[1]));
  EXPECT_EQ(service->first_missing({ids[0], ids[1], ids[2], 4}), JobId{4});

  ListPage all = service->list({});
  ASSERT_EQ(all.jobs.size(), 3u);
  EXPECT_EQ(all.jobs[0].state, sched::State::queued);
  EXPECT_EQ(all.jobs[1].state, sched::State::failed);
  EXPECT_EQ(all.jobs[1].attempt_count, 1u);
  EXPECT_EQ(service->list({.state = sched::State::succeeded}).jobs.at(0).id, ids[0]);
  EXPECT_EQ(service->list({.state = sched::State::queued}).jobs.at(0).id, ids[2]);
  EXPECT_EQ(service->list({.text = "first"}).jobs.size(), 1u);
  EXPECT_EQ(service->queues().at("q2")[sched::State::failed], 1u);
  EXPECT_EQ(service->counts().total(), 3u);

  std::vector<std::string> seen;
  EXPECT_EQ(
      service->current(ids[1],
                       [&](const JobEvent& event) {
                         seen.push_back(fmt::format("{} {} {}", event.id, sched::name(event.state),
                                                    event.last_report->reason));
                       }),
      Service::Known::settled);
  EXPECT_EQ(seen, std::vector<std::string>{"2 failed exit 1"});

  reopen();
  EXPECT_EQ(service->jobs_in_memory(), 1u);
  EXPECT_EQ(service->job(ids[0])->state, sched::State::succeeded);
  EXPECT_EQ(service->counts()[sched::State::failed], 1u);
  EXPECT_EQ(service->counts().total(), 3u);
}

TEST_P(ServiceTest, RetentionRemovesEndedJobsWhenTheirTimeRunsOut) {
  options.keep_finished = 10s;
  reopen();
  auto ids =
      submit({R"({"command": {"argv": ["a"]}})", R"({"command": {"argv": ["b"]}, "keep": 3600})",
              R"({"command": {"argv": ["c"]}, "keep": 0})", R"({"command": {"argv": ["d"]}})"});
  LeaseReply leased = lease(poll("w", 3));
  LeaseRequest report = poll("w", 0);
  for (const LeasedJob& job : leased.jobs) report.completions.push_back(done(job, true));
  lease(report);
  clock += 9s;
  service->tick();
  settle();
  EXPECT_TRUE(service->exists(ids[0]));
  clock += 2s;
  service->tick();
  settle();
  EXPECT_FALSE(service->exists(ids[0]));  // kept 10 s, the default
  EXPECT_TRUE(service->exists(ids[1]));   // its own keep: an hour
  EXPECT_TRUE(service->exists(ids[2]));   // kept for ever
  EXPECT_TRUE(service->exists(ids[3]));   // not ended
  EXPECT_EQ(service->counts()[sched::State::succeeded], 2u);
  clock += 3600s;
  service->tick();
  settle();
  EXPECT_FALSE(service->exists(ids[1]));
  EXPECT_TRUE(service->exists(ids[2]));
  EXPECT_EQ(service->counts().total(), 2u);
  // Ids are never reused, not even after the newest ended job was removed.
  reopen();
  EXPECT_EQ(submit({R"({"command": {"argv": ["e"]}})"}), std::vector<JobId>{5});
}

TEST_P(ServiceTest, ASubmitWithAKnownKeyGivesTheJobThatHasIt) {
  std::vector<JobId> existing;
  auto submit_keyed = [&](std::vector<std::string> jobs) {
    Submission submission;
    for (const std::string& json : jobs) submission.jobs.push_back(parse_job_spec(json));
    Service::Submitted answer = submit(std::move(submission));
    existing = answer.existing;
    return answer.ids;
  };
  auto first = submit_keyed({R"({"command": {"argv": ["a"]}, "key": "k1"})",
                             R"({"command": {"argv": ["b"]}, "key": "k1"})",
                             R"({"command": {"argv": ["c"]}})"});
  EXPECT_EQ(first, (std::vector<JobId>{1, 1, 2}));
  EXPECT_EQ(existing, std::vector<JobId>{1});
  EXPECT_EQ(submit_keyed({R"({"command": {"argv": ["again"]}, "key": "k1"})"}),
            std::vector<JobId>{1});
  EXPECT_EQ(existing, std::vector<JobId>{1});
  // Ended and out of memory: the store still has the key.
  LeasedJob job = lease(poll("w", 1)).jobs.at(0);
  LeaseRequest report = poll("w", 0);
  report.completions = {done(job, true)};
  lease(report);
  EXPECT_EQ(submit_keyed({R"({"command": {"argv": ["a"]}, "key": "k1"})"}), std::vector<JobId>{1});
  reopen();
  EXPECT_EQ(submit_keyed({R"({"command": {"argv": ["a"]}, "key": "k1"})",
                          R"({"command": {"argv": ["a"]}, "key": "k2"})"}),
            (std::vector<JobId>{1, 3}));
  EXPECT_EQ(existing, std::vector<JobId>{1});
}

TEST_P(ServiceTest, AFlowRunsInDependencyOrderAndAFailureSkipsWhatFollows) {
  // a -> b, c -> d -> e: the diamond of the load test, with a tail.
  Service::Submitted flow = submit_batch(R"({"flow": {"name": "diamond"}, "jobs": [
    {"ref": "a", "command": {"argv": ["a"]}},
    {"ref": "b", "after": ["a"], "command": {"argv": ["b"]}},
    {"ref": "c", "after": ["a"], "command": {"argv": ["c"]}},
    {"ref": "d", "after": ["b", "c"], "command": {"argv": ["d"]}},
    {"ref": "e", "after": ["d"], "command": {"argv": ["e"]}}]})");
  ASSERT_EQ(flow.ids, (std::vector<JobId>{1, 2, 3, 4, 5}));
  EXPECT_EQ(flow.flow, 1u);
  auto run = [&](bool succeeded) {
    LeaseReply leased = lease(poll("w", 10));
    LeaseRequest report = poll("w", 0);
    std::vector<JobId> ran;
    for (const LeasedJob& job : leased.jobs) {
      ran.push_back(job.id);
      report.completions.push_back(done(job, succeeded));
    }
    lease(report);
    return ran;
  };
  EXPECT_EQ(run(true), std::vector<JobId>{1});
  EXPECT_EQ(state(4), sched::State::waiting);
  LeaseReply middle = lease(poll("w", 10));
  ASSERT_EQ(middle.jobs.size(), 2u);  // b and c, not d
  LeaseRequest report = poll("w", 0);
  report.completions = {done(middle.jobs[0], false), done(middle.jobs[1], true)};
  lease(report);
  // b failed: d and e end without running, saying why, and leave memory.
  EXPECT_EQ(state(4), sched::State::cancelled);
  EXPECT_EQ(service->job(4)->reason, "dependency 2 failed");
  EXPECT_TRUE(service->job(5)->skipped);
  EXPECT_EQ(service->jobs_in_memory(), 0u);
  std::optional<FlowView> view = service->flow(1);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->state, "failed");
  EXPECT_EQ(view->row.name, "diamond");
  EXPECT_EQ(view->jobs.at(3).ref, "d");
  EXPECT_TRUE(view->jobs.at(3).skipped);

  // Retried, b runs again, and what was skipped because of it waits on it.
  reopen();
  std::vector<std::string> results;
  service->retry({2}, [&](std::vector<std::string> given, std::string) { results = given; });
  settle();
  EXPECT_EQ(results, std::vector<std::string>{""});
  EXPECT_EQ(state(4), sched::State::waiting);
  EXPECT_EQ(state(5), sched::State::waiting);
  EXPECT_EQ(run(true), std::vector<JobId>{2});
  EXPECT_EQ(run(true), std::vector<JobId>{4});
  reopen();  // a restart between: e still waits on nothing but its turn
  EXPECT_EQ(run(true), std::vector<JobId>{5});
  EXPECT_EQ(service->flow(1)->state, "succeeded");
  EXPECT_EQ(service->flows(0, 10).size(), 1u);
}

TEST_P(ServiceTest, DependenciesOnEarlierJobsAndRunningAtTheEnd) {
  auto first = submit({R"({"command": {"argv": ["ok"]}})", R"({"command": {"argv": ["bad"]}})"});
  LeaseReply leased = lease(poll("w", 2));
  LeaseRequest report = poll("w", 0);
  report.completions = {done(leased.jobs[0], true), done(leased.jobs[1], false)};
  lease(report);
  // After ended jobs: one that succeeded lets it run, one that failed skips
  // it at once, unless it runs at the end whatever happened.
  auto after =
      submit({R"({"command": {"argv": ["next"]}, "after": [1]})",
              R"({"command": {"argv": ["never"]}, "after": [1, 2]})",
              R"({"command": {"argv": ["cleanup"]}, "after": [2], "after_policy": "end"})"});
  EXPECT_EQ(state(after[0]), sched::State::queued);
  EXPECT_EQ(service->job(after[1])->reason, "dependency 2 failed");
  EXPECT_EQ(state(after[2]), sched::State::queued);
  reopen();
  EXPECT_EQ(store->read_job(after[1])->row.state, "cancelled");  // stored so
  EXPECT_EQ(state(after[0]), sched::State::queued);
  Submission unknown;
  unknown.jobs.push_back(parse_job_spec(R"({"command": {"argv": ["x"]}, "after": [99]})"));
  EXPECT_EQ(service->check(unknown), "after: no job 99");
  EXPECT_EQ(
      service->check(parse_job_batch(
          R"({"jobs": [{"command": {"argv": ["x"]}}, {"command": {"argv": ["y"]}, "after": [1, 77]}]})")),
      "jobs[1].after: no job 77");
}

TEST_P(ServiceTest, AFlowWhoseBranchWasNotTakenSucceeded) {
  // An error handler that was not needed is skipped; the flow succeeded. A
  // job cancelled by hand makes it cancelled, a failed one failed.
  submit_batch(R"({"jobs": [{"ref": "a", "command": {"argv": ["a"]}},
    {"ref": "on_error", "after": ["a"], "after_policy": "failure", "command": {"argv": ["h"]}}]})");
  LeaseReply leased = lease(poll("w", 1));
  LeaseRequest report = poll("w", 0);
  report.completions = {done(leased.jobs.at(0), true)};
  lease(report);
  EXPECT_EQ(service->job(2)->reason, "dependency 1 succeeded");
  EXPECT_EQ(service->flow(1)->state, "succeeded");
  submit_batch(R"({"jobs": [{"ref": "a", "command": {"argv": ["a"]}},
    {"ref": "b", "after": ["a"], "command": {"argv": ["b"]}}]})");
  service->cancel({3}, [](std::vector<std::string>, std::string) {});
  settle();
  EXPECT_EQ(service->flow(2)->state, "cancelled");
}

TEST_P(ServiceTest, AFlowWithAKnownKeyIsMadeOnce) {
  std::string body = R"({"flow": {"name": "nightly", "key": "2026-11-27"}, "jobs": [
    {"ref": "a", "command": {"argv": ["a"]}}, {"ref": "b", "after": ["a"], "command": {"argv": ["b"]}}]})";
  Service::Submitted first = submit_batch(body);
  Service::Submitted again = submit_batch(body);
  EXPECT_EQ(again.flow, first.flow);
  EXPECT_EQ(again.ids, first.ids);
  EXPECT_EQ(again.existing, first.ids);
  reopen();
  EXPECT_EQ(submit_batch(body).flow, first.flow);
  EXPECT_EQ(service->counts().total(), 2u);
}

TEST_P(ServiceTest, StaleAndRepeatedCompletionsAreAcknowledgedAndIgnored) {
  submit({R"({"command": {"argv": ["true"]}})"});
  LeasedJob job = lease(poll("w1")).jobs.at(0);
  LeaseRequest report = poll("w1", 0);
  Completion wrong = done(job, true);
  wrong.token += 100;
  report.completions = {wrong, done(job, false), done(job, true)};
  LeaseReply answer = lease(report);
  EXPECT_EQ(answer.acknowledged.size(), 3u);       // all of them: the worker may forget them
  EXPECT_EQ(state(job.id), sched::State::failed);  // only the one current report counted
  // Counted: the repeated one; not the token never handed out.
  EXPECT_EQ(service->counts().stale_completions, 1u);
}

TEST_P(ServiceTest, RetriesAfterItsBackoff) {
  auto ids = submit({R"({"command": {"argv": ["flaky"]}, "retries": 1, "retry_delay": 2})"});
  LeasedJob first = lease(poll("w1")).jobs.at(0);
  LeaseRequest report = poll("w1", 1);
  report.completions = {done(first, false)};
  EXPECT_TRUE(lease(report).jobs.empty());  // backing off
  EXPECT_EQ(state(ids[0]), sched::State::waiting);
  EXPECT_EQ(service->next_tick(), clock + 2s);
  clock += 1999ms;
  service->tick();
  EXPECT_TRUE(lease(poll("w1")).jobs.empty());
  clock += 1ms;
  service->tick();
  settle();
  LeasedJob second = lease(poll("w1")).jobs.at(0);
  EXPECT_EQ(second.attempt, 2);
  // Leases are not stored: the store holds the ended attempt, and "queued".
  store::Snapshot durable = store->load();
  EXPECT_EQ(durable.jobs[0].state, "queued");
  ASSERT_EQ(durable.attempts.size(), 1u);
  EXPECT_EQ(durable.attempts[0].end, "failed");
}

TEST_P(ServiceTest, ASilentWorkersJobRunsAgainElsewhere) {
  submit({R"({"command": {"argv": ["long"]}})"});
  LeasedJob lost = lease(poll("w1")).jobs.at(0);
  clock += 10s;
  service->tick();
  settle();
  EXPECT_EQ(state(lost.id), sched::State::queued);
  LeasedJob again = lease(poll("w2")).jobs.at(0);
  EXPECT_EQ(again.attempt, 2);
  EXPECT_GT(again.token, lost.token);

  // The first worker comes back: its heartbeat is refused, its result ignored.
  LeaseRequest late = poll("w1", 0);
  late.heartbeats = {{lost.id, lost.token}};
  late.completions = {done(lost, true)};
  LeaseReply answer = lease(late);
  EXPECT_EQ(answer.stop, std::vector<JobId>{lost.id});
  EXPECT_EQ(state(lost.id), sched::State::running);  // still w2's
  store::Snapshot durable = store->load();
  ASSERT_EQ(durable.attempts.size(), 1u);  // the running one is stored when it ends
  EXPECT_EQ(durable.attempts[0].end, "lease_expired");
}

// After a restart the same job may be leased anew to the worker whose old
// attempt of it still runs: "stop" names the old lease by its token.
TEST_P(ServiceTest, StopNamesTheLeaseNotOnlyTheJob) {
  submit({R"({"command": {"argv": ["long"]}})"});
  LeasedJob old = lease(poll("w", 1)).jobs.at(0);
  reopen();
  LeaseRequest beat = poll("w", 1);
  beat.heartbeats = {{old.id, old.token}};
  LeaseReply reply = lease(beat);
  EXPECT_EQ(reply.stop, std::vector<JobId>{old.id});
  EXPECT_EQ(reply.stop_tokens, std::vector<std::uint64_t>{old.token});
  ASSERT_EQ(reply.jobs.size(), 1u);
  LeasedJob fresh = reply.jobs[0];
  EXPECT_EQ(fresh.id, old.id);
  LeaseRequest both = poll("w", 0);
  both.heartbeats = {{old.id, old.token}, {fresh.id, fresh.token}};
  LeaseReply again = lease(both);
  EXPECT_EQ(again.stop_tokens, std::vector<std::uint64_t>{old.token});
}

TEST_P(ServiceTest, HeartbeatsKeepALease) {
  submit({R"({"command": {"argv": ["long"]}})"});
  LeasedJob job = lease(poll("w1")).jobs.at(0);
  for (int i = 0; i < 6; ++i) {
    clock += 5s;
    LeaseRequest beat = poll("w1", 0);
    beat.heartbeats = {{job.id, job.token}};
    EXPECT_TRUE(lease(beat).stop.empty());
    service->tick();
  }
  EXPECT_EQ(state(job.id), sched::State::running);
}

TEST_P(ServiceTest, QueuesAndLabelsChooseTheWorker) {
  auto ids = submit({R"({"command": {"argv": ["a"]}, "queue": "gpu", "labels": ["cuda"]})",
                     R"({"command": {"argv": ["b"]}, "queue": "cpu"})"});
  LeaseRequest plain = poll("plain", 2);
  plain.queues = {"gpu"};
  EXPECT_TRUE(lease(plain).jobs.empty());  // lacks the label
  LeaseRequest cuda = poll("cuda", 2);
  cuda.queues = {"gpu"};
  cuda.labels = {"cuda", "big"};
  LeaseReply got = lease(cuda);
  ASSERT_EQ(got.jobs.size(), 1u);
  EXPECT_EQ(got.jobs[0].id, ids[0]);
  LeaseReply rest = lease(poll("any", 2));
  ASSERT_EQ(rest.jobs.size(), 1u);
  EXPECT_EQ(rest.jobs[0].id, ids[1]);
  EXPECT_EQ(service->workers("", 100).workers.size(), 3u);
}

TEST_P(ServiceTest, AWorkerThatRunsOnlyCallsGetsNoCommand) {
  auto ids = submit({R"({"command": {"argv": ["a"]}})",
                     R"({"command": {"argv": ["b"]}, "labels": ["function:f"]})",
                     R"({"call": {"function": "f"}})"});
  LeaseRequest calls_only = poll("library", 5);
  calls_only.labels = {"function:f"};
  calls_only.commands = false;
  LeaseReply got = lease(calls_only);
  ASSERT_EQ(got.jobs.size(), 1u);
  EXPECT_EQ(got.jobs[0].id, ids[2]);
  LeaseRequest commands = poll("daemon", 5);
  commands.labels = {"function:f"};
  EXPECT_EQ(lease(commands).jobs.size(), 2u);
}

TEST_P(ServiceTest, WorkersArePagedAndForgottenWhenSilent) {
  for (std::string name : {"a", "b", "c"}) lease(poll(name, 0));
  Service::WorkerPage first = service->workers("", 2);
  ASSERT_EQ(first.workers.size(), 2u);
  EXPECT_EQ(first.workers[1].id, "b");
  EXPECT_EQ(first.next_after, "b");
  Service::WorkerPage rest = service->workers(first.next_after, 2);
  ASSERT_EQ(rest.workers.size(), 1u);
  EXPECT_EQ(rest.workers[0].id, "c");
  EXPECT_EQ(rest.next_after, "");

  clock += Service::kForgetWorkersAfter;
  lease(poll("c", 0));
  clock += 1s;
  service->tick();
  Service::WorkerPage left = service->workers("", 10);
  ASSERT_EQ(left.workers.size(), 1u);
  EXPECT_EQ(left.workers[0].id, "c");

  for (std::size_t i = 0; i <= Service::kMaxWorkers; ++i) {
    clock += 1ms;
    lease(poll(fmt::format("w{:05}", i), 0));
  }
  EXPECT_LE(service->workers("", 100'000).workers.size(), Service::kMaxWorkers);
  EXPECT_EQ(service->workers("w09999", 1).workers.at(0).id, "w10000");  // the newest is kept
}

TEST_P(ServiceTest, CallsGoOnlyToWorkersThatServeTheFunction) {
  auto ids = submit({R"({"call": {"function": "square", "args": 3}})"});
  EXPECT_TRUE(lease(poll("commands-only")).jobs.empty());
  LeaseRequest other = poll("cube-server");
  other.labels = {"function:cube"};
  EXPECT_TRUE(lease(other).jobs.empty());
  LeaseRequest serving = poll("square-server");
  serving.labels = {"function:square"};
  ASSERT_EQ(lease(serving).jobs.size(), 1u);
  EXPECT_EQ(state(ids[0]), sched::State::running);
}

TEST_P(ServiceTest, ALongPollIsAnsweredByWorkOrByItsDeadline) {
  LeaseRequest waiting = poll("w1");
  waiting.wait = 5s;
  std::optional<LeaseReply> reply;
  lease_async(waiting, reply);
  EXPECT_FALSE(reply);  // parked
  EXPECT_EQ(service->next_tick(), clock + 5s);
  auto ids = submit({R"({"command": {"argv": ["x"]}})"});
  ASSERT_TRUE(reply);
  ASSERT_EQ(reply->jobs.size(), 1u);
  EXPECT_EQ(reply->jobs[0].id, ids[0]);

  std::optional<LeaseReply> empty;
  lease_async(waiting, empty);
  EXPECT_FALSE(empty);
  clock += 5s;
  service->tick();
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->jobs.empty());
}

// A long poll whose worker has gone gets no job; a lease its worker never
// received goes back to the queue at once.
TEST_P(ServiceTest, JobsGoOnlyToWorkersStillConnected) {
  LeaseRequest gone = poll("gone");
  gone.wait = 5s;
  gone.connected = [] { return false; };
  std::optional<LeaseReply> to_gone;
  lease_async(gone, to_gone);
  LeaseRequest here = poll("here");
  here.wait = 5s;
  here.connected = [] { return true; };
  std::optional<LeaseReply> to_here;
  lease_async(here, to_here);
  EXPECT_FALSE(to_gone);
  EXPECT_FALSE(to_here);
  JobId id = submit({R"({"command": {"argv": ["true"]}})"}).at(0);
  ASSERT_TRUE(to_gone);
  EXPECT_TRUE(to_gone->jobs.empty());
  ASSERT_TRUE(to_here);
  ASSERT_EQ(to_here->jobs.size(), 1u);

  service->release(to_here->jobs);
  settle();
  EXPECT_EQ(state(id), sched::State::queued);
  LeasedJob again = lease(poll("other")).jobs.at(0);
  EXPECT_EQ(again.attempt, 2);
  EXPECT_EQ(service->job(id)->attempts.at(0).attempt.reason,
            "not delivered: the worker's connection was gone");
}

TEST_P(ServiceTest, CancelStopsARunningJobThroughItsWorker) {
  auto ids = submit({R"({"command": {"argv": ["a"]}})", R"({"command": {"argv": ["b"]}})"});
  LeasedJob running = lease(poll("w1")).jobs.at(0);
  std::vector<std::string> results;
  service->cancel({ids[0], ids[1], 99},
                  [&](std::vector<std::string> given, std::string) { results = given; });
  settle();
  EXPECT_EQ(results, (std::vector<std::string>{"", "", "no job 99"}));
  service->cancel({ids[0]}, [&](std::vector<std::string> given, std::string) { results = given; });
  EXPECT_EQ(results, std::vector<std::string>{"job 1 already cancelled"});
  LeaseRequest beat = poll("w1", 1);
  beat.heartbeats = {{running.id, running.token}};
  LeaseReply answer = lease(beat);
  EXPECT_EQ(answer.stop, std::vector<JobId>{running.id});
  EXPECT_TRUE(answer.jobs.empty());
  EXPECT_EQ(store->read_job(ids[1])->row.state, "cancelled");
}

TEST_P(ServiceTest, RetryRunsAFailedJobAgainAndSurvivesARestart) {
  auto ids = submit({R"({"command": {"argv": ["flaky"]}, "retries": 1, "retry_delay": 0})",
                     R"({"command": {"argv": ["fine"]}, "queue": "other"})"});
  LeaseRequest only_default = poll("w1");
  only_default.queues = {"default"};
  for (int attempt = 0; attempt < 2; ++attempt) {
    LeasedJob job = lease(only_default).jobs.at(0);
    ASSERT_EQ(job.id, ids[0]);
    LeaseRequest report = poll("w1", 0);
    report.completions = {done(job, false)};
    lease(report);
  }
  EXPECT_EQ(state(ids[0]), sched::State::failed);
  std::vector<std::string> results;
  service->retry({ids[0], ids[1], 99},
                 [&](std::vector<std::string> given, std::string) { results = given; });
  settle();
  EXPECT_EQ(results,
            (std::vector<std::string>{
                "", "job 2 is queued: only failed or cancelled jobs are retried", "no job 99"}));
  EXPECT_EQ(state(ids[0]), sched::State::queued);
  EXPECT_EQ(store->load().jobs[0].retry_base, 2);

  reopen();
  // After the restart the retried job still has its whole budget: one failure is retried.
  LeasedJob third = lease(only_default).jobs.at(0);
  EXPECT_EQ(third.attempt, 3);
  LeaseRequest report = poll("w1", 0);
  report.completions = {done(third, false)};
  lease(report);
  EXPECT_EQ(state(ids[0]), sched::State::queued);
}

TEST_P(ServiceTest, ListsJobsNewestFirstWithFiltersAndACursor) {
  auto ids =
      submit({R"({"command": {"argv": ["build", "a"]}, "name": "build a"})",
              R"({"command": {"argv": ["test"]}, "queue": "slow"})",
              R"({"command": {"argv": ["build", "b"]}})", R"({"command": {"argv": ["deploy"]}})"});
  LeasedJob running = lease(poll("w1")).jobs.at(0);  // the oldest: build a
  ListPage all = service->list({});
  ASSERT_EQ(all.jobs.size(), 4u);
  EXPECT_EQ(all.jobs[0].id, ids[3]);
  EXPECT_EQ(all.jobs[3].id, ids[0]);
  EXPECT_EQ(all.next_before, 0u);

  ListPage first = service->list({.limit = 3});
  ASSERT_EQ(first.jobs.size(), 3u);
  EXPECT_EQ(first.next_before, ids[1]);
  ListPage rest = service->list({.before = first.next_before, .limit = 3});
  ASSERT_EQ(rest.jobs.size(), 1u);
  EXPECT_EQ(rest.jobs[0].id, ids[0]);
  EXPECT_EQ(rest.next_before, 0u);

  EXPECT_EQ(service->list({.state = sched::State::running}).jobs.at(0).id, running.id);
  EXPECT_EQ(service->list({.queue = "slow"}).jobs.size(), 1u);
  ListPage builds = service->list({.text = "build"});
  ASSERT_EQ(builds.jobs.size(), 2u);
  EXPECT_EQ(builds.jobs[0].id, ids[2]);
  EXPECT_TRUE(service->list({.text = "nothing like it"}).jobs.empty());
}

TEST_P(ServiceTest, ARestartLosesNothingAndRunsInterruptedJobsAgain) {
  auto ids = submit({R"({"command": {"argv": ["done"]}})", R"({"command": {"argv": ["running"]}})",
                     R"({"command": {"argv": ["queued"]}})",
                     R"({"command": {"argv": ["later"]}, "delay": 60})"});
  LeasedJob finished = lease(poll("w1")).jobs.at(0);
  LeaseRequest report = poll("w1", 1);
  report.completions = {done(finished, true)};
  LeasedJob interrupted = lease(report).jobs.at(0);
  EXPECT_EQ(interrupted.id, ids[1]);

  // The server dies; a new one opens the same database.
  clock += 1s;
  reopen();

  EXPECT_EQ(state(ids[0]), sched::State::succeeded);
  EXPECT_EQ(service->job(ids[0])->attempts.at(0).details->stdout_tail, "out\n");
  // The interrupted lease was never stored: the job is queued, as stored.
  EXPECT_EQ(state(ids[1]), sched::State::queued);
  EXPECT_TRUE(service->job(ids[1])->attempts.empty());
  EXPECT_EQ(state(ids[2]), sched::State::queued);
  EXPECT_EQ(state(ids[3]), sched::State::waiting);
  EXPECT_EQ(store->load().epoch, 2u);  // each start stores its epoch

  LeaseReply after = lease(poll("w2", 5));
  ASSERT_EQ(after.jobs.size(), 2u);
  EXPECT_EQ(after.jobs[0].id, ids[1]);
  EXPECT_EQ(after.jobs[0].attempt, 1);
  EXPECT_GE(after.jobs[0].token, std::uint64_t{2} << Service::kTokenBits);
  // The pre-restart worker reports: acknowledged, ignored, counted.
  LeaseRequest late = poll("w1", 0);
  late.completions = {done(interrupted, false)};
  EXPECT_EQ(lease(late).acknowledged, std::vector<std::uint64_t>{interrupted.token});
  EXPECT_EQ(state(ids[1]), sched::State::running);
  EXPECT_EQ(service->counts().stale_completions, 1u);
  EXPECT_EQ(submit({R"({"command": {"argv": ["new"]}})"}), std::vector<JobId>{5});
}

TEST_P(ServiceTest, ACancelIsAnEventWhetherTheJobWaitedOrRan) {
  std::vector<std::string> seen;
  service->subscribe([&](const JobEvent& event) {
    seen.push_back(fmt::format("{} {}", event.id, sched::name(event.state)));
  });
  auto ids = submit({R"({"command": {"argv": ["a"]}})", R"({"command": {"argv": ["b"]}})"});
  LeasedJob running = lease(poll("w1")).jobs.at(0);
  seen.clear();
  service->cancel({ids[1], running.id}, [](std::vector<std::string>, std::string) {});
  settle();
  EXPECT_EQ(seen, (std::vector<std::string>{"2 cancelled", "1 cancelled"}));
  EXPECT_EQ(service->jobs_in_memory(), 0u);  // ended and told: let go
}

TEST_P(ServiceTest, MetricsCountWhatBecameDurableByQueue) {
  auto ids =
      submit({R"({"command": {"argv": ["a"]}, "queue": "q", "retries": 1, "retry_delay": 2})",
              R"({"command": {"argv": ["b"]}, "queue": "q"})",
              R"({"command": {"argv": ["c"]}, "queue": "other"})"});
  clock += 3s;  // the first two waited 3 s in their queue
  LeaseReply two = lease(poll("w1", 2));
  ASSERT_EQ(two.jobs.size(), 2u);
  clock += 1500ms;
  LeaseRequest report = poll("w1", 0);
  report.completions = {done(two.jobs[0], false), done(two.jobs[1], true)};
  // Recorded in memory: not counted until durable.
  std::optional<LeaseReply> reply;
  service->lease(report, [&](LeaseReply given) { reply = std::move(given); });
  EXPECT_EQ(service->metrics().queues().at("q").succeeded, 0u);
  settle();
  const JobMetrics::Queue& q = service->metrics().queues().at("q");
  EXPECT_EQ(q.submitted, 2u);
  EXPECT_EQ(q.started, 2u);
  EXPECT_EQ(q.succeeded, 1u);
  EXPECT_EQ(q.retried, 1u);  // the failed attempt runs again after its delay
  EXPECT_EQ(q.failed, 0u);
  EXPECT_EQ(q.wait_seconds.count(), 2u);
  EXPECT_DOUBLE_EQ(q.wait_seconds.sum(), 6.0);
  EXPECT_DOUBLE_EQ(q.run_seconds.sum(), 3.0);

  clock += 2s;
  service->tick();  // the retry's delay passed: queued again, then leased
  LeasedJob again = lease(poll("w1")).jobs.at(0);
  EXPECT_EQ(again.id, ids[0]);
  clock += 11s;
  service->tick();  // its worker went silent: the lease expired
  settle();
  EXPECT_EQ(q.lease_expiries, 1u);
  EXPECT_EQ(q.started, 3u);

  std::vector<std::string> results;
  service->cancel({ids[0], ids[2]},
                  [&](std::vector<std::string> given, std::string) { results = std::move(given); });
  settle();
  EXPECT_EQ(q.cancelled, 1u);
  EXPECT_EQ(service->metrics().queues().at("other").cancelled, 1u);
  service->retry({ids[0]}, [](std::vector<std::string>, std::string) {});
  settle();
  EXPECT_EQ(q.retried, 2u);
  JobMetrics::LastHour hour = service->metrics().last_hour(clock);
  EXPECT_EQ(hour.submitted.back(), 3u);
  EXPECT_EQ(hour.succeeded.back(), 1u);
}

}  // namespace
}  // namespace ferry::server

namespace ferry::server {
namespace {

class ScheduleTest : public ServiceTest {
 protected:
  Service::Refusal add(const std::string& json) {
    Service::Refusal refusal = Service::Refusal::store_failed;
    service->add_schedule(parse_schedule_spec(json),
                          [&](Service::Refusal given, std::string) { refusal = given; });
    settle();
    return refusal;
  }
  void tick() {
    service->tick();
    settle();
  }
  std::int64_t next(const std::string& name) { return service->schedule(name)->next_ms; }
};

INSTANTIATE_TEST_SUITE_P(Backends, ScheduleTest,
                         ::testing::Values(Backend::sqlite, Backend::postgres), backend_name);

// 2023-11-14 22:13:20 UTC, the fixture's clock.
constexpr std::int64_t kStart = 1'700'000'000'000;

TEST_P(ScheduleTest, ACronScheduleFiresAtItsMinutesAndOnceForTheTimeItWasDown) {
  EXPECT_EQ(add(R"({"name": "five", "cron": "*/5 * * * *", "job": {"command": {"argv": ["x"]}}})"),
            Service::Refusal::none);
  EXPECT_EQ(add(R"({"name": "five", "every": 1, "job": {"command": {"argv": ["y"]}}})"),
            Service::Refusal::exists);
  EXPECT_EQ(next("five"), kStart + 100'000);  // 22:15
  EXPECT_EQ(service->next_tick(), Time{kStart + 100'000});
  clock = Time{kStart + 99'999};
  tick();
  EXPECT_EQ(service->counts().total(), 0u);
  clock = Time{kStart + 100'000};
  tick();
  tick();  // the same minute again: nothing more
  EXPECT_EQ(service->counts().total(), 1u);
  EXPECT_EQ(service->job(1)->spec_json.find(R"("key":"schedule/five/1700000100000")") !=
                std::string::npos,
            true)
      << service->job(1)->spec_json;
  EXPECT_EQ(next("five"), kStart + 400'000);  // 22:20
  reopen();
  EXPECT_EQ(next("five"), kStart + 400'000);
  // Down for an hour: the twelve missed ticks are one run, at once.
  clock = Time{kStart + 100'000 + 3'600'000 + 30'000};
  tick();
  tick();
  EXPECT_EQ(service->counts().total(), 2u);
  EXPECT_EQ(next("five"), kStart + 100'000 + 3'600'000 + 300'000);
}

TEST_P(ScheduleTest, SkipMissedPauseResumeRunNowAndRemove) {
  EXPECT_EQ(add(R"({"name": "hourly", "cron": "@hourly", "skip_missed": true,
                    "flow": {"jobs": [{"ref": "a", "command": {"argv": ["a"]}},
                                      {"ref": "b", "after": ["a"], "command": {"argv": ["b"]}}]}})"),
            Service::Refusal::none);
  std::int64_t first = next("hourly");  // 23:00
  EXPECT_EQ(first, kStart + 2'800'000);
  clock = Time{first + 3 * 3'600'000 + 5'000};  // down for three hours
  tick();
  EXPECT_EQ(service->counts().total(), 0u);  // skipped
  EXPECT_EQ(next("hourly"), first + 4 * 3'600'000);

  Service::Refusal refusal = Service::Refusal::store_failed;
  auto answer = [&](Service::Refusal given, std::string) { refusal = given; };
  service->pause_schedule("hourly", true, answer);
  settle();
  EXPECT_EQ(refusal, Service::Refusal::none);
  clock = Time{first + 4 * 3'600'000};
  tick();
  EXPECT_EQ(service->counts().total(), 0u);  // paused
  reopen();
  EXPECT_TRUE(service->schedule("hourly")->paused);
  clock += 30min;
  service->pause_schedule("hourly", false, answer);
  settle();
  EXPECT_EQ(next("hourly"), first + 5 * 3'600'000);  // the next from now, not the one missed

  std::optional<Service::Submitted> made;
  service->run_schedule("hourly", [&](std::optional<Service::Submitted> given) { made = given; });
  settle();
  ASSERT_TRUE(made);
  EXPECT_GT(made->flow, 0u);
  EXPECT_EQ(made->ids.size(), 2u);
  EXPECT_EQ(service->flow(made->flow)->row.name, "hourly");

  service->remove_schedule("hourly", answer);
  settle();
  EXPECT_EQ(refusal, Service::Refusal::none);
  service->remove_schedule("hourly", answer);
  EXPECT_EQ(refusal, Service::Refusal::not_found);
  reopen();
  EXPECT_TRUE(service->schedules().empty());
  EXPECT_EQ(service->counts().total(), 2u);  // what it submitted stays
}

TEST_P(ScheduleTest, AnIntervalFiresEveryPeriod) {
  EXPECT_EQ(add(R"({"name": "often", "every": 2, "job": {"call": {"function": "f"}}})"),
            Service::Refusal::none);
  for (int i = 0; i < 3; ++i) {
    clock += 2s;
    tick();
  }
  EXPECT_EQ(service->counts().total(), 3u);
}

class QueueControlTest : public ServiceTest {
 protected:
  void set(const std::string& queue, const std::string& patch) {
    Service::Refusal refusal = Service::Refusal::store_failed;
    service->set_queue(queue, patch_queue_settings(patch, service->queue_settings(queue)),
                       [&](Service::Refusal given, std::string) { refusal = given; });
    settle();
    EXPECT_EQ(refusal, Service::Refusal::none);
  }
  std::vector<JobId> leased(const LeaseReply& reply) {
    std::vector<JobId> ids;
    for (const LeasedJob& job : reply.jobs) ids.push_back(job.id);
    return ids;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, QueueControlTest,
                         ::testing::Values(Backend::sqlite, Backend::postgres), backend_name);

TEST_P(QueueControlTest, APausedQueueStartsNothingWhateverItsJobsNeedUntilResumed) {
  auto ids = submit({R"({"command": {"argv": ["a"]}, "queue": "mail"})",
                     R"({"command": {"argv": ["b"]}, "queue": "mail", "labels": ["smtp"]})",
                     R"({"call": {"function": "f"}, "queue": "mail"})",
                     R"({"command": {"argv": ["c"]}})"});
  set("mail", R"({"paused": true})");
  LeaseRequest everything = poll("w", 10);
  everything.labels = {"smtp", "function:f"};
  LeaseReply other = lease(everything);
  EXPECT_EQ(leased(other), std::vector<JobId>{ids[3]});
  EXPECT_TRUE(service->queue_view("mail").settings.paused);
  EXPECT_EQ(service->job(ids[0])->held, "its queue is paused");
  EXPECT_EQ(service->job(ids[3])->held, "");  // running
  LeaseRequest report = poll("w", 0);
  report.completions.push_back(done(other.jobs[0], true));
  lease(report);
  reopen();  // durable
  EXPECT_TRUE(service->queue_settings("mail").paused);
  // A long poll waiting when the queue resumes is answered at once.
  everything.wait = 10s;
  std::optional<LeaseReply> waiting;
  lease_async(everything, waiting);
  EXPECT_FALSE(waiting);
  set("mail", R"({"paused": false})");
  ASSERT_TRUE(waiting);
  EXPECT_EQ(leased(*waiting), (std::vector<JobId>{ids[0], ids[1], ids[2]}));
}

TEST_P(QueueControlTest, ChangesAskedForTogetherAllHold) {
  // Two changes before either is durable: the second builds on the first.
  int answered = 0;
  auto patch = [&](const std::string& body) {
    service->set_queue("q", patch_queue_settings(body, service->queue_settings("q")),
                       [&](Service::Refusal refusal, std::string) {
                         EXPECT_EQ(refusal, Service::Refusal::none);
                         ++answered;
                       });
  };
  patch(R"({"paused": true})");
  patch(R"({"max_running": 3})");
  settle();
  EXPECT_EQ(answered, 2);
  reopen();
  EXPECT_EQ(service->queue_settings("q"), (QueueSettings{.paused = true, .max_running = 3}));
  ASSERT_EQ(service->queue_views().size(), 1u);
  // Back at the defaults, a queue without jobs is no longer listed.
  set("q", R"({"paused": false, "max_running": null})");
  EXPECT_TRUE(service->queue_views().empty());
}

TEST_P(QueueControlTest, MaxRunningHoldsAcrossWorkersAndAFinishedJobMakesRoom) {
  set("api", R"({"max_running": 2})");
  std::vector<std::string> jobs(5, R"({"command": {"argv": ["a"]}, "queue": "api"})");
  auto ids = submit(jobs);
  LeaseReply first = lease(poll("a", 5));
  EXPECT_EQ(leased(first), (std::vector<JobId>{ids[0], ids[1]}));
  EXPECT_TRUE(lease(poll("b", 5)).jobs.empty());
  EXPECT_EQ(service->job(ids[2])->held, "its queue runs its most at once (2)");
  EXPECT_EQ(service->queue_view("api").running, 2u);
  LeaseRequest report = poll("a", 0);
  report.completions.push_back(done(first.jobs[0], true));
  lease(report);
  EXPECT_EQ(leased(lease(poll("b", 5))), std::vector<JobId>{ids[2]});
  set("api", R"({"max_running": null})");
  EXPECT_EQ(leased(lease(poll("b", 5))), (std::vector<JobId>{ids[3], ids[4]}));
}

TEST_P(QueueControlTest, AConcurrencyKeyHoldsAfterARestart) {
  auto ids = submit({R"({"command": {"argv": ["a"]}, "concurrency_key": "alice"})",
                     R"({"command": {"argv": ["a"]}, "concurrency_key": "alice"})",
                     R"({"command": {"argv": ["b"]}, "concurrency_key": "bob"})"});
  EXPECT_EQ(leased(lease(poll("w", 5))), (std::vector<JobId>{ids[0], ids[2]}));
  reopen();  // what ran is queued again: one of alice's still runs at a time
  EXPECT_EQ(leased(lease(poll("w", 5))), (std::vector<JobId>{ids[0], ids[2]}));
  EXPECT_EQ(service->job(ids[1])->held, R"(concurrency key "alice" at its limit (1 running))");
  set("default", R"({"concurrency_limit": 2})");
  EXPECT_EQ(leased(lease(poll("w", 5))), std::vector<JobId>{ids[1]});
}

TEST_P(QueueControlTest, ARateStartsJobsAsTokensComeAndWakesALongPoll) {
  set("slow", R"({"rate": "2/s", "burst": 1})");
  std::vector<std::string> jobs(3, R"({"command": {"argv": ["a"]}, "queue": "slow"})");
  auto ids = submit(jobs);
  EXPECT_EQ(leased(lease(poll("w", 5))), std::vector<JobId>{ids[0]});
  LeaseRequest waiting_poll = poll("w", 5);
  waiting_poll.wait = 10s;
  std::optional<LeaseReply> waiting;
  lease_async(waiting_poll, waiting);
  EXPECT_FALSE(waiting);
  EXPECT_EQ(service->next_tick(), clock + 500ms);  // the next token
  EXPECT_EQ(service->job(ids[1])->held, "its queue's rate (2/s) allows no start yet");
  clock += 500ms;
  service->tick();
  settle();
  ASSERT_TRUE(waiting);
  EXPECT_EQ(leased(*waiting), std::vector<JobId>{ids[1]});
  EXPECT_EQ(service->job(ids[2])->held, "its queue's rate (2/s) allows no start yet");
  EXPECT_EQ(service->job(ids[0])->held, "");
  EXPECT_EQ(service->queue_view("slow").settings.rate, (sched::Rate{2, 1000ms}));
}

}  // namespace
}  // namespace ferry::server
