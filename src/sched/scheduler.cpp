#include "sched/scheduler.hpp"

#include <fmt/format.h>

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

const Job* Scheduler::find(JobId id) const { return jobs_.find(id); }

Hold Scheduler::hold_of(JobId id) const {
  const Job* job = find(id);
  if (!job || job->state != State::queued) return Hold::none;
  const Group& group = *queues_.find(job->options.queue)->second.group;
  const std::optional<GroupLimits>& limits = group.limits;
  if (limits && limits->paused) return Hold::paused;
  if (limits && limits->max_running && group.running >= *limits->max_running)
    return Hold::max_running;
  if (const std::string& key = job->options.concurrency_key; !key.empty()) {
    auto running = group.running_by_key.find(key);
    if (running != group.running_by_key.end() && running->second >= (limits ? limits->per_key : 1))
      return Hold::key;
  }
  if (limits && limits->rate && group.units < limits->rate->per.count()) return Hold::rate;
  return Hold::none;
}

void Scheduler::set_state(Job& job, State state) {
  if (job.state == State::running && state != State::running) stopped(job);
  if (state == State::running && job.state != State::running) started(job);
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
    enqueue(job);
  }
}

void Scheduler::enqueue(Job& job) {
  auto found = queues_.find(job.options.queue);
  if (found == queues_.end()) {
    found = queues_.emplace(job.options.queue, Queue{}).first;
    found->second.group = &group_named(job.options.queue);
  }
  found->second.ready.push(job.id, job.options.priority);
}

void Scheduler::unqueue(Job& job) {
  if (!job.held_by_key) {
    queues_.find(job.options.queue)->second.ready.erase(job.id, job.options.priority);
    return;
  }
  job.held_by_key = false;
  Group& group = group_of(job);
  auto held = group.held_by_key.find(job.options.concurrency_key);
  held->second.erase(job.id, job.options.priority);
  if (held->second.empty()) group.held_by_key.erase(held);
}

// --- Group limits -----------------------------------------------------------

bool Scheduler::Group::admits() const {
  if (!limits) return true;
  return !limits->paused && (!limits->max_running || running < *limits->max_running) &&
         (!limits->rate || units >= limits->rate->per.count());
}

void Scheduler::Group::refill(Time now) {
  if (!limits || !limits->rate || now <= refilled) return;
  const Rate& rate = *limits->rate;
  std::int64_t capacity =
      std::int64_t{limits->burst ? limits->burst : rate.count} * rate.per.count();
  std::int64_t earned = (now - refilled).count() * std::int64_t{rate.count};
  units = capacity - units <= earned ? capacity : units + earned;
  refilled = now;
}

std::optional<Time> Scheduler::Group::next_token() const {
  if (!limits || !limits->rate || limits->paused || limits->rate->count == 0) return std::nullopt;
  std::int64_t missing = limits->rate->per.count() - units;
  if (missing <= 0) return std::nullopt;
  std::int64_t count = limits->rate->count;
  return refilled + Time{(missing + count - 1) / count};
}

Scheduler::Group& Scheduler::group_named(std::string_view name) {
  auto it = groups_.find(name);
  if (it == groups_.end()) it = groups_.emplace(std::string(name), Group{}).first;
  return it->second;
}

// A job's queue exists: it was queued before it could run.
Scheduler::Group& Scheduler::group_of(const Job& job) {
  return *queues_.find(job.options.queue)->second.group;
}

void Scheduler::set_group(std::string_view queue, std::string_view group) {
  auto found = queues_.find(queue);
  if (found == queues_.end()) found = queues_.emplace(std::string(queue), Queue{}).first;
  found->second.group = &group_named(group);
}

