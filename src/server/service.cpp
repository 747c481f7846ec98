#include "server/service.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <unordered_set>
#include <utility>

namespace ferry::server {
namespace {

constexpr sched::State kStates[] = {sched::State::waiting, sched::State::queued,
                                    sched::State::running, sched::State::succeeded,
                                    sched::State::failed,  sched::State::cancelled};

sched::State state_named(const std::string& name) {
  for (auto state : kStates)
    if (sched::name(state) == name) return state;
  throw std::runtime_error(fmt::format("the store holds an unknown job state '{}'", name));
}

sched::AttemptEnd attempt_end_named(const std::string& name) {
  for (auto end :
       {sched::AttemptEnd::running, sched::AttemptEnd::succeeded, sched::AttemptEnd::failed,
        sched::AttemptEnd::lease_expired, sched::AttemptEnd::cancelled})
    if (sched::name(end) == name) return end;
  throw std::runtime_error(fmt::format("the store holds an unknown attempt end '{}'", name));
}

bool contains_all(const std::vector<std::string>& have, const std::vector<std::string>& need) {
  return std::all_of(need.begin(), need.end(), [&](const std::string& label) {
    return std::find(have.begin(), have.end(), label) != have.end();
  });
}

sched::Attempt attempt_of(const store::AttemptRow& row) {
  return {row.number,         row.lease,
          row.worker,         Time{row.started_ms},
          Time{row.ended_ms}, attempt_end_named(row.end),
          row.reason};
}

Completion report_of(const store::AttemptRow& row) {
  return {row.job_id,    row.lease,  row.end == "succeeded", row.reason,
          row.exit_code, row.signal, row.stdout_tail,        row.stderr_tail,
          row.result,    row.cpu_us, row.max_rss_kb};
}

}  // namespace

Service::Service(store::Store& store, Post post, Now now, Options options)
    : store_(store), post_(std::move(post)), now_(std::move(now)), options_(options) {}

// --- Queues and admission -------------------------------------------------

std::string Service::queue_key(const std::string& queue, std::vector<std::string> labels,
                               bool call) {
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  // '#' and '!' cannot occur in a queue name or label, so keys of different
  // queues, labels or kinds never meet.
  std::string key = call ? queue + "!" : queue;
  for (std::size_t i = 0; i < labels.size(); ++i) key += (i ? "," : "#") + labels[i];
  if (queue_keys_.try_emplace(key, QueueKey{queue, std::move(labels), call}).second)
    scheduler_.set_group(key, queue);  // the queue's limits hold whatever the labels
  return key;
}

std::vector<std::string> Service::eligible_queues(const LeaseRequest& request) const {
  std::vector<std::string> keys;
  for (const auto& [key, kind] : queue_keys_) {
    bool wanted = request.queues.empty() || std::find(request.queues.begin(), request.queues.end(),
                                                      kind.queue) != request.queues.end();
    if (wanted && (kind.call || request.commands) && contains_all(request.labels, kind.labels))
      keys.push_back(key);
  }
  return keys;
}

sched::Job Service::hold(const store::JobRow& row, const JobSpec& spec,
                         std::vector<sched::Attempt> attempts) {
  sched::Job job;
  job.id = row.id;
  // A call can only run where its function is registered: workers announce
  // theirs as labels "function:NAME", and the call requires that label.
  std::vector<std::string> labels = spec.labels;
  const auto* call = std::get_if<CallSpec>(&spec.work);
  if (call) labels.push_back("function:" + call->function);
  job.options.queue = queue_key(spec.queue, std::move(labels), call != nullptr);
  job.options.priority = spec.priority;
  job.options.retry = {spec.retries, spec.retry_delay, options_.max_backoff};
  job.options.not_before = Time{row.created_ms} + spec.delay;
  job.options.concurrency_key = spec.concurrency_key;
  job.state = state_named(row.state);
  job.ready_at = Time{row.ready_at_ms};
  job.attempts = std::move(attempts);
  job.reason = row.reason;
  job.retry_base = static_cast<std::uint32_t>(row.retry_base);
  job.after = spec.after;
  job.after_policy = spec.after_policy;
  job.skipped = row.skipped;
  auto [place, added] = records_.try_emplace(row.id);
  Record& record = place->second;
  if (added) record.spec = specs_.add(row.spec);  // a spec never changes: one held is kept
  record.created = Time{row.created_ms};
  record.flow = row.flow;
  if (!spec.key.empty()) keys_[spec.key] = row.id;
  next_id_ = std::max(next_id_, row.id + 1);
  return job;
}

sched::EndedState Service::ended_state() const {
  return [this](JobId id) -> std::optional<sched::State> {
    std::optional<store::StoredJob> stored = store_.read_job(id);
    if (!stored) return std::nullopt;
    return state_named(stored->row.state);
  };
}

const sched::Job* Service::bring_back(JobId id) {
  if (const sched::Job* held = scheduler_.find(id)) return held;
  std::optional<store::StoredJob> stored = store_.read_job(id);
  if (!stored) return nullptr;
  std::vector<sched::Attempt> attempts;
  auto reports = std::make_unique<std::map<int, Completion>>();
  for (const store::AttemptRow& row : stored->attempts) {
    attempts.push_back(attempt_of(row));
    (*reports)[row.number] = report_of(row);
  }
  scheduler_.admit(hold(stored->row, parse_job_spec(stored->row.spec), std::move(attempts)), now_(),
                   ended_state());
  if (!reports->empty()) records_.at(id).reports = std::move(reports);
  return scheduler_.find(id);
}

std::vector<JobId> Service::skipped_after(const std::vector<JobId>& retried) {
  std::vector<JobId> skipped;
  std::set<JobId> seen(retried.begin(), retried.end());
  std::vector<JobId> frontier = retried;
  while (!frontier.empty()) {
    JobId id = frontier.back();
    frontier.pop_back();
    for (JobId dependant : store_.dependants(id)) {
      if (!seen.insert(dependant).second) continue;
      bool held = scheduler_.find(dependant) != nullptr;
      const sched::Job* job = bring_back(dependant);
      if (job && job->skipped) {
        skipped.push_back(dependant);
        frontier.push_back(dependant);
      } else if (!held && job && sched::is_final(job->state)) {
        forget(dependant);  // looked at, and not for this
      }
    }
  }
  return skipped;
}

void Service::forget(JobId id) {
  auto found = records_.find(id);
  if (found == records_.end() || !scheduler_.forget(id)) return;
  // A spec's key stays reserved in the store; memory need not hold it.
  auto key_at = std::string_view(found->second.spec.view).find(R"("key":)");
  if (key_at != std::string_view::npos) {
    std::string key = parse_job_spec(found->second.spec.view).key;
    if (auto held = keys_.find(key); held != keys_.end() && held->second == id) keys_.erase(held);
  }
  unused_specs_.push_back(found->second.spec);
  records_.erase(found);
}

// --- Start and recovery ---------------------------------------------------

std::uint64_t Service::rebuild() {
  store::Snapshot snapshot = store_.load();
  // Specs never change: those already held are kept (lease answers on their
  // way out point into them); what the store says replaces everything else.
  scheduler_ = sched::Scheduler();
  for (const auto& [key, kind] : queue_keys_) scheduler_.set_group(key, kind.queue);
  queue_settings_.clear();
  for (const store::QueueRow& row : snapshot.queues) {
    try {
      QueueSettings settings = patch_queue_settings(row.settings, {});
      scheduler_.set_limits(row.name, settings, now_());
      queue_settings_[row.name] = settings;
    } catch (const std::exception& error) {  // written by a later ferry?
      std::fprintf(stderr, "ferry server: the settings of queue %s are not loaded: %s\n",
                   row.name.c_str(), error.what());
    }
  }
  std::unordered_map<JobId, Record> held = std::move(records_);
  records_.clear();
  keys_.clear();
  std::vector<sched::Job> jobs;
  std::size_t next_attempt = 0;
  for (const store::JobRow& row : snapshot.jobs) {
    std::vector<sched::Attempt> attempts;
    std::map<int, Completion> reports;
    for (; next_attempt < snapshot.attempts.size() &&
           snapshot.attempts[next_attempt].job_id == row.id;
         ++next_attempt) {
      const store::AttemptRow& stored = snapshot.attempts[next_attempt];
      attempts.push_back(attempt_of(stored));
      reports[stored.number] = report_of(stored);
    }
    if (auto kept = held.find(row.id); kept != held.end()) {
      records_[row.id].spec = kept->second.spec;
      held.erase(kept);
    }
    jobs.push_back(hold(row, parse_job_spec(row.spec), std::move(attempts)));
    if (!reports.empty())
      records_.at(row.id).reports = std::make_unique<std::map<int, Completion>>(std::move(reports));
  }
  scheduler_.admit(std::move(jobs), now_(), ended_state());
  for (auto& [id, record] : held) unused_specs_.push_back(record.spec);
  counts_.clear();
  for (const store::Count& count : snapshot.counts)
    counts_[count.queue].by_state[static_cast<int>(state_named(count.state))] += count.jobs;
  next_id_ = std::max(next_id_, snapshot.next_id);
  next_flow_ = std::max(next_flow_, snapshot.next_flow);
  schedules_.clear();
  for (store::ScheduleRow& row : snapshot.schedules) {
    try {
      ScheduleSpec spec = parse_schedule_spec(row.spec);
      std::string name = row.name;
      schedules_[name] = {std::move(spec), std::move(row)};
    } catch (const std::exception& error) {  // e.g. its time zone is gone from this machine
      std::fprintf(stderr, "ferry server: schedule %s is not loaded: %s\n", row.name.c_str(),
                   error.what());
    }
  }
  // Rebuilding is not news: the store has it all. (It holds no running jobs:
  // leases are not stored, so what ran when the server stopped is queued.)
  scheduler_.take_changes();
  return snapshot.epoch;
}

void Service::start() {
  std::uint64_t last_epoch = rebuild();
  // A new epoch of lease tokens, durable before any lease goes out.
  store::Batch epoch;
  epoch.epoch = last_epoch + 1;
  scheduler_.reserve_tokens_from(*epoch.epoch << kTokenBits);
  std::string failed = "not committed";
  store_.write(std::move(epoch), [&failed](const std::string& error) { failed = error; });
  store_.flush();
  if (!failed.empty()) throw std::runtime_error("cannot start: " + failed);
}

void Service::recover() {
  // The leases out there stay valid, so that their workers' reports (the
  // refused ones, sent again) still count: for each job running, or whose
  // change the store refused, the first attempt the store does not have.
  std::map<JobId, std::pair<std::vector<sched::Attempt>, std::optional<Time>>> leased;
  for (const auto& [id, record] : records_)
    if (const sched::Job* job = scheduler_.find(id);
        job && (job->state == sched::State::running || refused_.contains(id)))
      leased[id] = {job->attempts, job->lease_expires};
  refused_.clear();
  std::uint64_t next_token = scheduler_.next_token();
  rebuild();
  scheduler_.reserve_tokens_from(next_token);
  Time now = now_();
  for (auto& [id, held] : leased) {
    auto& [attempts, expires] = held;
    const sched::Job* job = scheduler_.find(id);
    std::size_t stored = job ? job->attempts.size() : attempts.size();
    if (stored >= attempts.size() || attempts[stored].lease == 0) continue;
    bool still_running = attempts[stored].end == sched::AttemptEnd::running;
    if (scheduler_.resume_lease(id, std::move(attempts[stored]),
                                still_running ? expires : now + options_.lease_duration))
      count_change(queue_of(*scheduler_.find(id)), sched::State::queued, sched::State::running);
  }
  scheduler_.take_changes();  // as the store has them, and as they were
  diverged_ = false;
}

// --- Writing, and the events that follow ----------------------------------

Service::Outgoing& Service::enqueue_changes() {
  Outgoing& outgoing = outbox_.emplace_back();
  outgoing.changes = std::move(changed_);
  changed_.clear();
  for (const Changed& change : outgoing.changes) ++changing_[change.id];
  return outgoing;  // a deque keeps it in place while others come and go
}

void Service::send_settled() {
  std::vector<JobId> ended;
  while (!outbox_.empty() && outbox_.front().settled) {
    Outgoing outgoing = std::move(outbox_.front());
    outbox_.pop_front();
    for (const Changed& change : outgoing.changes)
      if (auto count = changing_.find(change.id); --count->second == 0) changing_.erase(count);
    if (outgoing.failed) continue;
    publish(outgoing.changes);
    Time now = now_();
    for (const Changed& change : outgoing.changes) {
      if (const sched::Job* job = scheduler_.find(change.id))
        metrics_.count(queue_of(*job), change.to, change.step, now);
      if (sched::is_final(change.to)) ended.push_back(change.id);
    }
  }
  // Ended, durably, and told: memory lets go, unless it changes again.
  for (JobId id : ended)
    if (!changing_.contains(id)) forget(id);
  if (!unused_specs_.empty()) {
    // Answers already on their way may still point into these specs: they
    // go once those are written out.
    post_([this, unused = std::exchange(unused_specs_, {})] {
      for (const TextArena::Text& text : unused) specs_.release(text);
    });
  }
}

void Service::write(store::Batch batch, std::function<void(const std::string& error)> then) {
  Outgoing& outgoing = enqueue_changes();
  auto committed = [this, &outgoing, then = std::move(then)](const std::string& error) {
    outgoing.settled = true;
    outgoing.failed = !error.empty();
    // Memory went ahead of the store: once nothing else is being written,
    // memory is rebuilt from the store (keeping live leases), so what was
    // refused leaves no trace and can be sent again.
    if (outgoing.failed) {
      diverged_ = true;
      for (const Changed& change : outgoing.changes) refused_.insert(change.id);
    }
    send_settled();
    then(error);
    if (diverged_ && outbox_.empty()) recover();
  };
  store_.write(std::move(batch),
               [post = post_, committed = std::move(committed)](const std::string& error) {
                 post([committed, error] { committed(error); });
               });
}

void Service::commit(store::Batch batch, std::function<void(const std::string& error)> then) {
  if (!batch.empty()) return write(std::move(batch), std::move(then));
  announce();
  then("");
}

void Service::announce() {
  if (changed_.empty()) return;
  enqueue_changes().settled = true;  // behind any group still committing
  send_settled();
}

JobEvent Service::event_of(const Changed& change) const {
  const Record& stored = *record(change.id);
  const sched::Job& job = *scheduler_.find(change.id);
  JobEvent event{change.id, queue_of(job), change.to, &job.reason, change.attempts, nullptr};
  if (change.attempts > 0)
    event.last_report = report(stored, job.attempts[change.attempts - 1].number);
  return event;
}

void Service::publish(const std::vector<Changed>& changes) {
  if (subscribers_.empty()) return;
  for (const Changed& change : changes) {
    if (!scheduler_.find(change.id)) continue;
    JobEvent event = event_of(change);
    // A subscriber may unsubscribe from inside its call.
    for (auto it = subscribers_.begin(); it != subscribers_.end();) (it++)->second(event);
  }
}

std::uint64_t Service::subscribe(Subscriber subscriber) {
  subscribers_.emplace(next_subscription_, std::move(subscriber));
  return next_subscription_++;
}

void Service::unsubscribe(std::uint64_t subscription) { subscribers_.erase(subscription); }

Service::Known Service::current(JobId id, const std::function<void(const JobEvent&)>& see) const {
  if (changing_.contains(id)) return Known::changing;
  if (const sched::Job* job = scheduler_.find(id)) {
    see(event_of({id, job->state, job->attempts.size()}));
    return Known::settled;
  }
  std::optional<store::StoredJob> stored = store_.read_job(id);
  if (!stored) return Known::no_such_job;
  see_stored(*stored, see);
  return Known::settled;
}

void Service::see_stored(const store::StoredJob& stored,
                         const std::function<void(const JobEvent&)>& see) {
  const store::JobRow& row = stored.row;
  std::optional<Completion> last;
  if (!stored.attempts.empty()) last = report_of(stored.attempts.back());
  see(JobEvent{row.id, row.queue, state_named(row.state), &row.reason, stored.attempts.size(),
               last ? &*last : nullptr});
}

void Service::current(const std::vector<JobId>& ids,
                      const std::function<void(const JobEvent&)>& see) const {
  for (std::size_t i = 0; i < ids.size();) {
    if (scheduler_.find(ids[i]) || changing_.contains(ids[i])) {
      current(ids[i++], see);
      continue;
    }
    // A run of ended jobs close together: one read for all of them.
    std::size_t end = i + 1;
    while (end < ids.size() && ids[end] - ids[i] < 4 * (end - i + 1) &&
           !scheduler_.find(ids[end]) && !changing_.contains(ids[end]))
      ++end;
    for (const store::StoredJob& stored : store_.read_jobs(ids[i], ids[end - 1]))
      if (std::binary_search(ids.begin() + static_cast<std::ptrdiff_t>(i),
                             ids.begin() + static_cast<std::ptrdiff_t>(end), stored.row.id))
        see_stored(stored, see);
    i = end;
  }
}

void Service::count_change(std::string_view queue, std::optional<sched::State> from,
                           sched::State to) {
  auto counts = counts_.find(queue);
  if (counts == counts_.end()) counts = counts_.emplace(std::string(queue), sched::Counts{}).first;
  if (from) counts->second.by_state[static_cast<int>(*from)]--;
  counts->second.by_state[static_cast<int>(to)]++;
}

void Service::collect_changes(store::Batch& batch) {
  for (const sched::Change& change : scheduler_.take_changes()) {
    const sched::Job& job = *scheduler_.find(change.job);
    changed_.push_back(
        {job.id, change.to, job.attempts.size(), step_of(job, change.from, change.to)});
    count_change(queue_of(job), change.from, change.to);
    if (change.to == sched::State::running) continue;  // leases are not stored (see the header)
    batch.state_changes.push_back({job.id, std::string(sched::name(change.to)),
                                   job.ready_at.count(), job.reason,
                                   static_cast<std::int64_t>(job.retry_base),
                                   sched::is_final(change.to) ? now_().count() : 0, job.skipped});
    auto attempt_row = [&](const sched::Attempt& attempt) {
      store::AttemptRow row{job.id,
                            attempt.number,
                            attempt.lease,
                            attempt.worker,
                            attempt.started.count(),
                            attempt.ended.count(),
                            std::string(sched::name(attempt.end)),
                            attempt.reason};
      if (const Completion* done = report(*record(job.id), attempt.number)) {
        row.exit_code = done->exit_code;
        row.signal = done->signal;
        row.stdout_tail = done->stdout_tail;
        row.stderr_tail = done->stderr_tail;
        row.result = done->result_json;
        row.cpu_us = done->cpu_us;
        row.max_rss_kb = done->max_rss_kb;
      }
      batch.attempts.push_back(std::move(row));
    };
    if (change.from == sched::State::running) {
      // The attempt that just ended: the newest one that is not running.
      for (auto attempt = job.attempts.rbegin(); attempt != job.attempts.rend(); ++attempt)
        if (attempt->end != sched::AttemptEnd::running) {
          attempt_row(*attempt);
          break;
        }
    }
  }
}

// --- Operations -----------------------------------------------------------

std::string Service::check(const Submission& submission) const {
  std::vector<JobId> named;
  for (const JobSpec& job : submission.jobs)
    named.insert(named.end(), job.after.begin(), job.after.end());
  std::sort(named.begin(), named.end());
  named.erase(std::unique(named.begin(), named.end()), named.end());
  std::optional<JobId> missing = first_missing(named);
  if (!missing) return "";
  for (std::size_t i = 0; i < submission.jobs.size(); ++i) {
    const std::vector<JobId>& after = submission.jobs[i].after;
    if (std::find(after.begin(), after.end(), *missing) != after.end())
      return fmt::format("{}after: no job {}",
                         submission.jobs.size() > 1 ? fmt::format("jobs[{}].", i) : "", *missing);
  }
  return fmt::format("no job {}", *missing);
}

void Service::submit(Submission submission, std::function<void(Submitted)> done) {
  submit_with(std::move(submission), {}, std::move(done));
}

void Service::submit_with(Submission submission, store::Batch batch,
                          std::function<void(Submitted)> done) {
  Time now = now_();
  std::vector<JobSpec>& specs = submission.jobs;
  Submitted answer;
  // A flow whose key a kept flow has: that flow, and nothing new.
  if (submission.flow && !submission.flow->key.empty()) {
    std::optional<std::uint64_t> known;
    if (auto held = flow_keys_.find(submission.flow->key); held != flow_keys_.end())
      known = held->second;
    if (!known) known = store_.find_flow_key(submission.flow->key);
    if (known) {
      answer.flow = *known;
      // Written, empty, to answer after the commit of the submit that made it.
      write(std::move(batch), [this, answer, done = std::move(done)](const std::string&) mutable {
        std::optional<store::FlowRow> flow = store_.read_flow(answer.flow);
        if (!flow) return done({.error = "the flow with the same key was not stored; try again"});
        for (std::uint64_t i = 0; i < flow->jobs; ++i) answer.ids.push_back(flow->first_job + i);
        answer.existing = answer.ids;
        done(std::move(answer));
      });
      return;
    }
  }
  std::vector<std::size_t> fresh;  // indexes of specs that make new jobs
  JobId first = next_id_;
  std::map<std::string_view, JobId> by_ref;
  for (std::size_t i = 0; i < specs.size(); ++i)
    if (!specs[i].ref.empty()) by_ref[specs[i].ref] = first + i;  // no keys in a flow: all new
  for (std::size_t i = 0; i < specs.size(); ++i) {
    JobSpec& spec = specs[i];
    if (!spec.key.empty()) {
      // A key held (by a job of this batch too), or kept in the store.
      std::optional<JobId> known;
      if (auto held = keys_.find(spec.key); held != keys_.end()) known = held->second;
      if (!known) known = store_.find_key(spec.key);
      if (known) {
        answer.ids.push_back(*known);
        answer.existing.push_back(*known);
        continue;
      }
    }
    JobId id = next_id_++;
    answer.ids.push_back(id);
    fresh.push_back(i);
    for (const std::string& ref : spec.after_refs) spec.after.push_back(by_ref.at(ref));
    spec.after_refs.clear();
    if (!spec.key.empty()) keys_[spec.key] = id;  // reserved until the commit says
    // A job with dependencies waits on them; admitting it says what then.
    bool waits = spec.delay.count() > 0 || !spec.after.empty();
    store::JobRow row{id,
                      spec.queue,
                      spec.priority,
                      to_json(spec),
                      waits ? "waiting" : "queued",
                      now.count(),
                      (now + spec.delay).count(),
                      ""};
    row.key = spec.key;
    if (spec.keep) row.keep_ms = spec.keep->count();
    row.after = spec.after;
    batch.new_jobs.push_back(std::move(row));
  }
  if (submission.flow && !fresh.empty()) {
    answer.flow = next_flow_++;
    batch.new_flows.push_back({answer.flow, submission.flow->name, submission.flow->key,
                               now.count(), first, fresh.size()});
    for (store::JobRow& row : batch.new_jobs) row.flow = answer.flow;
    if (!submission.flow->key.empty()) flow_keys_[submission.flow->key] = answer.flow;
  }
  std::vector<store::JobRow> rows = batch.new_jobs;  // what they are once durable
  // Written even when every job existed: its answer then comes after the
  // commit of whatever submit made those jobs.
  write(std::move(batch),
        [this, specs = std::move(specs), rows = std::move(rows), fresh, flow = submission.flow,
         answer = std::move(answer), done = std::move(done)](const std::string& error) mutable {
          if (flow && !flow->key.empty()) flow_keys_.erase(flow->key);
          if (!error.empty()) {
            for (std::size_t i : fresh)
              if (auto held = keys_.find(specs[i].key);
                  held != keys_.end() && held->second == answer.ids[i])
                keys_.erase(held);
            return done({.error = error});
          }
          std::vector<sched::Job> jobs;
          for (std::size_t n = 0; n < fresh.size(); ++n)
            jobs.push_back(hold(rows[n], specs[fresh[n]], {}));
          scheduler_.admit(std::move(jobs), now_(), ended_state());
          // Arrived as stored, they are news to the subscribers only.
          for (const store::JobRow& row : rows) {
            sched::State state = state_named(row.state);
            count_change(row.queue, std::nullopt, state);
            changed_.push_back({row.id, state, 0});
          }
          // A key another submit reserved, whose commit failed: that job is not.
          for (JobId id : answer.existing)
            if (!exists(id))
              return done({.error = "the job with the same key was not stored; try again"});
          done(std::move(answer));
          announce();
          // What admitting them changed (dependencies met already, or one that
          // failed already) is news to the store too.
          store::Batch moved;
          collect_changes(moved);
          commit(std::move(moved), [](const std::string&) {});
          serve_parked();
        });
}

void Service::grant(const LeaseRequest& request, LeaseReply& reply, store::Batch& batch) {
  std::vector<std::string> queues = eligible_queues(request);
  if (queues.empty()) return;  // an empty list would mean every queue to the scheduler
  Time now = now_();
  for (int slot = static_cast<int>(reply.jobs.size()); slot < request.free_slots; ++slot) {
    auto lease = scheduler_.lease(now, request.worker, options_.lease_duration, queues);
    if (!lease) break;
    reply.jobs.push_back(
        {lease->job, lease->token, lease->attempt, record(lease->job)->spec.view, *lease->expires});
  }
  collect_changes(batch);
}

void Service::lease(LeaseRequest request, Leased done) {
  Time now = now_();
  WorkerView& worker = workers_[request.worker];
  worker = {request.worker, request.queues, request.labels, request.free_slots, now};
  if (workers_.size() > kMaxWorkers) forget_workers(now);

  LeaseReply reply;
  store::Batch batch;
  for (const Heartbeat& heartbeat : request.heartbeats)
    if (!scheduler_.renew(heartbeat.job, heartbeat.token, now, options_.lease_duration)) {
      reply.stop.push_back(heartbeat.job);
      reply.stop_tokens.push_back(heartbeat.token);
    }
  // A refused report of a current attempt still ends it: as failed, saying why.
  for (const RejectedCompletion& rejected : request.rejected)
    if (rejected.job && rejected.token && current_lease(rejected.job, rejected.token))
      request.completions.push_back(
          {.job = rejected.job,
           .token = rejected.token,
           .reason = "the worker's report was refused: " + rejected.error});
  for (Completion& completion : request.completions) {
    if (const sched::Job* job = current_lease(completion.job, completion.token)) {
      auto& reports = records_.at(completion.job).reports;
      if (!reports) reports = std::make_unique<std::map<int, Completion>>();
      (*reports)[job->attempts.back().number] = completion;
    }
    scheduler_.complete(completion.job, completion.token, completion.succeeded, completion.reason,
                        now);  // counts it when stale
    reply.acknowledged.push_back(completion.token);
  }
  reply.rejected = std::move(request.rejected);
  collect_changes(batch);
  grant(request, reply, batch);

  bool idle = reply.jobs.empty() && reply.acknowledged.empty() && reply.stop.empty() &&
              reply.rejected.empty();
  if (idle && request.wait.count() > 0) {
    Time deadline = now + std::min(request.wait, options_.max_wait);
    parked_.push_back({std::move(request), std::move(done), deadline});
    return;
  }
  // New leases go out at once; acknowledgements wait for their commit.
  commit(std::move(batch),
         [reply = std::move(reply), done = std::move(done)](const std::string& error) mutable {
           if (!error.empty()) reply = LeaseReply{.error = error};
           done(std::move(reply));
         });
}

void Service::serve_parked() {
  for (auto it = parked_.begin();
       it != parked_.end() && scheduler_.counts()[sched::State::queued];) {
    if (it->request.connected && !it->request.connected()) {
      Leased done = std::move(it->done);
      it = parked_.erase(it);
      done(LeaseReply{});  // nobody reads it
      continue;
    }
    LeaseReply reply;
    store::Batch batch;
    grant(it->request, reply, batch);
    if (reply.jobs.empty()) {
      ++it;
      continue;
    }
    Leased done = std::move(it->done);
    it = parked_.erase(it);
    commit(std::move(batch),
           [reply = std::move(reply), done = std::move(done)](const std::string& error) mutable {
             if (!error.empty()) reply = LeaseReply{.error = error};
             done(std::move(reply));
           });
  }
}

void Service::release(const std::vector<LeasedJob>& jobs) {
  Time now = now_();
  for (const LeasedJob& job : jobs)
    scheduler_.release(job.id, job.token, now, "not delivered: the worker's connection was gone");
  store::Batch batch;
  collect_changes(batch);
  commit(std::move(batch), [](const std::string&) {});
  serve_parked();
}

void Service::for_each_job(std::vector<JobId> ids,
                           const std::function<std::string(const sched::Job&, Time)>& act,
                           PerJob done,
                           const std::function<void(const std::vector<JobId>&, Time)>& then) {
  Time now = now_();
  for (JobId id : ids) bring_back(id);
  std::vector<std::string> results;
  std::vector<JobId> acted;
  for (JobId id : ids) {
    const sched::Job* job = scheduler_.find(id);
    results.push_back(job ? act(*job, now) : fmt::format("no job {}", id));
    if (results.back().empty()) acted.push_back(id);
  }
  if (then) then(acted, now);
  store::Batch batch;
  collect_changes(batch);
  commit(std::move(batch), [this, results = std::move(results),
                            done = std::move(done)](const std::string& error) mutable {
    done(std::move(results), error);
    serve_parked();  // a retried job may be what a long poll waits for
  });
  // Brought back only to be looked at: let go of them again. A job that
  // changed is let go once its event went out (committing counted it in
  // changing_): forgotten before, the event would have no job to tell of.
  for (JobId id : ids)
    if (const sched::Job* job = scheduler_.find(id);
        job && sched::is_final(job->state) && !changing_.contains(id))
      forget(id);
}

void Service::cancel(std::vector<JobId> ids, PerJob done) {
  for_each_job(
      std::move(ids),
      [this](const sched::Job& job, Time now) -> std::string {
        if (sched::is_final(job.state))
          return fmt::format("job {} already {}", job.id, sched::name(job.state));
        scheduler_.cancel(job.id, "cancelled by request", now);
        return "";
      },
      std::move(done));
}

void Service::cancel_together(std::vector<JobId> ids, PerJob done) {
  std::unordered_set<JobId> together(ids.begin(), ids.end());
  for_each_job(
      std::move(ids),
      [this, together](const sched::Job& job, Time now) -> std::string {
        if (job.skipped && std::any_of(job.after.begin(), job.after.end(),
                                       [&](JobId id) { return together.contains(id); }))
          return "";
        if (sched::is_final(job.state))
          return fmt::format("job {} already {}", job.id, sched::name(job.state));
        scheduler_.cancel(job.id, "cancelled by request", now);
        return "";
      },
      std::move(done));
}

void Service::retry(std::vector<JobId> ids, PerJob done) {
  for_each_job(
      std::move(ids),
      [this](const sched::Job& job, Time now) -> std::string {
        sched::State state = job.state;  // retry() changes it
        if (scheduler_.retry(job.id, now)) return "";
        return fmt::format("job {} is {}: only failed or cancelled jobs are retried", job.id,
                           sched::name(state));
      },
      std::move(done),
      [this](const std::vector<JobId>& retried, Time now) {
        // What was skipped because of them waits on them again.
        std::vector<JobId> skipped = skipped_after(retried);
        if (!skipped.empty()) scheduler_.unskip(skipped, now, ended_state());
      });
}

// --- Time -----------------------------------------------------------------

void Service::tick() {
  Time now = now_();
  scheduler_.advance(now);
  forget_workers(now);
  store::Batch batch;
  collect_changes(batch);
  // Queued again or at last: durable soon, and harmless if not (a job runs
  // again, or waits again). Nothing waits on this write.
  commit(std::move(batch), [](const std::string&) {});
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    Leased done = std::move(it->done);
    it = parked_.erase(it);
    done(LeaseReply{});
  }
  serve_parked();
  fire_schedules(now);
  if (now >= next_expiry_) expire(now);
}

