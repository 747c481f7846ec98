#include "server/service.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace ferry::server {
namespace {

sched::State state_named(const std::string& name) {
  for (auto state : {sched::State::waiting, sched::State::queued, sched::State::running,
                     sched::State::succeeded, sched::State::failed, sched::State::cancelled})
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

}  // namespace

Service::Service(store::Store& store, Post post, Now now, Options options)
    : store_(store), post_(std::move(post)), now_(std::move(now)), options_(options) {}

std::string Service::queue_key(const std::string& queue, std::vector<std::string> labels,
                               bool call) {
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  // '#' and '!' cannot occur in a queue name or label, so keys of different
  // queues, labels or kinds never meet.
  std::string key = call ? queue + "!" : queue;
  for (std::size_t i = 0; i < labels.size(); ++i) key += (i ? "," : "#") + labels[i];
  queue_keys_.try_emplace(key, QueueKey{queue, std::move(labels), call});
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

void Service::admit(JobId id, const JobSpec& spec, std::string_view spec_json, sched::State state,
                    Time created, Time ready_at, std::vector<sched::Attempt> attempts,
                    std::string reason, std::size_t retry_base) {
  sched::Job job;
  job.id = id;
  // A call can only run where its function is registered: workers announce
  // theirs as labels "function:NAME", and the call requires that label.
  std::vector<std::string> labels = spec.labels;
  const auto* call = std::get_if<CallSpec>(&spec.work);
  if (call) labels.push_back("function:" + call->function);
  job.options.queue = queue_key(spec.queue, std::move(labels), call != nullptr);
  job.options.priority = spec.priority;
  job.options.retry = {spec.retries, spec.retry_delay, options_.max_backoff};
  job.options.not_before = created + spec.delay;
  job.state = state;
  job.ready_at = ready_at;
  job.attempts = std::move(attempts);
  job.reason = std::move(reason);
  job.retry_base = static_cast<std::uint32_t>(retry_base);
  if (records_.size() < id) records_.resize(id);
  Record& record = records_[id - 1];
  if (record.spec.empty()) record.spec = specs_.add(spec_json);
  record.created = created;
  scheduler_.admit(std::move(job), now_());
  next_id_ = std::max(next_id_, id + 1);
}

std::uint64_t Service::rebuild() {
  store::Snapshot snapshot = store_.load();
  // Specs never change: those already held are kept (lease answers on their
  // way out point into them); what the store says replaces everything else.
  scheduler_ = sched::Scheduler();
  for (Record& record : records_) record.reports.reset();
  std::size_t next_attempt = 0;
  for (const store::JobRow& row : snapshot.jobs) {
    std::vector<sched::Attempt> attempts;
    std::map<int, Completion> reports;
    for (; next_attempt < snapshot.attempts.size() &&
           snapshot.attempts[next_attempt].job_id == row.id;
         ++next_attempt) {
      const store::AttemptRow& stored = snapshot.attempts[next_attempt];
      attempts.push_back({stored.number, stored.lease, stored.worker, Time{stored.started_ms},
                          Time{stored.ended_ms}, attempt_end_named(stored.end), stored.reason});
      if (stored.end != "running")
        reports[stored.number] = {
            row.id,           stored.lease,  stored.end == "succeeded", stored.reason,
            stored.exit_code, stored.signal, stored.stdout_tail,        stored.stderr_tail,
            stored.result,    stored.cpu_us, stored.max_rss_kb};
    }
    sched::State state = state_named(row.state);
    admit(row.id, parse_job_spec(row.spec), row.spec, state, Time{row.created_ms},
          Time{row.ready_at_ms}, std::move(attempts), row.reason,
          static_cast<std::size_t>(row.retry_base));
    if (!reports.empty())
      records_[row.id - 1].reports =
          std::make_unique<std::map<int, Completion>>(std::move(reports));
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
  for (JobId id = 1; id < next_id_; ++id)
    if (const sched::Job* job = scheduler_.find(id);
        job && (job->state == sched::State::running || refused_.contains(id)))
      leased[id] = {job->attempts, job->lease_expires};
  refused_.clear();
  std::uint64_t next_token = scheduler_.next_token();
  JobId next_id = next_id_;
  rebuild();
  scheduler_.reserve_tokens_from(next_token);
  next_id_ = std::max(next_id_, next_id);
  Time now = now_();
  for (auto& [id, held] : leased) {
    auto& [attempts, expires] = held;
    const sched::Job* job = scheduler_.find(id);
    std::size_t stored = job ? job->attempts.size() : attempts.size();
    if (stored >= attempts.size() || attempts[stored].lease == 0) continue;
    bool still_running = attempts[stored].end == sched::AttemptEnd::running;
    scheduler_.resume_lease(id, std::move(attempts[stored]),
                            still_running ? expires : now + options_.lease_duration);
  }
  scheduler_.take_changes();  // as the store has them, and as they were
  diverged_ = false;
}

Service::Outgoing& Service::enqueue_changes() {
  Outgoing& outgoing = outbox_.emplace_back();
  outgoing.changes = std::move(changed_);
  changed_.clear();
  for (const Changed& change : outgoing.changes) ++changing_[change.id];
  return outgoing;  // a deque keeps it in place while others come and go
}

void Service::send_settled() {
  while (!outbox_.empty() && outbox_.front().settled) {
    Outgoing outgoing = std::move(outbox_.front());
    outbox_.pop_front();
    for (const Changed& change : outgoing.changes)
      if (auto count = changing_.find(change.id); --count->second == 0) changing_.erase(count);
    if (!outgoing.failed) publish(outgoing.changes);
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
  const sched::Job* job = scheduler_.find(id);
  if (!job) return Known::no_such_job;
  if (changing_.contains(id)) return Known::changing;
  see(event_of({id, job->state, job->attempts.size()}));
  return Known::settled;
}

void Service::collect_changes(store::Batch& batch) {
  for (const sched::Change& change : scheduler_.take_changes()) {
    const sched::Job& job = *scheduler_.find(change.job);
    changed_.push_back({job.id, change.to, job.attempts.size()});
    if (change.to == sched::State::running) continue;  // leases are not stored (see the header)
    batch.state_changes.push_back({job.id, std::string(sched::name(change.to)),
                                   job.ready_at.count(), job.reason,
                                   static_cast<std::int64_t>(job.retry_base)});
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

void Service::submit(std::vector<JobSpec> specs, Submitted done) {
  Time now = now_();
  store::Batch batch;
  std::vector<JobId> ids;
  std::vector<std::string> jsons;
  for (const JobSpec& spec : specs) {
    JobId id = next_id_++;
    ids.push_back(id);
    jsons.push_back(to_json(spec));
    bool delayed = spec.delay.count() > 0;
    batch.new_jobs.push_back({id, spec.queue, spec.priority, jsons.back(),
                              delayed ? "waiting" : "queued", now.count(),
                              (now + spec.delay).count(), ""});
  }
  write(std::move(batch), [this, specs = std::move(specs), ids, jsons = std::move(jsons), now,
                           done = std::move(done)](const std::string& error) mutable {
    if (!error.empty()) return done({}, error);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      auto state = specs[i].delay.count() > 0 ? sched::State::waiting : sched::State::queued;
      admit(ids[i], specs[i], jsons[i], state, now, now + specs[i].delay, {}, "", 0);
      changed_.push_back({ids[i], state, 0});
    }
    // Admitting durable jobs tells the store nothing new; every other
    // operation collects its changes before it returns, so none are lost here.
    scheduler_.take_changes();
    done(ids, "");
    announce();
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
        {lease->job, lease->token, lease->attempt, record(lease->job)->spec, *lease->expires});
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
    if (!scheduler_.renew(heartbeat.job, heartbeat.token, now, options_.lease_duration))
      reply.stop.push_back(heartbeat.job);
  // A refused report of a current attempt still ends it: as failed, saying why.
  for (const RejectedCompletion& rejected : request.rejected)
    if (rejected.job && rejected.token && current_lease(rejected.job, rejected.token))
      request.completions.push_back(
          {.job = rejected.job,
           .token = rejected.token,
           .reason = "the worker's report was refused: " + rejected.error});
  for (Completion& completion : request.completions) {
    if (const sched::Job* job = current_lease(completion.job, completion.token)) {
      auto& reports = records_[completion.job - 1].reports;
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
                           PerJob done) {
  Time now = now_();
  std::vector<std::string> results;
  for (JobId id : ids) {
    const sched::Job* job = scheduler_.find(id);
    results.push_back(job ? act(*job, now) : fmt::format("no job {}", id));
  }
  store::Batch batch;
  collect_changes(batch);
  commit(std::move(batch), [this, results = std::move(results),
                            done = std::move(done)](const std::string& error) mutable {
    done(std::move(results), error);
    serve_parked();  // a retried job may be what a long poll waits for
  });
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

void Service::retry(std::vector<JobId> ids, PerJob done) {
  for_each_job(
      std::move(ids),
      [this](const sched::Job& job, Time now) -> std::string {
        sched::State state = job.state;  // retry() changes it
        if (scheduler_.retry(job.id, now)) return "";
        return fmt::format("job {} is {}: only failed or cancelled jobs are retried", job.id,
                           sched::name(state));
      },
      std::move(done));
}

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
}

std::optional<Time> Service::next_tick() const {
  std::optional<Time> next = scheduler_.next_wakeup();
  for (const Parked& parked : parked_)
    if (!next || parked.deadline < *next) next = parked.deadline;
  return next;
}

std::string_view TextArena::add(std::string_view text) {
  char* at = nullptr;
  if (text.size() > kChunk / 4) {  // a large one alone, before the chunk being filled
    auto place = chunks_.empty() ? chunks_.end() : chunks_.end() - 1;
    at = chunks_.insert(place, std::make_unique<char[]>(text.size()))->get();
  } else {
    if (used_ + text.size() > kChunk) {
      chunks_.push_back(std::make_unique<char[]>(kChunk));
      used_ = 0;
    }
    at = chunks_.back().get() + used_;
    used_ += text.size();
  }
  std::copy(text.begin(), text.end(), at);
  return {at, text.size()};
}

const sched::Job* Service::current_lease(JobId id, std::uint64_t token) const {
  const sched::Job* job = scheduler_.find(id);
  bool current = job && job->state == sched::State::running && job->attempts.back().lease == token;
  return current ? job : nullptr;
}

const Service::Record* Service::record(JobId id) const {
  if (id == 0 || id > records_.size() || records_[id - 1].spec.empty()) return nullptr;
  return &records_[id - 1];
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
  std::string spec(record.spec);
  std::string name = parse_job_spec(spec).name;
  return {id,        std::move(spec), std::move(name), std::string(queue_of(job)),
          job.state, job.reason,      record.created,  {}};
}

std::optional<JobView> Service::job(JobId id) const {
  const sched::Job* job = scheduler_.find(id);
  if (!job) return std::nullopt;
  const Record& stored = *record(id);
  JobView view = view_of(id, *job, stored);
  for (const sched::Attempt& attempt : job->attempts) {
    const Completion* done = report(stored, attempt.number);
    view.attempts.push_back({attempt, done ? std::optional(*done) : std::nullopt});
  }
  return view;
}

ListPage Service::list(const ListQuery& query) const {
  ListPage page;
  JobId id = query.before > 0 ? std::min(query.before, next_id_) : next_id_;
  std::size_t scanned = 0;
  while (id > 1 && page.jobs.size() < query.limit && scanned < kMaxScan) {
    --id;
    ++scanned;
    const sched::Job* job = scheduler_.find(id);
    if (!job) continue;  // an id that never committed
    const Record& stored = *record(id);
    if (query.state && job->state != *query.state) continue;
    if (!query.queue.empty() && queue_of(*job) != query.queue) continue;
    // The name is in the spec: one search finds both.
    if (!query.text.empty() && stored.spec.find(query.text) == std::string_view::npos) continue;
    JobView view = view_of(id, *job, stored);
    for (const sched::Attempt& attempt : job->attempts) view.attempts.push_back({attempt, {}});
    page.jobs.push_back(std::move(view));
  }
  page.next_before = id > 1 ? id : 0;
  return page;
}

std::map<std::string, sched::Counts> Service::queues() const {
  std::map<std::string, sched::Counts> queues;
  for (JobId id = 1; id <= records_.size(); ++id)
    if (const sched::Job* job = record(id) ? scheduler_.find(id) : nullptr)
      queues[std::string(queue_of(*job))].by_state[static_cast<int>(job->state)]++;
  return queues;
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
  return page;
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

}  // namespace ferry::server
