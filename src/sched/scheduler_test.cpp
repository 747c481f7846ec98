#include "sched/scheduler.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace ferry::sched {
namespace {

using std::chrono::milliseconds;

JobOptions with_retries(int retries, Time backoff = Time{1000}) {
  JobOptions options;
  options.retry.max_retries = retries;
  options.retry.backoff = backoff;
  return options;
}

TEST(Scheduler, RunsAJobToSuccess) {
  Scheduler s;
  JobId id = s.submit({}, Time{0});
  EXPECT_EQ(s.find(id)->state, State::queued);
  auto lease = s.lease(Time{5}, "w1", std::nullopt);
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->job, id);
  EXPECT_EQ(lease->attempt, 1);
  EXPECT_FALSE(lease->expires);
  EXPECT_FALSE(s.lease(Time{5}, "w1", std::nullopt));  // nothing else queued
  EXPECT_EQ(s.complete(id, lease->token, true, "", Time{9}), Completion::recorded);

  const Job& job = *s.find(id);
  EXPECT_EQ(job.state, State::succeeded);
  ASSERT_EQ(job.attempts.size(), 1u);
  EXPECT_EQ(job.attempts[0].worker, "w1");
  EXPECT_EQ(job.attempts[0].started, Time{5});
  EXPECT_EQ(job.attempts[0].ended, Time{9});
  EXPECT_EQ(job.attempts[0].end, AttemptEnd::succeeded);
  EXPECT_TRUE(s.all_final());

  auto changes = s.take_changes();
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].to, State::queued);
  EXPECT_EQ(changes[1].to, State::running);
  EXPECT_EQ(changes[2].from, State::running);
  EXPECT_EQ(changes[2].to, State::succeeded);
  EXPECT_TRUE(s.take_changes().empty());
}

TEST(Scheduler, PriorityFirstThenFifoAcrossQueues) {
  Scheduler s;
  JobOptions a, b, c, d;
  b.priority = 3;
  c.queue = "other";
  d.queue = "other";
  d.priority = 3;
  JobId ia = s.submit(a, Time{0}), ib = s.submit(b, Time{0});
  JobId ic = s.submit(c, Time{0}), id = s.submit(d, Time{0});
  std::vector<JobId> order;
  while (auto lease = s.lease(Time{0}, "w", std::nullopt)) order.push_back(lease->job);
  EXPECT_EQ(order, (std::vector<JobId>{ib, id, ia, ic}));
}

TEST(Scheduler, LeasesOnlyFromTheAskedQueues) {
  Scheduler s;
  JobOptions other;
  other.queue = "gpu";
  s.submit({}, Time{0});
  JobId gpu = s.submit(other, Time{0});
  std::vector<std::string> queues = {"gpu", "missing"};
  auto lease = s.lease(Time{0}, "w", std::nullopt, queues);
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->job, gpu);
  EXPECT_FALSE(s.lease(Time{0}, "w", std::nullopt, queues));
}

TEST(Scheduler, DelayedJobWaitsUntilItsTime) {
  Scheduler s;
  JobOptions options;
  options.not_before = Time{100};
  JobId id = s.submit(options, Time{0});
  EXPECT_EQ(s.find(id)->state, State::waiting);
  EXPECT_EQ(s.next_wakeup(), Time{100});
  EXPECT_FALSE(s.lease(Time{50}, "w", std::nullopt));
  s.advance(Time{99});
  EXPECT_EQ(s.find(id)->state, State::waiting);
  s.advance(Time{100});
  EXPECT_EQ(s.find(id)->state, State::queued);
  EXPECT_FALSE(s.next_wakeup());
}

TEST(Scheduler, RetriesWithExponentialBackoffThenFails) {
  Scheduler s;
  JobId id = s.submit(with_retries(2), Time{0});
  auto l1 = s.lease(Time{0}, "w", std::nullopt);
  s.complete(id, l1->token, false, "exit 1", Time{10});
  EXPECT_EQ(s.find(id)->state, State::waiting);
  EXPECT_EQ(s.find(id)->ready_at, Time{1010});
  s.advance(Time{1009});
  EXPECT_FALSE(s.lease(Time{1009}, "w", std::nullopt));
  s.advance(Time{1010});
  auto l2 = s.lease(Time{1010}, "w", std::nullopt);
  ASSERT_TRUE(l2);
  EXPECT_EQ(l2->attempt, 2);
  EXPECT_NE(l2->token, l1->token);
  s.complete(id, l2->token, false, "exit 2", Time{1020});
  EXPECT_EQ(s.find(id)->ready_at, Time{3020});  // doubled
  s.advance(Time{3020});
  auto l3 = s.lease(Time{3020}, "w", std::nullopt);
  s.complete(id, l3->token, false, "exit 3", Time{3030});

  const Job& job = *s.find(id);
  EXPECT_EQ(job.state, State::failed);
  EXPECT_EQ(job.reason, "exit 3");
  ASSERT_EQ(job.attempts.size(), 3u);
  EXPECT_EQ(job.attempts[0].reason, "exit 1");
  EXPECT_EQ(job.failures(), 3);
}

