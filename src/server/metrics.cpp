#include "server/metrics.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace ferry::server {

// --- Counting ---------------------------------------------------------------

Step step_of(const sched::Job& job, std::optional<sched::State> from, sched::State to) {
  Step step{.from = from};
  if (to == sched::State::running && !job.attempts.empty()) {
    const sched::Attempt& started = job.attempts.back();
    step.seconds = static_cast<double>((started.started - job.ready_at).count()) / 1000;
    step.seconds = std::max(step.seconds, 0.0);  // a delay may end after the lease was asked for
  } else if (from == sched::State::running) {
    // The attempt that just ended: the newest one that is not running.
    for (auto attempt = job.attempts.rbegin(); attempt != job.attempts.rend(); ++attempt)
      if (attempt->end != sched::AttemptEnd::running) {
        step.ended = attempt->end;
        step.seconds = static_cast<double>((attempt->ended - attempt->started).count()) / 1000;
        break;
      }
  }
  return step;
}

JobMetrics::Queue& JobMetrics::queue(std::string_view name) {
  if (last_queue_ && name == last_name_) return *last_queue_;
  auto found = queues_.find(name);
  if (found == queues_.end()) found = queues_.emplace(std::string(name), Queue{}).first;
  last_queue_ = &found->second;
  last_name_ = found->first;  // map keys stay where they are
  return found->second;
}

JobMetrics::Minute& JobMetrics::minute(Time now) {
  std::int64_t number = now.count() / 60'000;
  Minute& slot = minutes_[static_cast<std::size_t>(number) % kMinutes];
  if (slot.number != number) slot = Minute{number};
  return slot;
}

void JobMetrics::count(std::string_view name, sched::State to, const Step& step, Time now) {
  using sched::State;
  Queue& counts = queue(name);
  if (!step.from) {
    ++counts.submitted;
    ++minute(now).submitted;
    return;
  }
  if (to == State::running) {
    ++counts.started;
    counts.wait_seconds.observe(step.seconds);
    return;
  }
  if (step.ended == sched::AttemptEnd::lease_expired) ++counts.lease_expiries;
  if (step.ended == sched::AttemptEnd::succeeded || step.ended == sched::AttemptEnd::failed)
    counts.run_seconds.observe(step.seconds);
  switch (to) {
    case State::succeeded:
      ++counts.succeeded;
      ++minute(now).succeeded;
      break;
    case State::failed:
      ++counts.failed;
      ++minute(now).failed;
      break;
    case State::cancelled:
      ++counts.cancelled;
      break;
    default:  // waiting or queued again: after a failed attempt, or retried by request
      if (step.ended == sched::AttemptEnd::failed || *step.from == State::failed ||
          *step.from == State::cancelled)
        ++counts.retried;
      break;
  }
}

JobMetrics::LastHour JobMetrics::last_hour(Time now) const {
  LastHour hour;
  std::int64_t current = now.count() / 60'000;
  std::int64_t first = current - static_cast<std::int64_t>(kMinutes) + 1;
  hour.first_minute = Time(first * 60'000);
  for (const Minute& slot : minutes_) {
    if (slot.number < first || slot.number > current) continue;  // older than an hour
    auto at = static_cast<std::size_t>(slot.number - first);
    hour.submitted[at] = slot.submitted;
    hour.succeeded[at] = slot.succeeded;
    hour.failed[at] = slot.failed;
  }
  return hour;
}

// --- The process ------------------------------------------------------------

ProcessStats read_process_stats() {
  ProcessStats stats;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::ifstream stat_file("/proc/self/stat");
  std::string line;
  if (std::getline(stat_file, line) && line.rfind(')') != std::string::npos) {
    // Fields after the command's name, which may hold spaces and ')'; the
    // first of them is field 3 of proc(5).
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::vector<std::string> field;
    for (std::string word; fields >> word;) field.push_back(word);
    auto number = [&](std::size_t proc_field) -> std::uint64_t {
      std::size_t at = proc_field - 3;
      return at < field.size() ? std::strtoull(field[at].c_str(), nullptr, 10) : 0;
    };
    stats.cpu_seconds = static_cast<double>(number(14) + number(15)) / ticks;
    stats.virtual_bytes = number(23);
    stats.resident_bytes = number(24) * page;
    std::ifstream system_stat("/proc/stat");
    for (std::string entry; std::getline(system_stat, entry);)
      if (entry.rfind("btime ", 0) == 0)
        stats.start_time_seconds =
            static_cast<double>(std::strtoull(entry.c_str() + 6, nullptr, 10)) +
            static_cast<double>(number(22)) / ticks;
  }
  std::error_code ignored;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ignored);
       it != std::filesystem::directory_iterator(); it.increment(ignored))
    ++stats.open_fds;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) stats.max_fds = limit.rlim_cur;
  return stats;
}

