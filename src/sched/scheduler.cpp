#include "sched/scheduler.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace ferry::sched {

std::string_view name(State state) {
  switch (state) {
    case State::waiting:
      return "waiting";
    case State::queued:
      return "queued";
    case State::running:
      return "running";
    case State::succeeded:
      return "succeeded";
    case State::failed:
      return "failed";
    case State::cancelled:
      return "cancelled";
  }
  return "unknown";
}

bool is_final(State state) {
  return state == State::succeeded || state == State::failed || state == State::cancelled;
}

std::string_view name(AttemptEnd end) {
  switch (end) {
    case AttemptEnd::running:
      return "running";
    case AttemptEnd::succeeded:
      return "succeeded";
    case AttemptEnd::failed:
      return "failed";
    case AttemptEnd::lease_expired:
      return "lease_expired";
    case AttemptEnd::cancelled:
      return "cancelled";
  }
  return "unknown";
}

Time retry_delay(const RetryPolicy& policy, int failures) {
  Time delay = policy.backoff;
  for (int i = 1; i < failures && delay < policy.max_backoff; ++i) delay *= 2;
  return std::min(delay, policy.max_backoff);
}

int Job::failures() const {
  auto from = attempts.begin() +
              static_cast<std::ptrdiff_t>(std::min<std::size_t>(retry_base, attempts.size()));
  return static_cast<int>(std::count_if(
      from, attempts.end(), [](const Attempt& a) { return a.end == AttemptEnd::failed; }));
}

std::size_t Counts::total() const {
  std::size_t sum = 0;
  for (std::size_t n : by_state) sum += n;
  return sum;
}

std::size_t Counts::final() const {
  return (*this)[State::succeeded] + (*this)[State::failed] + (*this)[State::cancelled];
}

Job* Scheduler::get(JobId id) { return const_cast<Job*>(std::as_const(*this).find(id)); }

const Job* Scheduler::find(JobId id) const {
  return id >= 1 && id <= jobs_.size() && jobs_[id - 1].id == id ? &jobs_[id - 1] : nullptr;
}

void Scheduler::set_state(Job& job, State state) {
  counts_.by_state[static_cast<int>(job.state)]--;
  counts_.by_state[static_cast<int>(state)]++;
  changes_.push_back({job.id, job.state, state});
  job.state = state;
}

void Scheduler::make_ready(Job& job, Time now) {
  if (job.ready_at > now) {
    if (job.state != State::waiting) set_state(job, State::waiting);
    delayed_.insert({job.ready_at, job.id});
  } else {
    set_state(job, State::queued);
    queues_[job.options.queue].push(job.id, job.options.priority);
  }
}

JobId Scheduler::submit(JobOptions options, Time now) {
  Job& job = jobs_.emplace_back();
  job.id = jobs_.size();
  job.ready_at = options.not_before;
  job.options = std::move(options);
  job.state = State::waiting;
  counts_.by_state[static_cast<int>(State::waiting)]++;
  make_ready(job, now);
  return job.id;
}

void Scheduler::admit(Job job, Time now) {
  if (job.id <= jobs_.size()) throw std::invalid_argument("admit: job ids must increase");
  jobs_.resize(job.id - 1);  // leaves gaps with id 0
  for (const Attempt& attempt : job.attempts)
    next_token_ = std::max(next_token_, attempt.lease + 1);
  State state = job.state;
  Job& restored = jobs_.emplace_back(std::move(job));
  restored.state = State::waiting;
  restored.lease_expires.reset();
  counts_.by_state[static_cast<int>(State::waiting)]++;
  switch (state) {
    case State::running:
      if (!restored.attempts.empty() && restored.attempts.back().end == AttemptEnd::running)
        finish_attempt(restored, AttemptEnd::lease_expired, "server restarted", now);
      restored.ready_at = now;
      make_ready(restored, now);
      break;
    case State::waiting:
    case State::queued:
      make_ready(restored, now);
      break;
    default:  // final: nothing to schedule
      set_state(restored, state);
      break;
  }
}

std::optional<Lease> Scheduler::lease(Time now, std::string_view worker,
                                      std::optional<Time> lease_for,
                                      std::span<const std::string> queues) {
  ReadyQueue* best = nullptr;
  auto consider = [&](ReadyQueue& queue) {
    auto top = queue.peek();
    if (!top) return;
    auto current = best ? best->peek() : std::nullopt;
    if (!current || top->second > current->second ||
        (top->second == current->second && top->first < current->first))
      best = &queue;
  };
  if (queues.empty()) {
    for (auto& [queue_name, queue] : queues_) consider(queue);
  } else {
    for (const std::string& queue_name : queues)
      if (auto it = queues_.find(queue_name); it != queues_.end()) consider(it->second);
  }
  if (!best) return std::nullopt;

  Job& job = *get(*best->pop());
  Attempt& attempt = job.attempts.emplace_back();
  attempt.number = static_cast<int>(job.attempts.size());
  attempt.lease = next_token_++;
  attempt.worker = worker;
  attempt.started = now;
  set_state(job, State::running);
  if (lease_for) {
    job.lease_expires = now + *lease_for;
    expiring_.insert({*job.lease_expires, job.id});
  }
  return Lease{job.id, attempt.lease, attempt.number, job.lease_expires};
}