TEST(Scheduler, ZeroBackoffRequeuesAtOnce) {
  Scheduler s;
  JobId id = s.submit(with_retries(1, Time{0}), Time{0});
  auto lease = s.lease(Time{0}, "w", std::nullopt);
  s.complete(id, lease->token, false, "exit 1", Time{0});
  EXPECT_EQ(s.find(id)->state, State::queued);
  lease = s.lease(Time{0}, "w", std::nullopt);
  s.complete(id, lease->token, true, "", Time{1});
  EXPECT_EQ(s.find(id)->state, State::succeeded);
}

TEST(Scheduler, RetryDelayDoublesUpToTheCap) {
  RetryPolicy policy{.max_retries = 100, .backoff = Time{100}, .max_backoff = Time{1000}};
  EXPECT_EQ(retry_delay(policy, 1), Time{100});
  EXPECT_EQ(retry_delay(policy, 2), Time{200});
  EXPECT_EQ(retry_delay(policy, 4), Time{800});
  EXPECT_EQ(retry_delay(policy, 5), Time{1000});
  EXPECT_EQ(retry_delay(policy, 100), Time{1000});
}

TEST(Scheduler, StaleCompletionsAreIgnoredAndCounted) {
  Scheduler s;
  JobId id = s.submit({}, Time{0});
  auto lease = s.lease(Time{0}, "w", std::nullopt);
  EXPECT_EQ(s.complete(id + 7, lease->token, true, "", Time{1}), Completion::stale);
  EXPECT_EQ(s.complete(id, lease->token, false, "exit 1", Time{1}), Completion::recorded);
  EXPECT_EQ(s.complete(id, lease->token, true, "", Time{2}), Completion::stale);
  EXPECT_EQ(s.find(id)->state, State::failed);
  EXPECT_EQ(s.counts().stale_completions, 2u);
  // A token never handed out is ignored too, but not counted: counting what
  // any client makes up would make the count meaningless.
  EXPECT_EQ(s.complete(id, lease->token + 1, true, "", Time{3}), Completion::stale);
  EXPECT_EQ(s.complete(id, 0, true, "", Time{3}), Completion::stale);
  EXPECT_EQ(s.counts().stale_completions, 2u);
}

TEST(Scheduler, ALeaseResumesAfterTheStateWasRebuilt) {
  Scheduler before;
  JobId id = before.submit({}, Time{0});
  auto lease = before.lease(Time{0}, "w1", Time{100});
  Attempt held = before.find(id)->attempts.back();

  Scheduler after;  // rebuilt: the store knows the job as queued
  Job stored;
  stored.id = id;
  stored.state = State::queued;
  after.admit(stored, Time{10});
  EXPECT_TRUE(after.resume_lease(id, held, Time{100}));
  EXPECT_FALSE(after.resume_lease(id, held, Time{100}));  // running now
  EXPECT_EQ(after.find(id)->state, State::running);
  EXPECT_FALSE(after.lease(Time{11}, "w2", Time{100}));  // not queued twice
  EXPECT_TRUE(after.renew(id, lease->token, Time{50}, Time{100}));
  EXPECT_EQ(after.complete(id, lease->token, true, "", Time{60}), Completion::recorded);
  EXPECT_EQ(after.find(id)->attempts.back().worker, "w1");
  auto next = after.submit({}, Time{70});
  EXPECT_GT(after.lease(Time{70}, "w2", std::nullopt)->token, lease->token);  // never reused
  (void)next;
}