void Service::expire(Time now) {
  if (expiring_) return;
  constexpr std::size_t kBatch = 1000;  // small: it shares a commit with everything else
  store::Batch batch;
  batch.expiry = store::Expiry{.now_ms = now.count(), .limit = kBatch};
  if (options_.keep_finished && options_.keep_finished->count() > 0)
    batch.expiry->default_until_ms = (now - *options_.keep_finished).count();
  auto removed = std::make_shared<std::vector<store::Count>>();
  batch.expired = removed;
  expiring_ = true;
  next_expiry_ = now + std::chrono::seconds(1);
  write(std::move(batch), [this, removed, now](const std::string& error) {
    expiring_ = false;
    if (!error.empty()) return;
    std::size_t total = 0;
    for (const store::Count& count : *removed) {
      counts_[count.queue].by_state[static_cast<int>(state_named(count.state))] -= count.jobs;
      total += count.jobs;
    }
    behind_ = total == kBatch;  // more are due: go on at once
    if (behind_) next_expiry_ = now;
  });
}

std::optional<Time> Service::next_tick() const {
  std::optional<Time> next = scheduler_.next_wakeup();
  for (const Parked& parked : parked_)
    if (!next || parked.deadline < *next) next = parked.deadline;
  // Retention runs with the ticks there are (at least one a second), and
  // asks for more only while it catches up.
  if (behind_ && !expiring_ && (!next || next_expiry_ < *next)) next = next_expiry_;
  for (const auto& [name, schedule] : schedules_)
    if (!schedule.row.paused && schedule.row.next_ms > 0 && !schedule.busy &&
        (!next || Time{schedule.row.next_ms} < *next))
      next = Time{schedule.row.next_ms};
  return next;
}