// --- The text format --------------------------------------------------------

namespace {

std::string label_value(std::string_view value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') escaped += '\\';
    if (c == '\n') {
      escaped += "\\n";
      continue;
    }
    escaped += c;
  }
  return escaped;
}

std::string number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

// Writes families one after another: each its HELP and TYPE, then its samples.
class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  // `labels`: already written, as `queue="a"` (empty: none).
  void sample(std::string_view name, std::string_view labels, std::uint64_t value) {
    out_ += fmt::format("{}{}{}{} {}\n", name, labels.empty() ? "" : "{", labels,
                        labels.empty() ? "" : "}", value);
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    out_ += fmt::format("{}{}{}{} {}\n", name, labels.empty() ? "" : "{", labels,
                        labels.empty() ? "" : "}", number(value));
  }
  void histogram(std::string_view name, std::string_view labels, const store::Histogram& values) {
    std::string separator = labels.empty() ? "" : ",";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < values.counts().size(); ++i) {
      cumulative += values.counts()[i];
      double bound = i < values.bounds().size() ? values.bounds()[i] : INFINITY;
      out_ += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, separator, number(bound),
                          cumulative);
    }
    sample(fmt::format("{}_sum", name), labels, values.sum());
    sample(fmt::format("{}_count", name), labels, cumulative);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string render_metrics(const MetricsSnapshot& snapshot) {
  Exposition out;
  // Every queue with kept jobs or counted work, so that each series exists
  // (at 0) from the time its queue is known.
  std::set<std::string, std::less<>> queues;
  for (const auto& [name, counts] : snapshot.kept) queues.insert(name);
  static const JobMetrics kNone;
  const JobMetrics& jobs = snapshot.jobs ? *snapshot.jobs : kNone;
  for (const auto& [name, counts] : jobs.queues()) queues.insert(name);
  static const JobMetrics::Queue kZero;
  auto of = [&](const std::string& queue) -> const JobMetrics::Queue& {
    auto found = jobs.queues().find(queue);
    return found == jobs.queues().end() ? kZero : found->second;
  };
  auto queue_label = [](const std::string& queue) {
    return fmt::format("queue=\"{}\"", label_value(queue));
  };

  out.family("ferry_jobs", "gauge",
             "Jobs kept (ended ones until retention removes them), by queue and state.");
  for (const std::string& queue : queues) {
    auto kept = snapshot.kept.find(queue);
    for (auto state : {sched::State::waiting, sched::State::queued, sched::State::running,
                       sched::State::succeeded, sched::State::failed, sched::State::cancelled})
      out.sample("ferry_jobs",
                 fmt::format("{},state=\"{}\"", queue_label(queue), sched::name(state)),
                 static_cast<std::uint64_t>(kept == snapshot.kept.end() ? 0 : kept->second[state]));
  }
  struct Counter {
    std::string_view name;
    std::string_view help;
    std::uint64_t JobMetrics::Queue::*field;
  };
  static constexpr Counter kCounters[] = {
      {"ferry_jobs_submitted_total", "Jobs made by submits since the server started.",
       &JobMetrics::Queue::submitted},
      {"ferry_jobs_started_total", "Attempts started (leases handed out).",
       &JobMetrics::Queue::started},
      {"ferry_jobs_succeeded_total", "Jobs that ended succeeded.", &JobMetrics::Queue::succeeded},
      {"ferry_jobs_failed_total", "Jobs that ended failed, with no retry left.",
       &JobMetrics::Queue::failed},
      {"ferry_jobs_cancelled_total", "Jobs that ended cancelled.", &JobMetrics::Queue::cancelled},
      {"ferry_jobs_retried_total", "Failed attempts that run again, and jobs retried by request.",
       &JobMetrics::Queue::retried},
      {"ferry_lease_expiries_total",
       "Attempts whose lease ran out (worker silent) or whose lease answer could not be delivered.",
       &JobMetrics::Queue::lease_expiries},
  };
  for (const Counter& counter : kCounters) {
    out.family(counter.name, "counter", counter.help);
    for (const std::string& queue : queues)
      out.sample(counter.name, queue_label(queue), of(queue).*counter.field);
  }
  out.family("ferry_job_duration_seconds", "histogram",
             "How long attempts that succeeded or failed ran, from lease to report.");
  for (const std::string& queue : queues)
    out.histogram("ferry_job_duration_seconds", queue_label(queue), of(queue).run_seconds);
  out.family("ferry_job_queue_wait_seconds", "histogram",
             "How long jobs waited in their queue before an attempt started.");
  for (const std::string& queue : queues)
    out.histogram("ferry_job_queue_wait_seconds", queue_label(queue), of(queue).wait_seconds);

  out.family("ferry_stale_completions_total", "counter",
             "Completions ignored because their lease was no longer current.");
  out.sample("ferry_stale_completions_total", "", snapshot.stale_completions);
  out.family("ferry_jobs_in_memory", "gauge",
             "Jobs the server holds: not ended, or their end not yet durable.");
  out.sample("ferry_jobs_in_memory", "", static_cast<std::uint64_t>(snapshot.jobs_in_memory));
  out.family("ferry_workers_connected", "gauge", "Workers heard from within the lease timeout.");
  out.sample("ferry_workers_connected", "", static_cast<std::uint64_t>(snapshot.workers_connected));
  out.family("ferry_workers_known", "gauge", "Workers heard from within the last hour.");
  out.sample("ferry_workers_known", "", static_cast<std::uint64_t>(snapshot.workers_known));
  out.family("ferry_event_streams", "gauge", "Clients following GET /v1/events now.");
  out.sample("ferry_event_streams", "", static_cast<std::uint64_t>(snapshot.event_streams));
  out.family("ferry_http_connections", "gauge", "HTTP connections open now.");
  out.sample("ferry_http_connections", "", static_cast<std::uint64_t>(snapshot.connections));

  out.family("ferry_store_commit_seconds", "histogram",
             "How long each database transaction took to commit, its fsync included.");
  out.histogram("ferry_store_commit_seconds", "", snapshot.store.commit_seconds);
  out.family("ferry_store_commit_batches", "histogram",
             "Batches of changes grouped into each database transaction.");
  out.histogram("ferry_store_commit_batches", "", snapshot.store.commit_batches);
  out.family("ferry_store_size_bytes", "gauge", "The database's size, with its journal.");
  out.sample("ferry_store_size_bytes", "", snapshot.store_size.bytes);
  out.family("ferry_store_free_bytes", "gauge", "Of the database's size, pages unused.");
  out.sample("ferry_store_free_bytes", "", snapshot.store_size.free_bytes);

  const ProcessStats& process = snapshot.process;
  out.family("process_cpu_seconds_total", "counter", "User and system CPU time spent.");
  out.sample("process_cpu_seconds_total", "", process.cpu_seconds);
  out.family("process_resident_memory_bytes", "gauge", "Resident memory size.");
  out.sample("process_resident_memory_bytes", "", process.resident_bytes);
  out.family("process_virtual_memory_bytes", "gauge", "Virtual memory size.");
  out.sample("process_virtual_memory_bytes", "", process.virtual_bytes);
  out.family("process_open_fds", "gauge", "Open file descriptors.");
  out.sample("process_open_fds", "", process.open_fds);
  out.family("process_max_fds", "gauge", "The limit of open file descriptors.");
  out.sample("process_max_fds", "", process.max_fds);
  out.family("process_start_time_seconds", "gauge",
             "When the process started, in seconds since the Unix epoch.");
  out.sample("process_start_time_seconds", "", process.start_time_seconds);
  return out.take();
}

}  // namespace ferry::server