TEST(Scheduler, EndedJobsAreForgottenAndCanBeBroughtBack) {
  Scheduler s;
  JobId done = s.submit({}, Time{0});
  JobId waiting = s.submit({}, Time{0});
  auto lease = s.lease(Time{1}, "w", std::nullopt);
  ASSERT_EQ(lease->job, done);
  EXPECT_FALSE(s.forget(done));  // running
  s.complete(done, lease->token, false, "exit 1", Time{2});
  Job ended = *s.find(done);
  EXPECT_TRUE(s.forget(done));
  EXPECT_FALSE(s.find(done));
  EXPECT_FALSE(s.forget(waiting));
  EXPECT_EQ(s.counts().total(), 1u);
  EXPECT_EQ(s.counts()[State::failed], 0u);
  // Brought back from the store to be retried.
  s.admit(ended, Time{3});
  EXPECT_THROW(s.admit(ended, Time{3}), std::invalid_argument);
  EXPECT_TRUE(s.retry(done, Time{4}));
  EXPECT_EQ(s.lease(Time{5}, "w", std::nullopt)->attempt, 2);
  EXPECT_GT(s.submit({}, Time{6}), waiting);  // ids go on from the highest held
}

// A job held on its dependencies, as admit() takes it.
Job after(JobId id, std::vector<JobId> dependencies, AfterPolicy policy = AfterPolicy::success) {
  Job job;
  job.id = id;
  job.after = std::move(dependencies);
  job.after_policy = policy;
  return job;
}

// Runs the next job to its end; returns its id.
JobId run_next(Scheduler& s, bool succeeded, Time now) {
  auto lease = s.lease(now, "w", std::nullopt);
  EXPECT_TRUE(lease);
  if (!lease) return 0;
  s.complete(lease->job, lease->token, succeeded, succeeded ? "" : "exit 1", now);
  return lease->job;
}

TEST(Scheduler, ADiamondRunsInDependencyOrder) {
  Scheduler s;
  // 1 -> 2, 3 -> 4
  s.admit(after(1, {}), Time{0});
  s.admit(after(2, {1}), Time{0});
  s.admit(after(3, {1}), Time{0});
  s.admit(after(4, {2, 3}), Time{0});
  EXPECT_EQ(s.find(4)->state, State::waiting);
  EXPECT_EQ(run_next(s, true, Time{1}), 1u);
  EXPECT_EQ(s.find(2)->state, State::queued);
  EXPECT_EQ(s.find(3)->state, State::queued);
  EXPECT_EQ(run_next(s, true, Time{2}), 2u);
  EXPECT_EQ(s.find(4)->state, State::waiting);  // 3 still runs
  EXPECT_EQ(run_next(s, true, Time{3}), 3u);
  EXPECT_EQ(run_next(s, true, Time{4}), 4u);
  EXPECT_TRUE(s.all_final());
}

TEST(Scheduler, AFailureSkipsEverythingDownstreamUnlessItRunsAtTheEnd) {
  Scheduler s;
  s.admit(after(1, {}), Time{0});
  s.admit(after(2, {1}), Time{0});
  s.admit(after(3, {2}), Time{0});
  s.admit(after(4, {2}, AfterPolicy::end), Time{0});  // a cleanup: runs whatever happened
  EXPECT_EQ(run_next(s, false, Time{1}), 1u);
  EXPECT_EQ(s.find(2)->state, State::cancelled);
  EXPECT_EQ(s.find(2)->reason, "dependency 1 failed");
  EXPECT_TRUE(s.find(2)->skipped);
  EXPECT_EQ(s.find(3)->reason, "dependency 2 cancelled");
  EXPECT_EQ(s.find(4)->state, State::queued);  // 2 ended: that is all it waits for
  EXPECT_TRUE(s.find(2)->attempts.empty());
  auto changes = s.take_changes();
  EXPECT_EQ(std::count_if(changes.begin(), changes.end(),
                          [](const Change& c) { return c.to == State::cancelled; }),
            2);
}

TEST(Scheduler, ConditionsOnTheOutcomesOfDependencies) {
  Scheduler s;
  s.admit(after(1, {}), Time{0});  // fails
  s.admit(after(2, {}), Time{0});  // succeeds
  s.admit(after(3, {1, 2}, AfterPolicy::failure), Time{0});
  s.admit(after(4, {1, 2}, AfterPolicy::one_success), Time{0});
  s.admit(after(5, {1, 2}, AfterPolicy::one_failed), Time{0});
  s.admit(after(6, {2}, AfterPolicy::one_failed), Time{0});
  s.admit(after(7, {1}, AfterPolicy::one_success), Time{0});
  s.admit(after(8, {1}, AfterPolicy::failure), Time{0});
  EXPECT_EQ(run_next(s, false, Time{1}), 1u);
  EXPECT_EQ(s.find(3)->state, State::waiting);
  EXPECT_EQ(s.find(4)->state, State::waiting);  // the "one" conditions wait for all to end
  EXPECT_EQ(s.find(5)->state, State::waiting);
  EXPECT_EQ(s.find(7)->state, State::cancelled);
  EXPECT_EQ(s.find(7)->reason, "no dependency succeeded");
  EXPECT_TRUE(s.find(7)->skipped);
  EXPECT_EQ(s.find(8)->state, State::queued);
  EXPECT_EQ(run_next(s, true, Time{2}), 2u);
  EXPECT_EQ(s.find(3)->reason, "dependency 2 succeeded");
  EXPECT_EQ(s.find(4)->state, State::queued);
  EXPECT_EQ(s.find(5)->state, State::queued);
  EXPECT_EQ(s.find(6)->reason, "no dependency failed");
  // Admitted after its dependencies ended, a job is judged the same way.
  s.admit(after(9, {1, 2}, AfterPolicy::one_failed), Time{3});
  EXPECT_EQ(s.find(9)->state, State::queued);
  s.admit(after(10, {1, 2}, AfterPolicy::failure), Time{3});
  EXPECT_EQ(s.find(10)->reason, "dependency 2 succeeded");
}