// --- Queue settings ---------------------------------------------------------

void Service::set_queue(const std::string& name, QueueSettings settings, Done done) {
  // Held at once, so that a change asked for meanwhile builds on this one;
  // in force once durable (writes commit in order: the last one wins).
  QueueSettings before = queue_settings(name);
  queue_settings_[name] = settings;
  write(store::Batch{.queues = {{name, to_json(settings)}}},
        [this, name, settings, before, done = std::move(done)](const std::string& error) {
          if (!error.empty()) {
            if (queue_settings(name) == settings) queue_settings_[name] = before;
            return done(Refusal::store_failed, error);
          }
          scheduler_.set_limits(name, settings, now_());
          done(Refusal::none, "");
          serve_parked();  // resumed, or more may run
        });
}

QueueSettings Service::queue_settings(std::string_view name) const {
  auto found = queue_settings_.find(name);
  return found == queue_settings_.end() ? QueueSettings{} : found->second;
}

std::vector<QueueView> Service::queue_views() const {
  // A queue with settings back at their defaults and no jobs is no longer listed.
  std::set<std::string, std::less<>> names;
  for (const auto& [name, counts] : counts_) names.insert(name);
  for (const auto& [name, settings] : queue_settings_)
    if (settings != QueueSettings{}) names.insert(name);
  std::vector<QueueView> views;
  for (const std::string& name : names) views.push_back(queue_view(name));
  return views;
}