void Scheduler::set_limits(std::string_view name, GroupLimits limits, Time now) {
  Group& group = group_named(name);
  group.refill(now);
  const std::optional<Rate> before = group.limits ? group.limits->rate : std::nullopt;
  if (limits.rate) {
    // A new rate starts full; a changed one keeps the tokens it had.
    std::int64_t per = limits.rate->per.count();
    std::int64_t capacity = std::int64_t{limits.burst ? limits.burst : limits.rate->count} * per;
    if (!before) {
      group.units = capacity;
    } else {
      std::int64_t old_per = before->per.count();  // whole tokens, then the fraction
      std::int64_t scaled = group.units / old_per * per + group.units % old_per * per / old_per;
      group.units = std::min(scaled, capacity);
    }
    group.refilled = now;
  }
  std::uint32_t per_key = limits.per_key;
  group.limits = limits;
  // A higher per-key limit may let held jobs go; they are checked again
  // when they come up.
  std::vector<std::string> keys;
  for (const auto& [key, held] : group.held_by_key) keys.push_back(key);
  for (const std::string& key : keys) release_held(group, key, per_key);
}

const GroupLimits* Scheduler::limits(std::string_view name) const {
  auto it = groups_.find(name);
  return it == groups_.end() || !it->second.limits ? nullptr : &*it->second.limits;
}

std::uint32_t Scheduler::running_in(std::string_view name) const {
  auto it = groups_.find(name);
  return it == groups_.end() ? 0 : it->second.running;
}

void Scheduler::started(Job& job) {
  Group& group = group_of(job);
  group.running++;
  if (!job.options.concurrency_key.empty()) group.running_by_key[job.options.concurrency_key]++;
}

void Scheduler::stopped(Job& job) {
  Group& group = group_of(job);
  group.running--;
  const std::string& key = job.options.concurrency_key;
  if (key.empty()) return;
  auto running = group.running_by_key.find(key);
  if (--running->second == 0) group.running_by_key.erase(running);
  release_held(group, key, 1);
}

void Scheduler::release_held(Group& group, std::string_view key, std::size_t how_many) {
  auto held = group.held_by_key.find(std::string(key));
  if (held == group.held_by_key.end()) return;
  for (std::size_t n = 0; n < how_many && !held->second.empty(); ++n) {
    Job& job = *get(*held->second.pop());
    job.held_by_key = false;
    queues_.find(job.options.queue)->second.ready.push(job.id, job.options.priority);
  }
  if (held->second.empty()) group.held_by_key.erase(held);
}

JobId Scheduler::submit(JobOptions options, Time now) {
  JobId id = next_id_++;
  Job& job = jobs_.insert(id, Job{});
  job.id = id;
  job.ready_at = options.not_before;
  job.options = std::move(options);
  job.state = State::waiting;
  counts_.by_state[static_cast<int>(State::waiting)]++;
  make_ready(job, now);
  return job.id;
}

bool Scheduler::resolve_dependencies(Job& job, const EndedState& ended_state) {
  job.unmet = 0;
  job.after_succeeded = 0;
  for (JobId dependency : job.after) {
    std::optional<State> state;
    if (const Job* held = find(dependency)) {
      if (!is_final(held->state)) {
        dependants_[dependency].push_back(job.id);
        job.unmet++;
        continue;
      }
      state = held->state;
    } else if (ended_state) {
      state = ended_state(dependency);
    }
    if (!state) {  // removed by retention while this waited: it ended, how is gone
      if (job.after_policy == AfterPolicy::end) continue;
      skip(job, fmt::format("dependency {} is no longer kept", dependency));
      return false;
    }
    if (auto reason = rules_out(job, dependency, *state)) {
      skip(job, std::move(*reason));
      return false;
    }
  }
  if (job.unmet == 0)
    if (auto reason = rules_out_at_end(job)) {
      skip(job, std::move(*reason));
      return false;
    }
  return true;
}

std::optional<std::string> Scheduler::rules_out(Job& job, JobId dependency, State state) {
  bool succeeded = state == State::succeeded;
  job.after_succeeded += succeeded ? 1 : 0;
  if (job.after_policy == AfterPolicy::success && !succeeded)
    return fmt::format("dependency {} {}", dependency, name(state));
  if (job.after_policy == AfterPolicy::failure && succeeded)
    return fmt::format("dependency {} succeeded", dependency);
  return std::nullopt;
}