TEST(Scheduler, RetryingAFailedDependencyPutsItsSkippedDependantsBackInLine) {
  Scheduler s;
  s.admit(after(1, {}), Time{0});
  s.admit(after(2, {1}), Time{0});
  s.admit(after(3, {2}), Time{0});
  s.admit(after(5, {}), Time{0});
  s.admit(after(4, {1, 5}), Time{0});
  EXPECT_EQ(run_next(s, false, Time{1}), 1u);
  EXPECT_EQ(s.find(4)->state, State::cancelled);
  EXPECT_TRUE(s.cancel(5, "by hand", Time{1}));  // cancelled by a user: not skipped
  ASSERT_TRUE(s.retry(1, Time{2}));
  s.unskip({2, 3, 4}, Time{2});
  EXPECT_EQ(s.find(2)->state, State::waiting);
  EXPECT_EQ(s.find(3)->state, State::waiting);
  // 4 also needs 5, which a user cancelled: skipped again, saying why.
  EXPECT_EQ(s.find(4)->state, State::cancelled);
  EXPECT_EQ(s.find(4)->reason, "dependency 5 cancelled");
  EXPECT_EQ(run_next(s, true, Time{3}), 1u);
  EXPECT_EQ(run_next(s, true, Time{4}), 2u);
  EXPECT_EQ(run_next(s, true, Time{5}), 3u);
}

TEST(Scheduler, DependenciesNoLongerHeldAreAskedFor) {
  Scheduler s;
  EndedState ended = [](JobId id) -> std::optional<State> {
    if (id == 7) return State::succeeded;
    if (id == 8) return State::failed;
    return std::nullopt;  // 9: removed by retention
  };
  s.admit(after(10, {7}), Time{0}, ended);
  EXPECT_EQ(s.find(10)->state, State::queued);
  s.admit(after(11, {7, 8}), Time{0}, ended);
  EXPECT_EQ(s.find(11)->reason, "dependency 8 failed");
  s.admit(after(12, {8}, AfterPolicy::end), Time{0}, ended);
  EXPECT_EQ(s.find(12)->state, State::queued);
  s.admit(after(13, {9}), Time{0}, ended);
  EXPECT_EQ(s.find(13)->reason, "dependency 9 is no longer kept");
  s.admit(after(15, {9}, AfterPolicy::end), Time{0}, ended);  // it ended: all this one needs
  EXPECT_EQ(s.find(15)->state, State::queued);
  // A delayed job with dependencies waits for both.
  Job later = after(14, {10});
  later.ready_at = Time{100};
  s.admit(later, Time{0}, ended);
  EXPECT_EQ(run_next(s, true, Time{5}), 10u);
  EXPECT_EQ(s.find(14)->state, State::waiting);
  EXPECT_EQ(s.next_wakeup(), Time{100});
  s.advance(Time{100});
  EXPECT_EQ(s.find(14)->state, State::queued);
}

TEST(Scheduler, ABatchMayDependOnItsLaterJobs) {
  Scheduler s;
  Job failed = after(3, {});
  failed.state = State::failed;
  s.admit({after(1, {2}), after(2, {}), after(4, {3}), failed}, Time{0});
  EXPECT_EQ(s.find(1)->state, State::waiting);  // on 2, admitted after it
  EXPECT_EQ(s.find(2)->state, State::queued);
  EXPECT_EQ(s.find(4)->reason, "dependency 3 failed");
  EXPECT_EQ(run_next(s, true, Time{1}), 2u);
  EXPECT_EQ(s.find(1)->state, State::queued);
}