QueueView Service::queue_view(std::string_view name) const {
  QueueView view{std::string(name), queue_settings(name), {}, scheduler_.running_in(name)};
  if (auto found = counts_.find(name); found != counts_.end()) view.counts = found->second;
  return view;
}

// --- Schedules ------------------------------------------------------------

void Service::fire_schedules(Time now) {
  // A tick missed by more than this (the server was down) is made up for by
  // one run, or skipped with skip_missed.
  constexpr std::int64_t kLate = 60'000;
  for (auto& [name, schedule] : schedules_) {
    store::ScheduleRow& row = schedule.row;
    if (row.paused || row.next_ms == 0 || row.next_ms > now.count() || schedule.busy) continue;
    std::int64_t tick = row.next_ms;
    // The ticks missed meanwhile are one: the next is the first after now.
    row.next_ms = next_fire(schedule.spec, std::max(tick, now.count()));
    schedule.busy = true;
    store::Batch batch;
    batch.schedules.push_back(row);
    auto settled = [this, name = name, tick](bool failed) {
      auto it = schedules_.find(name);
      if (it == schedules_.end()) return;
      it->second.busy = false;
      if (failed) it->second.row.next_ms = tick;  // again at the next tick
    };
    if (schedule.spec.skip_missed && now.count() - tick > kLate) {
      write(std::move(batch), [settled](const std::string& error) { settled(!error.empty()); });
      continue;
    }
    // Keyed by name and tick: after a crash before this commit, the same
    // tick fires again and makes nothing twice.
    submit_with(work_for(schedule.spec, tick), std::move(batch),
                [settled, name = name](Submitted submitted) {
                  if (!submitted.error.empty())
                    std::fprintf(stderr, "ferry server: schedule %s did not fire: %s\n",
                                 name.c_str(), submitted.error.c_str());
                  settled(!submitted.error.empty());
                });
  }
}