std::optional<std::string> Scheduler::rules_out_at_end(const Job& job) {
  if (job.after_policy == AfterPolicy::one_success && job.after_succeeded == 0)
    return "no dependency succeeded";
  if (job.after_policy == AfterPolicy::one_failed && job.after_succeeded == job.after.size())
    return "no dependency failed";
  return std::nullopt;
}

void Scheduler::skip(Job& job, std::string reason) {
  delayed_.erase({job.ready_at, job.id});
  job.skipped = true;
  job.reason = std::move(reason);
  set_state(job, State::cancelled);
}

void Scheduler::ended(JobId first, Time now) {
  if (dependants_.empty()) return;  // the common case: nothing depends on anything
  std::vector<JobId> work{first};
  while (!work.empty()) {
    JobId id = work.back();
    work.pop_back();
    auto found = dependants_.find(id);
    if (found == dependants_.end()) continue;
    std::vector<JobId> waiting = std::move(found->second);
    dependants_.erase(found);
    State state = find(id)->state;
    for (JobId dependant : waiting) {
      Job* job = get(dependant);
      if (!job || job->state != State::waiting || job->unmet == 0) continue;
      job->unmet--;
      auto reason = rules_out(*job, id, state);
      if (!reason && job->unmet == 0) reason = rules_out_at_end(*job);
      if (reason) {
        skip(*job, std::move(*reason));
        work.push_back(dependant);
      } else if (job->unmet == 0) {
        make_ready(*job, now);
      }
    }
  }
}

void Scheduler::unskip(const std::vector<JobId>& ids, Time now, const EndedState& ended_state) {
  // All back to waiting first, so that they hold each other back rather
  // than skip each other again.
  std::vector<Job*> back;
  for (JobId id : ids)
    if (Job* job = get(id); job && job->skipped && job->state == State::cancelled) {
      job->skipped = false;
      job->reason.clear();
      set_state(*job, State::waiting);
      back.push_back(job);
    }
  for (Job* job : back)
    if (job->state == State::waiting && resolve_dependencies(*job, ended_state) && job->unmet == 0)
      make_ready(*job, now);
  for (Job* job : back)
    if (job->state == State::cancelled) ended(job->id, now);
}

void Scheduler::admit(Job job, Time now, const EndedState& ended_state) {
  State state = job.state;
  settle(place(std::move(job)), state, now, ended_state);
}

void Scheduler::admit(std::vector<Job> jobs, Time now, const EndedState& ended_state) {
  std::vector<std::pair<Job*, State>> placed;
  placed.reserve(jobs.size());
  for (Job& job : jobs) {
    State state = job.state;
    placed.push_back({&place(std::move(job)), state});
  }
  for (auto [job, state] : placed) settle(*job, state, now, ended_state);
}

Job& Scheduler::place(Job job) {
  if (job.id == 0 || jobs_.contains(job.id))
    throw std::invalid_argument(fmt::format("admit: job {} is here already", job.id));
  next_id_ = std::max(next_id_, job.id + 1);
  for (const Attempt& attempt : job.attempts)
    next_token_ = std::max(next_token_, attempt.lease + 1);
  JobId id = job.id;
  Job& placed = jobs_.insert(id, std::move(job));
  placed.state = State::waiting;
  placed.held_by_key = false;
  placed.lease_expires.reset();
  counts_.by_state[static_cast<int>(State::waiting)]++;
  return placed;
}

void Scheduler::settle(Job& restored, State state, Time now, const EndedState& ended_state) {
  std::size_t before = changes_.size();
  settle_into(restored, state, now, ended_state);
  // Arriving in the state it had is no change; moving on from it (its
  // dependencies met, or one that can no longer succeed) is, from that state.
  JobId id = restored.id;
  auto own = [id](const Change& change) { return change.job == id; };
  auto first = changes_.begin() + static_cast<std::ptrdiff_t>(before);
  if (std::none_of(first, changes_.end(), own)) return;
  changes_.erase(std::remove_if(first, changes_.end(), own), changes_.end());
  if (restored.state != state) changes_.push_back({id, state, restored.state});
}