TEST(Scheduler, ALongChainOfSkipsNeedsNoDeepStack) {
  Scheduler s;
  s.admit(after(1, {}), Time{0});
  for (JobId id = 2; id <= 200'000; ++id) s.admit(after(id, {id - 1}), Time{0});
  EXPECT_EQ(run_next(s, false, Time{1}), 1u);
  EXPECT_EQ(s.find(200'000)->state, State::cancelled);
  EXPECT_TRUE(s.all_final());
}

TEST(Scheduler, AReleasedLeaseRequeuesAtOnceWithoutSpendingARetry) {
  Scheduler s;
  JobId id = s.submit(with_retries(0), Time{0});
  auto lease = s.lease(Time{0}, "w1", Time{100});
  EXPECT_FALSE(s.release(id, lease->token + 1, Time{5}, "not delivered"));
  EXPECT_TRUE(s.release(id, lease->token, Time{5}, "not delivered"));
  EXPECT_FALSE(s.release(id, lease->token, Time{6}, "not delivered"));
  const Job& job = *s.find(id);
  EXPECT_EQ(job.state, State::queued);
  EXPECT_EQ(job.attempts.back().end, AttemptEnd::lease_expired);
  EXPECT_EQ(job.attempts.back().reason, "not delivered");
  EXPECT_EQ(job.failures(), 0);
  EXPECT_FALSE(s.next_wakeup());  // no lease left to expire
  auto again = s.lease(Time{7}, "w2", Time{100});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->attempt, 2);
}

TEST(Scheduler, CancelInEveryUnfinishedState) {
  Scheduler s;
  JobOptions later;
  later.not_before = Time{100};
  JobId waiting = s.submit(later, Time{0});
  JobId running = s.submit({}, Time{0});
  JobId queued = s.submit({}, Time{0});
  auto lease = s.lease(Time{0}, "w", std::nullopt);
  ASSERT_EQ(lease->job, running);
  EXPECT_TRUE(s.cancel(waiting, "by user", Time{1}));
  EXPECT_TRUE(s.cancel(queued, "by user", Time{1}));
  EXPECT_TRUE(s.cancel(running, "by user", Time{1}));
  EXPECT_FALSE(s.cancel(running, "again", Time{2}));
  EXPECT_EQ(s.find(running)->attempts.back().end, AttemptEnd::cancelled);
  EXPECT_EQ(s.complete(running, lease->token, true, "", Time{3}), Completion::stale);
  EXPECT_EQ(s.find(running)->state, State::cancelled);
  EXPECT_EQ(s.find(queued)->reason, "by user");
  EXPECT_FALSE(s.lease(Time{200}, "w", std::nullopt));
  s.advance(Time{200});
  EXPECT_EQ(s.find(waiting)->state, State::cancelled);
  EXPECT_EQ(s.counts()[State::cancelled], 3u);
  EXPECT_TRUE(s.all_final());
}

TEST(Scheduler, ExpiredLeaseRequeuesWithoutSpendingARetry) {
  Scheduler s;
  JobId id = s.submit({}, Time{0});
  auto first = s.lease(Time{0}, "w1", Time{100});
  EXPECT_EQ(first->expires, Time{100});
  EXPECT_EQ(s.next_wakeup(), Time{100});
  EXPECT_TRUE(s.renew(id, first->token, Time{50}, Time{100}));
  s.advance(Time{149});
  EXPECT_EQ(s.find(id)->state, State::running);
  s.advance(Time{150});
  EXPECT_EQ(s.find(id)->state, State::queued);
  EXPECT_EQ(s.find(id)->attempts.back().end, AttemptEnd::lease_expired);
  EXPECT_FALSE(s.renew(id, first->token, Time{151}, Time{100}));

  auto second = s.lease(Time{160}, "w2", Time{100});
  EXPECT_EQ(second->attempt, 2);
  EXPECT_EQ(s.complete(id, first->token, true, "", Time{170}), Completion::stale);
  EXPECT_EQ(s.complete(id, second->token, true, "", Time{170}), Completion::recorded);
  EXPECT_EQ(s.find(id)->state, State::succeeded);
  EXPECT_EQ(s.find(id)->failures(), 0);
  EXPECT_FALSE(s.next_wakeup());
}

TEST(Scheduler, RenewedLeasesExpireAtTheirLastRenewalEitherWay) {
  Scheduler s;
  JobId longer = s.submit({}, Time{0});
  JobId shorter = s.submit({}, Time{0});
  auto a = s.lease(Time{0}, "w1", Time{100});
  auto b = s.lease(Time{0}, "w1", Time{100});
  EXPECT_TRUE(s.renew(shorter, b->token, Time{50}, Time{10}));  // sooner than before
  s.advance(Time{59});
  EXPECT_EQ(s.find(shorter)->state, State::running);
  s.advance(Time{60});
  EXPECT_EQ(s.find(shorter)->attempts.back().end, AttemptEnd::lease_expired);

  for (Time now{60}; now <= Time{310}; now += Time{50}) {  // heartbeats, past the first expiry
    s.advance(now);
    EXPECT_TRUE(s.renew(longer, a->token, now, Time{100}));
  }
  s.advance(Time{409});
  EXPECT_EQ(s.find(longer)->state, State::running);
  EXPECT_LE(s.next_wakeup(), Time{410});  // early at most: it never misses an expiry
  s.advance(Time{410});
  EXPECT_EQ(s.find(longer)->attempts.back().end, AttemptEnd::lease_expired);
}

TEST(Scheduler, RetryRunsAFinishedJobAgainWithAFreshBudget) {
  Scheduler s;
  JobId id = s.submit(with_retries(1, Time{0}), Time{0});
  for (int i = 0; i < 2; ++i)
    s.complete(id, s.lease(Time{0}, "w", std::nullopt)->token, false, "exit 1", Time{0});
  EXPECT_EQ(s.find(id)->state, State::failed);
  s.take_changes();
  EXPECT_TRUE(s.retry(id, Time{5}));
  auto changes = s.take_changes();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].from, State::failed);
  EXPECT_EQ(changes[0].to, State::queued);
  EXPECT_EQ(s.find(id)->failures(), 0);
  EXPECT_EQ(s.find(id)->reason, "");
  // The budget is whole again: one failure, one retry, then failed for good.
  auto third = s.lease(Time{5}, "w", std::nullopt);
  EXPECT_EQ(third->attempt, 3);
  s.complete(id, third->token, false, "exit 1", Time{6});
  EXPECT_EQ(s.find(id)->state, State::queued);
  s.complete(id, s.lease(Time{6}, "w", std::nullopt)->token, false, "exit 1", Time{7});
  EXPECT_EQ(s.find(id)->state, State::failed);
  EXPECT_EQ(s.counts()[State::failed], 1u);

  JobId running = s.submit({}, Time{8});
  s.lease(Time{8}, "w", std::nullopt);
  EXPECT_FALSE(s.retry(running, Time{8}));
  EXPECT_FALSE(s.retry(999, Time{8}));
}