void Service::add_schedule(ScheduleSpec spec, Done done) {
  if (schedules_.contains(spec.name))
    return done(Refusal::exists, fmt::format("schedule {} exists: remove it first", spec.name));
  std::int64_t now = now_().count();
  store::ScheduleRow row{spec.name, to_json(spec), false, next_fire(spec, now), now};
  std::string name = spec.name;
  schedules_[name] = {std::move(spec), row, true};
  write(store::Batch{.schedules = {row}},
        [this, name, done = std::move(done)](const std::string& error) {
          if (!error.empty()) {
            schedules_.erase(name);
            return done(Refusal::store_failed, error);
          }
          if (auto it = schedules_.find(name); it != schedules_.end()) it->second.busy = false;
          done(Refusal::none, "");
        });
}

void Service::remove_schedule(const std::string& name, Done done) {
  auto it = schedules_.find(name);
  if (it == schedules_.end()) return done(Refusal::not_found, "no schedule " + name);
  Schedule removed = std::move(it->second);
  schedules_.erase(it);
  write(store::Batch{.removed_schedules = {name}},
        [this, removed = std::move(removed),
         done = std::move(done)](const std::string& error) mutable {
          if (!error.empty()) {
            std::string again = removed.row.name;
            schedules_.try_emplace(again, std::move(removed));
            return done(Refusal::store_failed, error);
          }
          done(Refusal::none, "");
        });
}

