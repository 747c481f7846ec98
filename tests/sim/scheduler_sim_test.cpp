// Drives the scheduler with many simulated workers and random events —
// submits, leases, successes, failures, silent worker deaths, stale and
// duplicate completions, cancels and clock jumps — and checks after every
// step that no job is lost, none is held by two live leases, and in the end
// every job reaches a final state recorded exactly once.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "sched/scheduler.hpp"

namespace ferry::sched {
namespace {

struct Held {
  JobId job;
  std::uint64_t token;
};

class Simulation {
 public:
  explicit Simulation(std::uint32_t seed) : random_(seed) {}

  void run(int steps) {
    for (int step = 0; step < steps; ++step) {
      random_step();
      if (step % 50 == 0) check_invariants();  // O(jobs): every step would be quadratic
    }
    drain();
    check_invariants();
  }

  Scheduler scheduler;
  std::map<JobId, int> recorded_successes;
  std::size_t submitted = 0;

 private:
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(random_); }

  void random_step() {
    int worker = pick(kWorkers);
    switch (pick(10)) {
      case 0:
      case 1:
        submit();
        break;
      case 2:
      case 3:
        lease(worker);
        break;
      case 4:
      case 5:
      case 6:
        finish(worker, pick(3) != 0);
        break;
      case 7:  // a worker dies silently: its leases will expire
        held_[worker].clear();
        break;
      case 8:
        if (submitted > 0) scheduler.cancel(1 + pick(static_cast<int>(submitted)), "test", now_);
        break;
      case 9:
        now_ += Time{pick(3) == 0 ? 5000 : 50};  // sometimes a big clock jump
        scheduler.advance(now_);
        renew_some();
        break;
    }
  }

  void submit() {
    JobOptions options;
    options.priority = pick(3);
    options.queue = pick(2) ? "default" : "other";
    options.retry.max_retries = pick(3);
    options.retry.backoff = Time{pick(200)};
    if (pick(5) == 0) options.not_before = now_ + Time{pick(1000)};
    scheduler.submit(options, now_);
    ++submitted;
  }

  void lease(int worker) {
    if (auto lease = scheduler.lease(now_, "w" + std::to_string(worker), kLeaseFor))
      held_[worker].push_back({lease->job, lease->token});
  }

  void finish(int worker, bool succeeded) {
    auto& held = held_[worker];
    if (held.empty()) return;
    std::size_t index = static_cast<std::size_t>(pick(static_cast<int>(held.size())));
    Held h = held[index];
    held.erase(held.begin() + static_cast<std::ptrdiff_t>(index));
    record(h, succeeded);
    if (pick(10) == 0) record(h, succeeded);  // a duplicate delivery must be stale
  }

  void record(Held h, bool succeeded) {
    if (scheduler.complete(h.job, h.token, succeeded, succeeded ? "" : "exit 1", now_) ==
            Completion::recorded &&
        succeeded)
      recorded_successes[h.job]++;
  }

  void renew_some() {
    for (auto& held : held_)
      for (Held h : held)
        if (pick(2)) scheduler.renew(h.job, h.token, now_, kLeaseFor);
  }

  // No more faults: workers take and finish everything; time runs on.
  void drain() {
    for (int round = 0; round < 100000 && !scheduler.all_final(); ++round) {
      for (auto& held : held_) {
        for (Held h : held) record(h, true);
        held.clear();
      }
      while (auto lease = scheduler.lease(now_, "drain", kLeaseFor))
        record({lease->job, lease->token}, true);
      now_ += Time{1000};
      scheduler.advance(now_);
    }
  }

  void check_invariants() {
    Counts counted;
    std::map<JobId, int> live_holders;
    for (auto& held : held_)
      for (Held h : held) {
        const Job* job = scheduler.find(h.job);
        if (job->state == State::running && job->attempts.back().lease == h.token)
          live_holders[h.job]++;
      }
    for (JobId id = 1; id <= submitted; ++id) {
      const Job* job = scheduler.find(id);
      ASSERT_NE(job, nullptr) << "job " << id << " lost";
      counted.by_state[static_cast<int>(job->state)]++;
      int open_attempts = 0;
      for (std::size_t i = 0; i < job->attempts.size(); ++i) {
        EXPECT_EQ(job->attempts[i].number, static_cast<int>(i + 1));
        if (job->attempts[i].end == AttemptEnd::running) ++open_attempts;
      }
      EXPECT_EQ(open_attempts, job->state == State::running ? 1 : 0) << "job " << id;
      EXPECT_LE(live_holders[id], 1) << "job " << id << " held by two live leases";
      EXPECT_LE(job->failures(), job->options.retry.max_retries + 1);
      if (job->state == State::failed) {
        EXPECT_EQ(job->failures(), job->options.retry.max_retries + 1);
      }
      if (job->state == State::succeeded) {
        EXPECT_EQ(job->attempts.back().end, AttemptEnd::succeeded);
      }
      EXPECT_LE(recorded_successes[id], 1) << "job " << id << " recorded twice";
    }
    for (State s : {State::waiting, State::queued, State::running, State::succeeded, State::failed,
                    State::cancelled})
      EXPECT_EQ(counted[s], scheduler.counts()[s]) << name(s);
  }

  static constexpr int kWorkers = 20;
  static constexpr Time kLeaseFor{3000};
  std::mt19937 random_;
  Time now_{0};
  std::vector<Held> held_[kWorkers];
};

class SchedulerSimulation : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(SchedulerSimulation, EveryJobEndsAndIsRecordedOnce) {
  Simulation sim(GetParam());
  sim.run(20000);
  EXPECT_GT(sim.submitted, 1000u);
  EXPECT_TRUE(sim.scheduler.all_final());
  EXPECT_EQ(sim.scheduler.counts().total(), sim.submitted);
  for (JobId id = 1; id <= sim.submitted; ++id) {
    const Job& job = *sim.scheduler.find(id);
    if (job.state == State::succeeded) {
      EXPECT_EQ(sim.recorded_successes[id], 1);
    }
  }
  EXPECT_GT(sim.scheduler.counts().stale_completions, 0u);
  EXPECT_GT(sim.scheduler.counts()[State::failed], 0u);
  EXPECT_GT(sim.scheduler.counts()[State::cancelled], 0u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, SchedulerSimulation, ::testing::Values(1u, 2u, 3u, 42u));

}  // namespace
}  // namespace ferry::sched