TEST(Scheduler, RestoresEveryStateAfterARestart) {
  // What a server had when it died, as its store would give it back.
  auto job = [](JobId id, State state) {
    Job restored;
    restored.id = id;
    restored.state = state;
    return restored;
  };
  Scheduler s;
  Job waiting = job(1, State::waiting);
  waiting.ready_at = Time{500};
  Job running = job(2, State::running);
  running.attempts.push_back({.number = 1, .lease = 41, .worker = "w", .started = Time{10}});
  Job failed = job(5, State::failed);  // ids 3 and 4 never committed
  failed.reason = "exit 1";
  s.admit(waiting, Time{100});
  s.admit(running, Time{100});
  s.admit(job(4, State::queued), Time{100});
  s.admit(failed, Time{100});
  EXPECT_THROW(s.admit(job(4, State::queued), Time{100}), std::invalid_argument);

  EXPECT_EQ(s.find(1)->state, State::waiting);
  EXPECT_EQ(s.find(3), nullptr);
  EXPECT_EQ(s.find(5)->state, State::failed);
  EXPECT_EQ(s.counts().total(), 4u);
  // The running job lost its attempt to the restart and runs again, first
  // (lowest id among the queued), with a fresh lease token.
  EXPECT_EQ(s.find(2)->attempts[0].end, AttemptEnd::lease_expired);
  EXPECT_EQ(s.find(2)->attempts[0].reason, "server restarted");
  auto lease = s.lease(Time{100}, "w2", std::nullopt);
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->job, 2u);
  EXPECT_EQ(lease->attempt, 2);
  EXPECT_GT(lease->token, 41u);
  EXPECT_EQ(s.find(2)->failures(), 0);
  EXPECT_EQ(s.lease(Time{100}, "w2", std::nullopt)->job, 4u);
  s.advance(Time{500});
  EXPECT_EQ(s.find(1)->state, State::queued);
  EXPECT_EQ(s.submit({}, Time{600}), 6u);  // new ids continue after the highest
}

// --- Group limits ------------------------------------------------------------