void Service::pause_schedule(const std::string& name, bool paused, Done done) {
  auto it = schedules_.find(name);
  if (it == schedules_.end()) return done(Refusal::not_found, "no schedule " + name);
  Schedule& schedule = it->second;
  store::ScheduleRow before = schedule.row;
  if (schedule.row.paused != paused) {
    schedule.row.paused = paused;
    if (!paused) schedule.row.next_ms = next_fire(schedule.spec, now_().count());
  }
  write(store::Batch{.schedules = {schedule.row}},
        [this, before, done = std::move(done)](const std::string& error) {
          if (!error.empty()) {
            if (auto held = schedules_.find(before.name); held != schedules_.end())
              held->second.row = before;
            return done(Refusal::store_failed, error);
          }
          done(Refusal::none, "");
        });
}

void Service::run_schedule(const std::string& name,
                           std::function<void(std::optional<Submitted>)> done) {
  auto it = schedules_.find(name);
  if (it == schedules_.end()) return done(std::nullopt);
  submit_with(work_for(it->second.spec, now_().count()), {},
              [done = std::move(done)](Submitted submitted) { done(std::move(submitted)); });
}

std::vector<ScheduleView> Service::schedules() const {
  std::vector<ScheduleView> views;
  for (const auto& [name, schedule] : schedules_)
    views.push_back(
        {schedule.spec, schedule.row.paused, schedule.row.next_ms, schedule.row.created_ms});
  return views;
}