void Scheduler::settle_into(Job& restored, State state, Time now, const EndedState& ended_state) {
  JobId id = restored.id;
  if (!is_final(state) && !restored.after.empty()) {
    restored.skipped = false;
    if (!resolve_dependencies(restored, ended_state)) return ended(id, now);
    if (restored.unmet > 0) return;  // waits on its dependencies
  }
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
    default:  // final: nothing to schedule, and what waited on it moves on
      set_state(restored, state);
      ended(id, now);
      break;
  }
}

std::optional<Lease> Scheduler::lease(Time now, std::string_view worker,
                                      std::optional<Time> lease_for,
                                      std::span<const std::string> queues) {
  Job* chosen = nullptr;
  while (!chosen) {
    Queue* best = nullptr;
    std::optional<std::pair<JobId, int>> best_top;
    auto consider = [&](Queue& queue) {
      auto top = queue.ready.peek();
      if (!top) return;
      if (!best_top || top->second > best_top->second ||
          (top->second == best_top->second && top->first < best_top->first)) {
        queue.group->refill(now);
        if (!queue.group->admits()) return;
        best = &queue;
        best_top = top;
      }
    };
    if (queues.empty()) {
      for (auto& [queue_name, queue] : queues_) consider(queue);
    } else {
      for (const std::string& queue_name : queues)
        if (auto it = queues_.find(queue_name); it != queues_.end()) consider(it->second);
    }
    if (!best) return std::nullopt;

    Job& job = *get(*best->ready.pop());
    Group& group = *best->group;
    const std::string& key = job.options.concurrency_key;
    if (!key.empty()) {
      std::uint32_t per_key = group.limits ? group.limits->per_key : 1;
      auto running = group.running_by_key.find(key);
      if (running != group.running_by_key.end() && running->second >= per_key) {
        // Held until a job of its key stops; the next best may start instead.
        job.held_by_key = true;
        group.held_by_key[key].push(job.id, job.options.priority);
        continue;
      }
    }
    if (group.limits && group.limits->rate) group.units -= group.limits->rate->per.count();
    chosen = &job;
  }

  Job& job = *chosen;
  Attempt& attempt = job.attempts.emplace_back();
  attempt.number = static_cast<int>(job.attempts.size());
  attempt.lease = next_token_++;
  attempt.worker = worker;
  attempt.started = now;
  set_state(job, State::running);
  if (lease_for) {
    job.lease_expires = now + *lease_for;
    ++expiring_leases_;
    index_lease(job, *job.lease_expires);
  }
  return Lease{job.id, attempt.lease, attempt.number, job.lease_expires};
}

bool Scheduler::renew(JobId id, std::uint64_t token, Time now, Time lease_for) {
  Job* job = get(id);
  if (!job || job->state != State::running || job->attempts.back().lease != token) return false;
  Time expires = now + lease_for;
  if (!job->lease_expires) ++expiring_leases_;
  if (!job->lease_expires || expires < *job->lease_expires) index_lease(*job, expires);
  job->lease_expires = expires;
  return true;
}

void Scheduler::index_lease(const Job& job, Time expires) {
  expiring_.push_back({expires, job.id, job.attempts.back().lease});
  std::push_heap(expiring_.begin(), expiring_.end(), std::greater<>());
}

bool Scheduler::is_live(const LeaseEntry& entry) const {
  const Job* job = find(entry.job);
  return job && job->state == State::running && job->lease_expires &&
         job->attempts.back().lease == entry.token;
}

void Scheduler::drop_stale_leases() {
  if (expiring_.size() > 2 * expiring_leases_ + 64) {  // mostly stale: keep the live ones
    std::erase_if(expiring_, [this](const LeaseEntry& entry) { return !is_live(entry); });
    std::make_heap(expiring_.begin(), expiring_.end(), std::greater<>());
  }
  while (!expiring_.empty() && !is_live(expiring_.front())) {
    std::pop_heap(expiring_.begin(), expiring_.end(), std::greater<>());
    expiring_.pop_back();
  }
}