// A job of the queue named after the group (a group of its own).
JobOptions in_group(std::string group, std::string key = "") {
  JobOptions options;
  options.queue = std::move(group);
  options.concurrency_key = std::move(key);
  return options;
}

std::vector<JobId> lease_all(Scheduler& s, Time now) {
  std::vector<JobId> leased;
  while (auto lease = s.lease(now, "w", std::nullopt)) leased.push_back(lease->job);
  return leased;
}

TEST(SchedulerLimits, APausedGroupStartsNothingWhileItsRunningJobsFinish) {
  Scheduler s;
  JobId first = s.submit(in_group("q"), Time{0});
  JobId second = s.submit(in_group("q"), Time{0});
  JobId other = s.submit(in_group("r"), Time{0});
  auto lease = s.lease(Time{0}, "w", std::nullopt);
  ASSERT_EQ(lease->job, first);
  s.set_limits("q", {.paused = true}, Time{1});
  EXPECT_EQ(lease_all(s, Time{2}), std::vector<JobId>{other});  // other groups go on
  EXPECT_EQ(s.complete(first, lease->token, true, "", Time{3}), Completion::recorded);
  EXPECT_EQ(s.find(second)->state, State::queued);
  EXPECT_TRUE(lease_all(s, Time{4}).empty());
  s.set_limits("q", {}, Time{5});
  EXPECT_EQ(lease_all(s, Time{5}), std::vector<JobId>{second});
}

TEST(SchedulerLimits, MaxRunningHoldsAcrossQueuesOfTheGroup) {
  Scheduler s;
  s.set_limits("q", {.max_running = 2}, Time{0});
  // One group, two queues (the Service makes one per set of labels).
  s.set_group("q#gpu", "q");
  std::vector<JobId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(s.submit(in_group("q"), Time{0}));
  for (int i = 0; i < 3; ++i) ids.push_back(s.submit(in_group("q#gpu"), Time{0}));
  auto first = s.lease(Time{0}, "a", std::nullopt, std::vector<std::string>{"q#gpu"});
  ASSERT_TRUE(first);
  EXPECT_EQ(first->job, ids[3]);
  EXPECT_EQ(lease_all(s, Time{0}), std::vector<JobId>{ids[0]});
  EXPECT_EQ(s.limits("q")->max_running, 2u);
  EXPECT_EQ(s.running_in("q"), 2u);
  s.complete(first->job, first->token, false, "exit 1", Time{1});  // failed: leaves running
  EXPECT_EQ(lease_all(s, Time{1}), std::vector<JobId>{ids[1]});
  // Raising the limit lets more start at once; lowering it stops no one.
  s.set_limits("q", {.max_running = 4}, Time{2});
  EXPECT_EQ(lease_all(s, Time{2}), (std::vector<JobId>{ids[2], ids[4]}));
  s.set_limits("q", {.max_running = 1}, Time{3});
  EXPECT_EQ(s.running_in("q"), 4u);
  EXPECT_TRUE(lease_all(s, Time{3}).empty());
}

