#include "server/metrics.hpp"

#include <gtest/gtest.h>

namespace ferry::server {
namespace {

using namespace std::chrono_literals;

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(Histogram, CountsEachValueInTheFirstBucketWhoseBoundHoldsIt) {
  static constexpr double kBounds[] = {1, 5};
  store::Histogram histogram(kBounds);
  for (double value : {0.5, 1.0, 1.5, 5.0, 7.0, 70.0}) histogram.observe(value);
  EXPECT_EQ(std::vector<std::uint64_t>(histogram.counts().begin(), histogram.counts().end()),
            (std::vector<std::uint64_t>{2, 2, 2}));
  EXPECT_EQ(histogram.count(), 6u);
  EXPECT_DOUBLE_EQ(histogram.sum(), 85.0);
}

sched::Job job_with(std::vector<sched::Attempt> attempts, Time ready_at) {
  sched::Job job;
  job.ready_at = ready_at;
  job.attempts = std::move(attempts);
  return job;
}

TEST(StepOf, AStartWaitedSinceTheJobWasReadyAnEndRanSinceItsStart) {
  using sched::AttemptEnd;
  using sched::State;
  sched::Attempt ended{1, 7, "w", Time(1000), Time(3500), AttemptEnd::failed, "exit 1"};
  sched::Attempt started{2, 8, "w", Time(5000), Time(0), AttemptEnd::running, ""};

  Step start = step_of(job_with({ended, started}, Time(4000)), State::queued, State::running);
  EXPECT_FALSE(start.ended);
  EXPECT_DOUBLE_EQ(start.seconds, 1.0);

  Step end = step_of(job_with({ended}, Time(4000)), State::running, State::waiting);
  EXPECT_EQ(end.ended, AttemptEnd::failed);
  EXPECT_DOUBLE_EQ(end.seconds, 2.5);

  Step cancelled = step_of(job_with({}, Time(0)), State::queued, State::cancelled);
  EXPECT_FALSE(cancelled.ended);
}

TEST(JobMetrics, CountsByQueueAndByMinute) {
  using sched::AttemptEnd;
  using sched::State;
  JobMetrics metrics;
  Time now(60'000 * 1000 + 5'000);
  metrics.count("a", State::queued, Step{}, now);
  metrics.count("a", State::queued, Step{}, now);
  metrics.count("b", State::queued, Step{}, now);
  metrics.count("a", State::running, Step{.from = State::queued, .seconds = 0.2}, now);
  metrics.count("a", State::waiting,
                Step{.from = State::running, .ended = AttemptEnd::failed, .seconds = 1}, now);
  metrics.count("a", State::queued,
                Step{.from = State::running, .ended = AttemptEnd::lease_expired, .seconds = 30},
                now);
  metrics.count("a", State::succeeded,
                Step{.from = State::running, .ended = AttemptEnd::succeeded, .seconds = 2},
                now + 60s);
  metrics.count("b", State::failed,
                Step{.from = State::running, .ended = AttemptEnd::failed, .seconds = 3}, now + 60s);
  metrics.count("b", State::queued, Step{.from = State::failed}, now + 60s);

  const JobMetrics::Queue& a = metrics.queues().at("a");
  EXPECT_EQ(a.submitted, 2u);
  EXPECT_EQ(a.started, 1u);
  EXPECT_EQ(a.retried, 1u);
  EXPECT_EQ(a.lease_expiries, 1u);
  EXPECT_EQ(a.succeeded, 1u);
  EXPECT_EQ(a.run_seconds.count(), 2u);  // a lease that expired ran for nobody knows how long
  EXPECT_DOUBLE_EQ(a.run_seconds.sum(), 3.0);
  EXPECT_EQ(a.wait_seconds.count(), 1u);
  const JobMetrics::Queue& b = metrics.queues().at("b");
  EXPECT_EQ(b.failed, 1u);
  EXPECT_EQ(b.retried, 1u);  // by request

  JobMetrics::LastHour hour = metrics.last_hour(now + 60s);
  EXPECT_EQ(hour.first_minute, Time(60'000 * (1000 + 1 - 59)));
  EXPECT_EQ(hour.submitted[58], 3u);
  EXPECT_EQ(hour.succeeded[59], 1u);
  EXPECT_EQ(hour.failed[59], 1u);
  // An hour on, those minutes are gone.
  JobMetrics::LastHour later = metrics.last_hour(now + 3660s);
  for (std::size_t i = 0; i < JobMetrics::kMinutes; ++i)
    EXPECT_EQ(later.submitted[i] + later.succeeded[i] + later.failed[i], 0u);
}

TEST(RenderMetrics, WritesTheTextFormatWithCumulativeBucketsForEveryQueue) {
  JobMetrics jobs;
  jobs.count("q", sched::State::queued, Step{}, Time(0));
  jobs.count("q", sched::State::running, Step{.from = sched::State::queued, .seconds = 0.003},
             Time(0));
  jobs.count(
      "q", sched::State::succeeded,
      Step{.from = sched::State::running, .ended = sched::AttemptEnd::succeeded, .seconds = 0.003},
      Time(0));
  MetricsSnapshot snapshot;
  snapshot.jobs = &jobs;
  snapshot.kept["q"].by_state[static_cast<int>(sched::State::succeeded)] = 1;
  snapshot.kept["odd\"name"].by_state[static_cast<int>(sched::State::queued)] = 4;
  snapshot.stale_completions = 2;
  snapshot.workers_connected = 3;
  snapshot.store.commit_seconds.observe(0.004);
  snapshot.store_size.bytes = 8192;
  snapshot.process.resident_bytes = 1 << 20;
  std::string text = render_metrics(snapshot);

  EXPECT_TRUE(has_line(text, "# TYPE ferry_jobs_submitted_total counter")) << text;
  EXPECT_TRUE(has_line(text, R"(ferry_jobs_submitted_total{queue="q"} 1)")) << text;
  EXPECT_TRUE(has_line(text, R"(ferry_jobs_submitted_total{queue="odd\"name"} 0)")) << text;
  EXPECT_TRUE(has_line(text, R"(ferry_jobs{queue="odd\"name",state="queued"} 4)")) << text;
  EXPECT_TRUE(has_line(text, R"(ferry_jobs{queue="q",state="succeeded"} 1)")) << text;
  EXPECT_TRUE(has_line(text, R"(ferry_job_duration_seconds_bucket{queue="q",le="0.001"} 0)"));
  EXPECT_TRUE(has_line(text, R"(ferry_job_duration_seconds_bucket{queue="q",le="0.005"} 1)"));
  EXPECT_TRUE(has_line(text, R"(ferry_job_duration_seconds_bucket{queue="q",le="+Inf"} 1)"));
  EXPECT_TRUE(has_line(text, R"(ferry_job_duration_seconds_sum{queue="q"} 0.003)")) << text;
  EXPECT_TRUE(has_line(text, R"(ferry_job_duration_seconds_count{queue="q"} 1)"));
  EXPECT_TRUE(has_line(text, R"(ferry_job_queue_wait_seconds_count{queue="q"} 1)"));
  EXPECT_TRUE(has_line(text, "ferry_stale_completions_total 2"));
  EXPECT_TRUE(has_line(text, "ferry_workers_connected 3"));
  EXPECT_TRUE(has_line(text, R"(ferry_store_commit_seconds_bucket{le="0.0025"} 0)")) << text;
  EXPECT_TRUE(has_line(text, R"(ferry_store_commit_seconds_bucket{le="0.005"} 1)")) << text;
  EXPECT_TRUE(has_line(text, "ferry_store_size_bytes 8192"));
  EXPECT_TRUE(has_line(text, "process_resident_memory_bytes 1048576"));
  EXPECT_EQ(text.back(), '\n');
}

TEST(ProcessStats, AreReadFromProc) {
  ProcessStats stats = read_process_stats();
  EXPECT_GT(stats.resident_bytes, 0u);
  EXPECT_GT(stats.virtual_bytes, stats.resident_bytes);
  EXPECT_GE(stats.open_fds, 3u);
  EXPECT_GT(stats.max_fds, 0u);
  EXPECT_GT(stats.start_time_seconds, 1.6e9);
}

}  // namespace
}  // namespace ferry::server