bool Scheduler::renew(JobId id, std::uint64_t token, Time now, Time lease_for) {
  Job* job = get(id);
  if (!job || job->state != State::running || job->attempts.back().lease != token) return false;
  if (job->lease_expires) expiring_.erase({*job->lease_expires, id});
  job->lease_expires = now + lease_for;
  expiring_.insert({*job->lease_expires, id});
  return true;
}

void Scheduler::finish_attempt(Job& job, AttemptEnd end, std::string reason, Time now) {
  Attempt& attempt = job.attempts.back();
  attempt.end = end;
  attempt.ended = now;
  attempt.reason = std::move(reason);
  if (job.lease_expires) expiring_.erase({*job.lease_expires, job.id});
  job.lease_expires.reset();
}

bool Scheduler::resume_lease(JobId id, Attempt attempt, std::optional<Time> expires) {
  Job* job = get(id);
  if (!job || job->state != State::queued) return false;
  queues_[job->options.queue].erase(id, job->options.priority);
  attempt.number = static_cast<int>(job->attempts.size()) + 1;
  attempt.end = AttemptEnd::running;
  next_token_ = std::max(next_token_, attempt.lease + 1);
  job->attempts.push_back(std::move(attempt));
  set_state(*job, State::running);
  if (expires) {
    job->lease_expires = expires;
    expiring_.insert({*expires, id});
  }
  return true;
}

bool Scheduler::release(JobId id, std::uint64_t token, Time now, std::string reason) {
  Job* job = get(id);
  if (!job || job->state != State::running || job->attempts.back().lease != token) return false;
  finish_attempt(*job, AttemptEnd::lease_expired, std::move(reason), now);
  job->ready_at = now;
  make_ready(*job, now);
  return true;
}

Completion Scheduler::complete(JobId id, std::uint64_t token, bool succeeded, std::string reason,
                               Time now) {
  Job* job = get(id);
  if (!job || job->state != State::running || job->attempts.back().lease != token) {
    if (token > 0 && token < next_token_) counts_.stale_completions++;
    return Completion::stale;
  }
  if (succeeded) {
    finish_attempt(*job, AttemptEnd::succeeded, std::move(reason), now);
    set_state(*job, State::succeeded);
    return Completion::recorded;
  }
  finish_attempt(*job, AttemptEnd::failed, reason, now);
  int failures = job->failures();
  if (failures > job->options.retry.max_retries) {
    job->reason = std::move(reason);
    set_state(*job, State::failed);
  } else {
    job->ready_at = now + retry_delay(job->options.retry, failures);
    make_ready(*job, now);
  }
  return Completion::recorded;
}

bool Scheduler::cancel(JobId id, std::string reason, Time now) {
  Job* job = get(id);
  if (!job || is_final(job->state)) return false;
  switch (job->state) {
    case State::waiting:
      delayed_.erase({job->ready_at, id});
      break;
    case State::queued:
      queues_[job->options.queue].erase(id, job->options.priority);
      break;
    case State::running:
      finish_attempt(*job, AttemptEnd::cancelled, reason, now);
      break;
    default:
      break;
  }
  job->reason = std::move(reason);
  set_state(*job, State::cancelled);
  return true;
}

bool Scheduler::retry(JobId id, Time now) {
  Job* job = get(id);
  if (!job || (job->state != State::failed && job->state != State::cancelled)) return false;
  job->retry_base = static_cast<std::uint32_t>(job->attempts.size());
  job->reason.clear();
  job->ready_at = now;
  set_state(*job, State::queued);
  queues_[job->options.queue].push(job->id, job->options.priority);
  return true;
}

void Scheduler::advance(Time now) {
  while (!expiring_.empty() && expiring_.begin()->first <= now) {
    Job& job = *get(expiring_.begin()->second);
    finish_attempt(job, AttemptEnd::lease_expired, "lease expired", now);
    job.ready_at = now;
    make_ready(job, now);
  }
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    Job& job = *get(delayed_.begin()->second);
    delayed_.erase(delayed_.begin());
    make_ready(job, now);
  }
}

std::optional<Time> Scheduler::next_wakeup() const {
  std::optional<Time> next;
  if (!delayed_.empty()) next = delayed_.begin()->first;
  if (!expiring_.empty() && (!next || expiring_.begin()->first < *next))
    next = expiring_.begin()->first;
  return next;
}

std::vector<Change> Scheduler::take_changes() { return std::exchange(changes_, {}); }

}  // namespace ferry::sched