std::optional<ScheduleView> Service::schedule(const std::string& name) const {
  auto it = schedules_.find(name);
  if (it == schedules_.end()) return std::nullopt;
  const Schedule& schedule = it->second;
  return ScheduleView{schedule.spec, schedule.row.paused, schedule.row.next_ms,
                      schedule.row.created_ms};
}

// --- Reads ----------------------------------------------------------------

const Service::Record* Service::record(JobId id) const {
  auto found = records_.find(id);
  return found == records_.end() ? nullptr : &found->second;
}

const sched::Job* Service::current_lease(JobId id, std::uint64_t token) const {
  const sched::Job* job = scheduler_.find(id);
  bool current = job && job->state == sched::State::running && job->attempts.back().lease == token;
  return current ? job : nullptr;
}

std::string_view Service::queue_of(const sched::Job& job) {
  std::string_view key = job.options.queue;
  return key.substr(0, key.find_first_of("#!"));  // see queue_key()
}

const Completion* Service::report(const Record& record, int attempt) {
  if (!record.reports) return nullptr;
  auto found = record.reports->find(attempt);
  return found == record.reports->end() ? nullptr : &found->second;
}

JobView Service::view_of(JobId id, const sched::Job& job, const Record& record) const {
  std::string spec(record.spec.view);
  std::string name = parse_job_spec(spec).name;
  return {id,
          std::move(spec),
          std::move(name),
          std::string(queue_of(job)),
          job.state,
          job.reason,
          record.created,
          {},
          job.attempts.size(),
          record.flow,
          job.skipped};
}

std::string Service::held_text(const sched::Job& job) const {
  const sched::GroupLimits* limits = scheduler_.limits(queue_of(job));
  switch (scheduler_.hold_of(job.id)) {
    case sched::Hold::none:
      return "";
    case sched::Hold::paused:
      return "its queue is paused";
    case sched::Hold::max_running:
      return fmt::format("its queue runs its most at once ({})", *limits->max_running);
    case sched::Hold::key:
      return fmt::format("concurrency key \"{}\" at its limit ({} running)",
                         job.options.concurrency_key, limits ? limits->per_key : 1);
    case sched::Hold::rate:
      return fmt::format("its queue's rate ({}) allows no start yet", rate_text(*limits->rate));
  }
  return "";
}

JobView Service::view_of(const store::StoredJob& stored) {
  const store::JobRow& row = stored.row;
  JobView view{row.id,
               row.spec,
               parse_job_spec(row.spec).name,
               row.queue,
               state_named(row.state),
               row.reason,
               Time{row.created_ms},
               {},
               stored.attempts.size(),
               row.flow,
               row.skipped};
  for (const store::AttemptRow& attempt : stored.attempts)
    view.attempts.push_back({attempt_of(attempt), report_of(attempt)});
  return view;
}

std::optional<JobView> Service::job(JobId id) const {
  if (const sched::Job* job = scheduler_.find(id)) {
    const Record& stored = *record(id);
    JobView view = view_of(id, *job, stored);
    view.held = held_text(*job);
    for (const sched::Attempt& attempt : job->attempts) {
      const Completion* done = report(stored, attempt.number);
      view.attempts.push_back({attempt, done ? std::optional(*done) : std::nullopt});
    }
    return view;
  }
  std::optional<store::StoredJob> stored = store_.read_job(id);
  if (!stored) return std::nullopt;
  return view_of(*stored);
}

bool Service::exists(JobId id) const { return !first_missing({id}); }

std::optional<JobId> Service::first_missing(const std::vector<JobId>& ids) const {
  std::vector<JobId> ended;  // not held: the store knows
  for (JobId id : ids)
    if (!scheduler_.find(id)) ended.push_back(id);
  return store_.first_missing(ended);
}

ListPage Service::list(const ListQuery& query) const {
  ListPage page;
  JobId before = query.before > 0 ? std::min(query.before, next_id_) : next_id_;
  auto matches = [&](const sched::Job& job, const Record& record) {
    return (!query.state || job.state == *query.state) &&
           (query.queue.empty() || queue_of(job) == query.queue) &&
           (query.text.empty() || record.spec.view.find(query.text) != std::string_view::npos);
  };
  if (query.state && !sched::is_final(*query.state)) {
    // Jobs that have not ended are all held: memory answers alone.
    std::vector<JobId> found;
    for (const auto& [id, record] : records_)
      if (const sched::Job* job = scheduler_.find(id); id < before && job && matches(*job, record))
        found.push_back(id);
    std::size_t shown = std::min(found.size(), query.limit);
    std::partial_sort(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(shown),
                      found.end(), std::greater<>());
    for (std::size_t i = 0; i < shown; ++i)
      page.jobs.push_back(view_of(found[i], *scheduler_.find(found[i]), *record(found[i])));
    if (found.size() > shown) page.next_before = found[shown - 1];
    return page;
  }
  // Every job is in the store; those held are shown as memory has them.
  store::ListPage stored = store_.list_jobs(
      {.state = query.state ? std::optional(std::string(sched::name(*query.state))) : std::nullopt,
       .queue = query.queue,
       .text = query.text,
       .before = before,
       .limit = query.limit,
       .max_scan = kMaxScan});
  for (const store::ListedJob& listed : stored.jobs) {
    JobId id = listed.row.id;
    if (const sched::Job* job = scheduler_.find(id)) {
      if (matches(*job, *record(id))) page.jobs.push_back(view_of(id, *job, *record(id)));
      continue;
    }
    JobView view = view_of(store::StoredJob{listed.row, {}});
    view.attempt_count = listed.attempts;
    page.jobs.push_back(std::move(view));
  }
  page.next_before = stored.next_before;
  return page;
}