TEST(SchedulerLimits, ARateStartsJobsFromATokenBucket) {
  Scheduler s;
  // 2 jobs a second, bursts of up to 3.
  s.set_limits("q", {.rate = Rate{2, Time{1000}}, .burst = 3}, Time{0});
  for (int i = 0; i < 20; ++i) s.submit(in_group("q"), Time{0});
  EXPECT_EQ(lease_all(s, Time{0}).size(), 3u);  // the bucket starts full
  EXPECT_EQ(s.next_wakeup(), Time{500});        // the next token
  EXPECT_TRUE(lease_all(s, Time{499}).empty());
  s.advance(Time{500});
  EXPECT_FALSE(s.next_wakeup() && *s.next_wakeup() <= Time{500});
  EXPECT_EQ(lease_all(s, Time{500}).size(), 1u);
  EXPECT_EQ(lease_all(s, Time{1750}).size(), 2u);  // 2.5 tokens came: 2 used, half kept
  EXPECT_EQ(s.next_wakeup(), Time{2000});
  EXPECT_EQ(lease_all(s, Time{2000}).size(), 1u);
  // Idle for long, the bucket holds no more than the burst.
  EXPECT_EQ(lease_all(s, Time{60'000}).size(), 3u);
  // A per-minute rate: one job, then one every 30 s.
  s.set_limits("q", {.rate = Rate{2, Time{60'000}}, .burst = 1}, Time{60'000});
  EXPECT_TRUE(lease_all(s, Time{60'000}).empty());  // the bucket keeps what it had: none
  EXPECT_EQ(lease_all(s, Time{90'000}).size(), 1u);
  EXPECT_TRUE(lease_all(s, Time{119'999}).empty());
}

TEST(SchedulerLimits, AConcurrencyKeyRunsOneJobAtATimeByDefault) {
  Scheduler s;
  JobId a1 = s.submit(in_group("q", "alice"), Time{0});
  JobId a2 = s.submit(in_group("q", "alice"), Time{0});
  JobId b1 = s.submit(in_group("q", "bob"), Time{0});
  JobId a3 = s.submit(in_group("q", "alice"), Time{0});
  JobId free = s.submit(in_group("q"), Time{0});
  auto lease_a1 = s.lease(Time{0}, "w", std::nullopt);
  EXPECT_EQ(lease_a1->job, a1);
  // a2 and a3 wait for alice's running job; the others pass them.
  EXPECT_EQ(lease_all(s, Time{0}), (std::vector<JobId>{b1, free}));
  EXPECT_EQ(s.find(a2)->state, State::queued);
  EXPECT_EQ(s.counts()[State::queued], 2u);
  // A waiting job can be cancelled.
  EXPECT_TRUE(s.cancel(a2, "no", Time{1}));
  s.complete(a1, lease_a1->token, true, "", Time{2});
  EXPECT_EQ(lease_all(s, Time{2}), std::vector<JobId>{a3});
  // A higher limit for the group lets more of one key run at once.
  JobId a4 = s.submit(in_group("q", "alice"), Time{3});
  EXPECT_TRUE(lease_all(s, Time{3}).empty());
  s.set_limits("q", {.per_key = 2}, Time{4});
  EXPECT_EQ(lease_all(s, Time{4}), std::vector<JobId>{a4});
  // Keys of other groups are other keys.
  JobId other = s.submit(in_group("r", "alice"), Time{5});
  EXPECT_EQ(lease_all(s, Time{5}), std::vector<JobId>{other});
}

TEST(SchedulerLimits, AJobWaitingOnItsKeyKeepsItsPlaceAndPriority) {
  Scheduler s;
  JobOptions urgent = in_group("q", "k");
  urgent.priority = 5;
  JobId running = s.submit(in_group("q", "k"), Time{0});
  auto lease = s.lease(Time{0}, "w", std::nullopt);
  JobId low = s.submit(in_group("q", "k"), Time{1});
  JobId high = s.submit(urgent, Time{1});
  EXPECT_TRUE(lease_all(s, Time{1}).empty());
  // An expired or released lease frees the key like an end does.
  s.release(running, lease->token, Time{2}, "gone");
  EXPECT_EQ(lease_all(s, Time{2}), std::vector<JobId>{high});
  EXPECT_EQ(s.find(low)->state, State::queued);
  EXPECT_EQ(s.find(running)->state, State::queued);
}

TEST(SchedulerLimits, HoldOfTellsWhatKeepsAQueuedJobBack) {
  Scheduler s;
  JobId first = s.submit(in_group("q", "k"), Time{0});
  JobId same_key = s.submit(in_group("q", "k"), Time{0});
  JobId other = s.submit(in_group("q"), Time{0});
  EXPECT_EQ(s.hold_of(first), Hold::none);  // it waits for a worker
  auto lease = s.lease(Time{0}, "w", std::nullopt);
  EXPECT_EQ(s.hold_of(first), Hold::none);  // running: nothing holds it
  EXPECT_EQ(s.hold_of(same_key), Hold::key);
  EXPECT_EQ(s.hold_of(other), Hold::none);

  s.set_limits("q", {.max_running = 1}, Time{1});
  EXPECT_EQ(s.hold_of(other), Hold::max_running);
  s.set_limits("q", {.paused = true, .max_running = 1}, Time{1});
  EXPECT_EQ(s.hold_of(other), Hold::paused);
  EXPECT_EQ(s.hold_of(same_key), Hold::paused);  // what would still hold it comes first

  s.complete(first, lease->token, true, "", Time{2});
  s.set_limits("q", {.rate = Rate{1, Time{1000}}}, Time{2});
  EXPECT_EQ(s.hold_of(same_key), Hold::none);  // a full bucket, the key free
  EXPECT_TRUE(s.lease(Time{2}, "w", std::nullopt));
  s.advance(Time{3});
  EXPECT_EQ(s.hold_of(other), Hold::rate);  // the token is spent
  s.advance(Time{1002});
  EXPECT_EQ(s.hold_of(other), Hold::none);
  EXPECT_EQ(s.hold_of(12345), Hold::none);
}

}  // namespace
}  // namespace ferry::sched