std::vector<JobId> Scheduler::leased() const {
  std::vector<JobId> ids;
  for (const LeaseEntry& entry : expiring_)
    if (is_live(entry)) ids.push_back(entry.job);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());  // a lease made sooner is in twice
  return ids;
}

void Scheduler::finish_attempt(Job& job, AttemptEnd end, std::string reason, Time now) {
  Attempt& attempt = job.attempts.back();
  attempt.end = end;
  attempt.ended = now;
  attempt.reason = std::move(reason);
  if (job.lease_expires) {
    job.lease_expires.reset();
    --expiring_leases_;
    drop_stale_leases();
  }
}

bool Scheduler::resume_lease(JobId id, Attempt attempt, std::optional<Time> expires) {
  Job* job = get(id);
  if (!job || job->state != State::queued) return false;
  unqueue(*job);
  attempt.number = static_cast<int>(job->attempts.size()) + 1;
  attempt.end = AttemptEnd::running;
  next_token_ = std::max(next_token_, attempt.lease + 1);
  job->attempts.push_back(std::move(attempt));
  set_state(*job, State::running);
  if (expires) {
    job->lease_expires = expires;
    ++expiring_leases_;
    index_lease(*job, *expires);
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
    ended(id, now);
    return Completion::recorded;
  }
  finish_attempt(*job, AttemptEnd::failed, reason, now);
  int failures = job->failures();
  if (failures > job->options.retry.max_retries) {
    job->reason = std::move(reason);
    set_state(*job, State::failed);
    ended(id, now);
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
      unqueue(*job);
      break;
    case State::running:
      finish_attempt(*job, AttemptEnd::cancelled, reason, now);
      break;
    default:
      break;
  }
  job->reason = std::move(reason);
  set_state(*job, State::cancelled);
  ended(id, now);
  return true;
}

bool Scheduler::retry(JobId id, Time now) {
  Job* job = get(id);
  if (!job || (job->state != State::failed && job->state != State::cancelled)) return false;
  job->retry_base = static_cast<std::uint32_t>(job->attempts.size());
  job->reason.clear();
  job->ready_at = now;
  set_state(*job, State::queued);
  enqueue(*job);
  return true;
}

void Scheduler::advance(Time now) {
  while (!expiring_.empty() && expiring_.front().expires <= now) {
    Job& job = *get(expiring_.front().job);  // the top is live
    if (*job.lease_expires > now) {          // renewed since: it comes up again then
      std::pop_heap(expiring_.begin(), expiring_.end(), std::greater<>());
      expiring_.pop_back();
      index_lease(job, *job.lease_expires);
      drop_stale_leases();
      continue;
    }
    finish_attempt(job, AttemptEnd::lease_expired, "lease expired", now);  // drops its entry
    job.ready_at = now;
    make_ready(job, now);
  }
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    Job& job = *get(delayed_.begin()->second);
    delayed_.erase(delayed_.begin());
    make_ready(job, now);
  }
  for (auto& [name, group] : groups_) group.refill(now);
}

std::optional<Time> Scheduler::next_wakeup() const {
  std::optional<Time> next;
  if (!delayed_.empty()) next = delayed_.begin()->first;
  if (!expiring_.empty() && (!next || expiring_.front().expires < *next))
    next = expiring_.front().expires;
  for (const auto& [name, group] : groups_)
    if (auto token = group.next_token(); token && (!next || *token < *next)) next = token;
  return next;
}

bool Scheduler::forget(JobId id) {
  const Job* job = jobs_.find(id);
  if (!job || !is_final(job->state)) return false;
  counts_.by_state[static_cast<int>(job->state)]--;
  dependants_.erase(id);
  jobs_.erase(id);
  return true;
}

std::vector<Change> Scheduler::take_changes() { return std::exchange(changes_, {}); }

}  // namespace ferry::sched