std::optional<FlowView> Service::flow(std::uint64_t id) const {
  std::optional<store::FlowRow> row = store_.read_flow(id);
  if (!row) return std::nullopt;
  FlowView view{*row, {}, {}, ""};
  JobId first = row->first_job, last = row->first_job + row->jobs - 1;
  std::vector<store::StoredJob> stored = store_.read_jobs(first, last);
  std::size_t next = 0;
  for (JobId job_id = first; job_id <= last; ++job_id) {
    while (next < stored.size() && stored[next].row.id < job_id) ++next;
    FlowView::Job job{job_id, "", "", sched::State::cancelled, "", 0};
    std::string_view spec;
    if (const sched::Job* held = scheduler_.find(job_id)) {
      job.state = held->state;
      job.reason = held->reason;
      job.attempts = held->attempts.size();
      job.skipped = held->skipped;
      spec = record(job_id)->spec.view;
    } else if (next < stored.size() && stored[next].row.id == job_id) {
      const store::JobRow& kept = stored[next].row;
      job.state = state_named(kept.state);
      job.reason = kept.reason;
      job.attempts = stored[next].attempts.size();
      job.skipped = kept.skipped;
      spec = kept.spec;
    } else {
      continue;  // removed by retention
    }
    JobSpec parsed = parse_job_spec(spec);
    job.ref = parsed.ref;
    job.name = parsed.name;
    view.counts.by_state[static_cast<int>(job.state)]++;
    view.jobs.push_back(std::move(job));
  }
  // Jobs skipped by their conditions are a path not taken; a job skipped
  // because its dependency failed or was cancelled comes with that job.
  const sched::Counts& counts = view.counts;
  bool running =
      counts[sched::State::waiting] + counts[sched::State::queued] + counts[sched::State::running] >
      0;
  bool cancelled = std::any_of(view.jobs.begin(), view.jobs.end(), [](const FlowView::Job& job) {
    return job.state == sched::State::cancelled && !job.skipped;
  });
  view.state = running                            ? "running"
               : counts[sched::State::failed] > 0 ? "failed"
               : cancelled                        ? "cancelled"
                                                  : "succeeded";
  return view;
}

std::vector<FlowView> Service::flows(std::uint64_t before, std::size_t limit) const {
  std::vector<FlowView> views;
  for (const store::FlowRow& row : store_.list_flows(before, limit)) {
    std::optional<FlowView> view = flow(row.id);
    if (!view) continue;
    view->jobs.clear();  // a listing counts them only
    views.push_back(std::move(*view));
  }
  return views;
}

std::map<std::string, sched::Counts> Service::queues() const {
  std::map<std::string, sched::Counts> queues;
  for (const auto& [queue, counts] : counts_)
    if (counts.total() > 0) queues[queue] = counts;
  return queues;
}

sched::Counts Service::counts() const {
  sched::Counts all;
  for (const auto& [queue, counts] : counts_)
    for (std::size_t i = 0; i < std::size(all.by_state); ++i) all.by_state[i] += counts.by_state[i];
  all.stale_completions = scheduler_.counts().stale_completions;
  return all;
}

Service::WorkerPage Service::workers(const std::string& after, std::size_t limit) const {
  WorkerPage page;
  for (auto it = workers_.upper_bound(after); it != workers_.end(); ++it) {
    if (page.workers.size() == limit) {
      page.next_after = page.workers.back().id;
      break;
    }
    page.workers.push_back(it->second);
  }
  // Every running job holds a lease: those are few (the slots of the workers).
  std::map<std::string_view, WorkerView*> shown;
  for (WorkerView& worker : page.workers) shown[worker.id] = &worker;
  for (sched::JobId id : scheduler_.leased())
    if (const sched::Job* job = scheduler_.find(id); job && !job->attempts.empty())
      if (auto worker = shown.find(job->attempts.back().worker); worker != shown.end())
        worker->second->running.push_back(id);
  for (WorkerView& worker : page.workers) std::sort(worker.running.begin(), worker.running.end());
  return page;
}

std::size_t Service::workers_seen_since(Time since) const {
  return static_cast<std::size_t>(
      std::count_if(workers_.begin(), workers_.end(),
                    [&](const auto& worker) { return worker.second.last_seen >= since; }));
}

void Service::forget_workers(Time now) {
  std::erase_if(workers_, [&](const auto& worker) {
    return now - worker.second.last_seen > kForgetWorkersAfter;
  });
  if (workers_.size() <= kMaxWorkers) return;
  // The longest silent go, a tenth at a time, so this runs rarely.
  std::vector<Time> seen;
  for (const auto& [id, worker] : workers_) seen.push_back(worker.last_seen);
  auto cut = seen.begin() + static_cast<std::ptrdiff_t>(seen.size() - kMaxWorkers * 9 / 10);
  std::nth_element(seen.begin(), cut, seen.end());
  std::erase_if(workers_, [&](const auto& worker) { return worker.second.last_seen < *cut; });
}

// --- TextArena ------------------------------------------------------------

std::uint32_t TextArena::fresh_chunk(std::size_t size) {
  std::uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(chunks_.size());
    chunks_.emplace_back();
  }
  chunks_[slot] = Chunk{std::make_unique<char[]>(size), 0, 0};
  return slot;
}

TextArena::Text TextArena::add(std::string_view text) {
  std::uint32_t slot;
  if (text.size() > kChunk / 4) {  // a large one alone
    slot = fresh_chunk(text.size());
  } else {
    if (!filling_ || chunks_[*filling_].used + text.size() > kChunk) {
      std::optional<std::uint32_t> full = filling_;
      filling_ = fresh_chunk(kChunk);
      if (full && chunks_[*full].texts == 0) {  // emptied while it was being filled
        chunks_[*full].bytes.reset();
        free_.push_back(*full);
      }
    }
    slot = *filling_;
  }
  Chunk& chunk = chunks_[slot];
  char* at = chunk.bytes.get() + chunk.used;
  std::copy(text.begin(), text.end(), at);
  chunk.used += text.size();
  chunk.texts++;
  return {{at, text.size()}, slot};
}

void TextArena::release(const Text& text) {
  Chunk& chunk = chunks_[text.chunk];
  if (--chunk.texts > 0 || text.chunk == filling_) return;
  chunk.bytes.reset();
  free_.push_back(text.chunk);
}

}  // namespace ferry::server
