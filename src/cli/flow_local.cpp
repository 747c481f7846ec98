#include "cli/flow_local.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "exec/process_set.hpp"
#include "exec/signal_watch.hpp"
#include "run/inputs.hpp"
#include "sched/scheduler.hpp"
#include "server/job_spec.hpp"
#include "worker/worker.hpp"

namespace ferry::cli {
namespace {

using sched::JobId;
using sched::Time;

Time now() {
  return std::chrono::duration_cast<Time>(std::chrono::steady_clock::now().time_since_epoch());
}

// The jobs of a batch as the scheduler holds them: job i has id i + 1.
std::vector<sched::Job> jobs_of(const server::Submission& flow, const std::string& name) {
  std::map<std::string, JobId> by_ref;
  for (std::size_t i = 0; i < flow.jobs.size(); ++i)
    if (!flow.jobs[i].ref.empty()) by_ref[flow.jobs[i].ref] = i + 1;
  std::vector<sched::Job> jobs;
  Time start = now();
  for (std::size_t i = 0; i < flow.jobs.size(); ++i) {
    const server::JobSpec& spec = flow.jobs[i];
    std::string label = spec.ref.empty() ? fmt::format("jobs[{}]", i) : spec.ref;
    if (const auto* call = std::get_if<server::CallSpec>(&spec.work))
      throw run::UsageError(fmt::format(
          "{}: {}: calls {}: a flow run here runs commands only (submit it to a server)", name,
          label, call->function));
    if (!spec.after.empty())
      throw run::UsageError(
          fmt::format("{}: {}: runs after job {} of a server: a flow run here has no such jobs",
                      name, label, spec.after.front()));
    sched::Job job;
    job.id = i + 1;
    job.options.priority = spec.priority;
    job.options.retry = {spec.retries, spec.retry_delay, sched::RetryPolicy{}.max_backoff};
    job.options.not_before = start + spec.delay;
    job.ready_at = job.options.not_before;
    for (const std::string& ref : spec.after_refs) job.after.push_back(by_ref.at(ref));
    job.after_policy = spec.after_policy;
    jobs.push_back(std::move(job));
  }
  return jobs;
}

// "dependency 3 failed" with the ref of job 3 instead of its number.
std::string with_refs(const std::string& reason, const std::vector<std::string>& labels) {
  std::string prefix = "dependency ";
  if (reason.rfind(prefix, 0) != 0) return reason;
  std::size_t end = reason.find(' ', prefix.size());
  std::size_t index = std::stoul(reason.substr(prefix.size(), end - prefix.size())) - 1;
  if (index >= labels.size()) return reason;
  return prefix + labels[index] + (end == std::string::npos ? "" : reason.substr(end));
}

}  // namespace

int run_flow_here(const flowfile::FlowDocument& flow, int jobs) {
  server::Submission batch;
  try {
    batch = server::parse_job_batch(flow.batch_json);
  } catch (const server::SpecError& error) {
    throw run::UsageError(fmt::format("{}: {}", flow.name, error.what()));
  }
  std::vector<sched::Job> held = jobs_of(batch, flow.name);
  std::vector<std::string> labels;
  for (std::size_t i = 0; i < batch.jobs.size(); ++i) {
    const server::JobSpec& spec = batch.jobs[i];
    labels.push_back(!spec.ref.empty()    ? spec.ref
                     : !spec.name.empty() ? spec.name
                                          : fmt::format("jobs[{}]", i));
  }
  std::size_t slots = jobs > 0
                          ? static_cast<std::size_t>(jobs)
                          : static_cast<std::size_t>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));

  sched::Scheduler scheduler;
  scheduler.admit(std::move(held), now());
  exec::SignalWatch signals;
  exec::ProcessSet processes;
  std::map<exec::ProcessSet::Id, sched::Lease> running;
  auto report = [&](const std::vector<sched::Change>& changes) {
    for (const sched::Change& change : changes) {
      const sched::Job* job = scheduler.find(change.job);
      if (change.to == sched::State::cancelled && job->skipped)
        std::cerr << fmt::format("ferry: {} skipped: {}\n", labels[change.job - 1],
                                 with_refs(job->reason, labels));
    }
  };
  report(scheduler.take_changes());
  int interrupted = 0;
  while (!scheduler.all_final() && !interrupted) {
    while (running.size() < slots) {
      std::optional<sched::Lease> lease = scheduler.lease(now(), "here", std::nullopt);
      if (!lease) break;
      const server::JobSpec& spec = batch.jobs[lease->job - 1];
      running[processes.start(worker::command_for(spec, std::chrono::seconds(5), 16 << 20))] =
          *lease;
    }
    std::optional<exec::Clock::time_point> deadline;
    if (auto wake = scheduler.next_wakeup())
      deadline = exec::Clock::time_point(std::chrono::duration_cast<exec::Clock::duration>(*wake));
    if (running.empty() && !deadline) break;  // nothing runs and nothing will: cannot happen
    for (exec::ProcessSet::Finished& done : processes.wait(deadline, signals.fd())) {
      sched::Lease lease = running.at(done.id);
      running.erase(done.id);
      const exec::Result& result = done.result;
      std::cout << result.out << std::flush;
      std::cerr << result.err;
      std::string how = exec::describe(result);
      std::cerr << fmt::format("ferry: {} {} in {:.2f}s (attempt {}){}\n", labels[lease.job - 1],
                               result.succeeded() ? "succeeded" : "failed",
                               std::chrono::duration<double>(result.wall).count(), lease.attempt,
                               result.succeeded() ? "" : ": " + how);
      scheduler.complete(lease.job, lease.token, result.succeeded(), how, now());
    }
    scheduler.advance(now());
    report(scheduler.take_changes());
    for (int signal : signals.take()) interrupted = signal == SIGINT ? 130 : 143;
  }
  if (interrupted) {
    processes.terminate_all(std::chrono::seconds(5));
    while (processes.size() > 0) processes.wait(std::nullopt);
    std::cerr << "ferry: interrupted; the jobs running were stopped\n";
    return interrupted;
  }
  bool failed = false, cancelled = false;
  for (std::size_t id = 1; id <= batch.jobs.size(); ++id) {
    const sched::Job* job = scheduler.find(id);
    failed = failed || job->state == sched::State::failed;
    cancelled = cancelled || (job->state == sched::State::cancelled && !job->skipped);
  }
  std::cerr << fmt::format("ferry: flow {} {}\n", flow.name,
                           failed      ? "failed"
                           : cancelled ? "cancelled"
                                       : "succeeded");
  return failed || cancelled ? 1 : 0;
}

}  // namespace ferry::cli
