// Drives the scheduler with many simulated workers and random events —
// submits, leases, successes, failures, silent worker deaths, stale and
// duplicate completions, cancels and clock jumps — and checks after every
// step that no job is lost, none is held by two live leases, and in the end
// every job reaches a final state recorded exactly once. The limits of a
// group of queues change all along (paused, max_running, a rate, the
// running jobs allowed per concurrency key): no lease ever breaks them.
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
  explicit Simulation(std::uint32_t seed) : random_(seed) {
    scheduler.set_group("other#gpu", "other");
  }

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
        if (pick(4) == 0)
          change_limits();
        else if (submitted > 0)
          scheduler.cancel(1 + pick(static_cast<int>(submitted)), "test", now_);
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
    const char* queues[] = {"default", "other", "other#gpu"};
    options.queue = queues[pick(3)];
    const char* keys[] = {"", "", "a", "b"};
    options.concurrency_key = keys[pick(4)];
    options.retry.max_retries = pick(3);
    options.retry.backoff = Time{pick(200)};
    if (pick(5) == 0) options.not_before = now_ + Time{pick(1000)};
    scheduler.submit(options, now_);
    ++submitted;
  }

  void change_limits() {
    GroupLimits limits;
    limits.paused = pick(8) == 0;
    if (pick(2)) limits.max_running = 1 + pick(5);
    if (pick(3) == 0) limits.rate = Rate{static_cast<std::uint32_t>(1 + pick(20)), Time{1000}};
    limits.burst = static_cast<std::uint32_t>(pick(3));
    limits.per_key = static_cast<std::uint32_t>(1 + pick(2));
    scheduler.set_limits("other", limits, now_);
    limits_ = limits;
  }

  static std::string group_of(const Job& job) {
    return job.options.queue == "default" ? "default" : "other";
  }

  // The jobs running now, as the jobs themselves say, by group and by key.
  std::map<std::string, std::size_t> running_by(bool by_key) {
    std::map<std::string, std::size_t> running;
    for (JobId id = 1; id <= submitted; ++id)
      if (const Job* job = scheduler.find(id); job->state == State::running)
        running[group_of(*job) + (by_key ? "/" + job->options.concurrency_key : "")]++;
    return running;
  }

  void lease(int worker) {
    auto lease = scheduler.lease(now_, "w" + std::to_string(worker), kLeaseFor);
    if (!lease) return;
    held_[worker].push_back({lease->job, lease->token});
    const Job& job = *scheduler.find(lease->job);
    if (group_of(job) != "other") return;
    EXPECT_FALSE(limits_.paused) << "job " << job.id << " started in a paused group";
    if (limits_.max_running) {
      EXPECT_LE(running_by(false)["other"], *limits_.max_running) << "job " << job.id;
    }
    if (!job.options.concurrency_key.empty()) {
      EXPECT_LE(running_by(true)["other/" + job.options.concurrency_key], limits_.per_key)
          << "job " << job.id;
    }
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
    scheduler.set_limits("other", {.per_key = 1000}, now_);
    limits_ = {.per_key = 1000};
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
    auto running = running_by(false);
    for (const char* group : {"default", "other"})
      EXPECT_EQ(scheduler.running_in(group), running[group]) << group;
  }

  static constexpr int kWorkers = 20;
  static constexpr Time kLeaseFor{3000};
  std::mt19937 random_;
  Time now_{0};
  std::vector<Held> held_[kWorkers];
  GroupLimits limits_;  // of the group "other"
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
