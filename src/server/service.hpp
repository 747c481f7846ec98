// Service — what `ferry server` does, without the network.
//
// It joins the scheduler (decisions), the store (durability) and job specs
// (what to run) behind the operations of the HTTP API: submit, lease (the
// workers' one call: results, heartbeats, and new jobs), cancel, and reads.
// The HTTP layer parses requests into these calls and writes their replies.
//
// Durability rules, as in DESIGN.md:
// - a submitted job enters the scheduler, and can be leased, only once the
//   batch holding it committed; only then does the client get its id;
// - a worker's results are acknowledged only once recorded durably;
// - a job running when the server died runs again (a new attempt) after a
//   restart; a completion carrying a stale lease token is acknowledged, so
//   the worker can forget it, but ignored and counted.
// Memory follows the work in flight, not the work ever done: the Service
// holds jobs that have not ended (and those whose end is not yet durable);
// an ended job is read back from the store when asked for, and the store
// removes it once its retention ran out (--keep-finished, or its own
// `keep`). Counts by queue and state cover every kept job.
//
// Handing out a lease writes nothing: an attempt is stored when it ends. A
// lease lost in a crash changes nothing the store promised (the job is still
// queued there and runs again), and lease tokens stay unique across restarts
// because each start takes a new epoch (stored before serving) whose tokens
// no earlier run used. This saves a commit per job, and the wait for it.
//
// Threading: every method runs on one thread, the caller's (the server's
// event loop). Store callbacks arrive on the store's thread and come back
// through `post`, which must run the function on the service's thread. Time
// comes from `now`, so tests control it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "sched/scheduler.hpp"
#include "server/job_spec.hpp"
#include "server/metrics.hpp"
#include "server/queue_settings.hpp"
#include "server/schedule_spec.hpp"
#include "store/store.hpp"

namespace ferry::server {

using sched::JobId;
using Time = sched::Time;  // milliseconds since the Unix epoch

// How an attempt ended, as a worker reports it.
struct Completion {
  JobId job = 0;
  std::uint64_t token = 0;
  bool succeeded = false;
  std::string reason;  // "exit 3", "timed out", the exception of a call, ...
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string stdout_tail;
  std::string stderr_tail;
  std::string result_json;  // for calls
  std::int64_t cpu_us = 0;
  std::int64_t max_rss_kb = 0;
};

// A completion the server could not accept as sent (docs/api.md says why
// one may be refused). It is refused alone: the rest of its request goes on.
// When it names the job and token of a current lease, that attempt is
// recorded as failed, with the refusal as its reason, and the token is
// acknowledged like any other.
struct RejectedCompletion {
  std::size_t index = 0;  // in the request's completions
  JobId job = 0;          // 0: not readable
  std::uint64_t token = 0;
  std::string error;
};

struct Heartbeat {
  JobId job = 0;
  std::uint64_t token = 0;
};

struct LeaseRequest {
  std::string worker;
  int free_slots = 0;
  std::vector<std::string> queues;  // empty: every queue
  // The worker's labels: a job's labels must all be among them. A worker that
  // serves function F has "function:F"; call jobs of F require it.
  std::vector<std::string> labels;
  bool commands = true;  // false: it runs only calls, and gets no command job
  std::vector<Completion> completions;
  std::vector<RejectedCompletion> rejected;
  std::vector<Heartbeat> heartbeats;
  std::chrono::milliseconds wait{0};  // with nothing to do, wait this long for work
  // While the request waits: false once its worker can no longer receive an
  // answer (its connection closed). Unset: always connected.
  std::function<bool()> connected;
};

struct LeasedJob {
  JobId id = 0;
  std::uint64_t token = 0;
  int attempt = 0;
  std::string_view spec_json;  // the Service's own copy: valid until the job ends
  Time lease_expires{0};
};

struct LeaseReply {
  std::vector<LeasedJob> jobs;
  std::vector<std::uint64_t> acknowledged;  // tokens of completions the worker may forget
  // Heartbeats for leases no longer the worker's: stop running them. By job,
  // and by token: after a restart the same job may be leased to the same
  // worker anew while its old attempt still runs there.
  std::vector<JobId> stop;
  std::vector<std::uint64_t> stop_tokens;
  std::vector<RejectedCompletion> rejected;  // the worker drops these too
  std::string error;                         // the store failed: nothing was acknowledged
};

struct AttemptView {
  sched::Attempt attempt;
  std::optional<Completion> details;  // once it ended with a report from its worker
};

struct JobView {
  JobId id = 0;
  std::string spec_json;
  std::string name;
  std::string queue;
  sched::State state = sched::State::waiting;
  std::string reason;
  Time created{0};
  std::vector<AttemptView> attempts;  // in a list: none; attempt_count says how many
  std::size_t attempt_count = 0;
  std::uint64_t flow = 0;  // the flow it belongs to; 0: none
  bool skipped = false;    // cancelled because a dependency could not succeed
  // A queued job that its queue's limits hold back: which ("its queue is
  // paused"). Empty otherwise, and in lists.
  std::string held;
};

struct ListQuery {
  std::optional<sched::State> state;
  std::string queue;  // empty: any
  std::string text;   // empty: any; else found in the name or the spec
  JobId before = 0;   // the cursor: only jobs with smaller ids (0: from the newest)
  std::size_t limit = 50;
};

struct ListPage {
  std::vector<JobView> jobs;  // newest first, without attempt details
  JobId next_before = 0;      // pass as `before` for the next page; 0: no more
};

// A job's state changed, durably: what `GET /v1/events` streams.
struct JobEvent {
  JobId id = 0;
  std::string_view queue;  // valid during the callback
  sched::State state = sched::State::waiting;
  const std::string* reason = nullptr;  // valid during the callback
  std::size_t attempts = 0;
  const Completion* last_report = nullptr;  // the last attempt's report, if any
};

struct WorkerView {
  std::string id;
  std::vector<std::string> queues;
  std::vector<std::string> labels;
  int free_slots = 0;
  Time last_seen{0};
  std::vector<JobId> running;  // in a page of workers(): the jobs it runs now, ascending
};

// Storage for many small strings (job specs): one allocation per 64 KiB
// chunk rather than one per string; a chunk goes when its last string does.
class TextArena {
 public:
  struct Text {
    std::string_view view;
    std::uint32_t chunk = 0;
  };
  Text add(std::string_view text);
  void release(const Text& text);
  std::size_t chunks() const { return chunks_.size() - free_.size(); }

 private:
  static constexpr std::size_t kChunk = 64 << 10;
  struct Chunk {
    std::unique_ptr<char[]> bytes;
    std::size_t used = 0;
    std::size_t texts = 0;  // alive in it
  };
  std::uint32_t fresh_chunk(std::size_t size);
  std::vector<Chunk> chunks_;
  std::vector<std::uint32_t> free_;  // slots of chunks_ without bytes
  std::optional<std::uint32_t> filling_;
};

// A flow: the jobs one batch made, which depend on each other.
struct FlowView {
  store::FlowRow row;
  struct Job {
    JobId id = 0;
    std::string ref;
    std::string name;
    sched::State state = sched::State::waiting;
    std::string reason;
    std::size_t attempts = 0;
    bool skipped = false;
  };
  std::vector<Job> jobs;  // in id order; none for a listing
  sched::Counts counts;   // its kept jobs by state
  // running while a job has not ended; else succeeded when all did, failed
  // when one failed, cancelled otherwise.
  std::string state;
};

// A schedule, and when it fires next.
struct ScheduleView {
  ScheduleSpec spec;
  bool paused = false;
  std::int64_t next_ms = 0;  // 0: never
  std::int64_t created_ms = 0;
};

// A queue: its settings, its kept jobs by state, and how many run now
// (counted by the scheduler, across every worker).
struct QueueView {
  std::string name;
  QueueSettings settings;
  sched::Counts counts;
  std::uint32_t running = 0;
};

// What /v1/stats says of the store.
struct StoreView {
  store::Size size;
  std::optional<std::chrono::milliseconds> keep_finished;
};

class Service {
 public:
  using Post = std::function<void(std::function<void()>)>;
  using Now = std::function<Time()>;
  struct Options {
    std::chrono::milliseconds lease_duration{30'000};  // renewed by heartbeats
    std::chrono::milliseconds max_wait{30'000};        // the longest long poll
    std::chrono::milliseconds max_backoff{5 * 60'000};
    // How long an ended job is kept (a job's own `keep` overrides it); none: for ever.
    std::optional<std::chrono::milliseconds> keep_finished = std::chrono::hours(24 * 7);
  };

  Service(store::Store& store, Post post, Now now, Options options);

  // Rebuilds the state from the store and begins a new epoch of lease
  // tokens (durably: it waits for the store). Call once, before anything
  // else; throws std::runtime_error when the store fails.
  void start();
  // Tokens of an epoch: epoch << kTokenBits, and up (a trillion leases).
  static constexpr int kTokenBits = 40;

  // What a submit gives: `ids` in the order of the jobs; `existing`, those
  // of them that a kept job (or flow) with the same key had already (nothing
  // new was made for them); the flow made, if the jobs are one.
  struct Submitted {
    std::vector<JobId> ids;
    std::vector<JobId> existing;
    std::uint64_t flow = 0;
    std::string error;  // the store failed: nothing was made
  };
  // Why the store would refuse the jobs' dependencies ("jobs[2].after: no
  // job 41"); "" when it would not. Ask before submit().
  std::string check(const Submission& submission) const;
  void submit(Submission submission, std::function<void(Submitted)> done);

  using Leased = std::function<void(LeaseReply reply)>;
  void lease(LeaseRequest request, Leased done);

  // Puts back the jobs of a lease answer that could not be delivered: they
  // are queued again at once, without spending a retry.
  void release(const std::vector<LeasedJob>& jobs);

  // Operations on many jobs answer, for each id, "" when done, else why not.
  using PerJob = std::function<void(std::vector<std::string> results, std::string error)>;

  // Why not: "no job 9", "job 3 already succeeded". Jobs that run after a
  // cancelled one end too (skipped), unless they run after whatever ends.
  void cancel(std::vector<JobId> ids, PerJob done);
  // The same for jobs that go together (a flow): one already skipped
  // because another of them was cancelled first counts as cancelled.
  void cancel_together(std::vector<JobId> ids, PerJob done);

  // Runs failed or cancelled jobs again, each with a fresh retry budget; the
  // jobs skipped because of them go back to waiting on them. For each id:
  // "" when done, else why not ("job 3 is running").
  void retry(std::vector<JobId> ids, PerJob done);

  // A flow, and each of its jobs as it is now.
  std::optional<FlowView> flow(std::uint64_t id) const;
  // Flows newest first: at most `limit` with ids below `before` (0: any).
  std::vector<FlowView> flows(std::uint64_t before, std::size_t limit) const;

  // Schedules. `done` hears how it went: an error says why not, with the
  // answer's kind (not_found, exists, store_failed).
  enum class Refusal { none, not_found, exists, store_failed };
  using Done = std::function<void(Refusal refusal, std::string error)>;
  void add_schedule(ScheduleSpec spec, Done done);
  void remove_schedule(const std::string& name, Done done);
  // Paused, it fires no more; resumed, it fires next at its next time from now.
  void pause_schedule(const std::string& name, bool paused, Done done);
  // Submits its work now, besides its times; nullopt for no such schedule.
  void run_schedule(const std::string& name, std::function<void(std::optional<Submitted>)> done);
  std::vector<ScheduleView> schedules() const;
  std::optional<ScheduleView> schedule(const std::string& name) const;

  // Queue settings: durable, and in force once written (a paused queue
  // starts nothing new; its running jobs go on). Any name is a queue.
  // queue_settings() gives the last asked for, which a change builds on.
  void set_queue(const std::string& name, QueueSettings settings, Done done);
  QueueSettings queue_settings(std::string_view name) const;
  QueueView queue_view(std::string_view name) const;
  // Those with kept jobs or settings other than the defaults, by name.
  std::vector<QueueView> queue_views() const;

  // Moves time on: queues delayed jobs, takes back expired leases, answers
  // long polls whose wait ran out, removes ended jobs past their retention
  // (a small batch at a time). Call it at next_tick() at the latest, and at
  // least once a second.
  void tick();
  std::optional<Time> next_tick() const;

  // A job, from memory or, once it ended, from the store.
  std::optional<JobView> job(JobId id) const;
  bool exists(JobId id) const;
  // Of these ids (ascending), the first that is no kept job.
  std::optional<JobId> first_missing(const std::vector<JobId>& ids) const;
  // No job has a higher id (one may be being submitted).
  JobId highest_id() const { return next_id_ - 1; }
  // One page of jobs, newest first. A search by queue or text looks at most
  // at `kMaxScan` ids per call, so a rare match answers with fewer jobs and
  // a cursor to continue from.
  ListPage list(const ListQuery& query) const;
  static constexpr std::size_t kMaxScan = 100'000;
  // Workers seen within kForgetWorkersAfter, by id: at most `limit`, with
  // ids after `after` (a cursor; "" from the first). The Service keeps at
  // most kMaxWorkers: past that, the longest silent are forgotten first.
  struct WorkerPage {
    std::vector<WorkerView> workers;
    std::string next_after;  // "": no more
  };
  WorkerPage workers(const std::string& after, std::size_t limit) const;
  static constexpr std::chrono::hours kForgetWorkersAfter{1};
  static constexpr std::size_t kMaxWorkers = 10'000;
  // Every queue that has kept jobs, with its jobs counted by state.
  std::map<std::string, sched::Counts> queues() const;
  // Every kept job by state, and the stale completions seen.
  sched::Counts counts() const;
  // Jobs held in memory (not ended, or their end not yet durable).
  std::size_t jobs_in_memory() const { return records_.size(); }
  StoreView store_view() const { return {store_.size(), options_.keep_finished}; }
  // What metrics count of the jobs (see metrics.hpp), and workers heard
  // from since `since`.
  const JobMetrics& metrics() const { return metrics_; }
  std::size_t workers_seen_since(Time since) const;
  const Options& options() const { return options_; }

  // Job state changes, each handed to every subscriber once it is durable,
  // in the order they happened. The event's pointers are valid only during
  // the call.
  using Subscriber = std::function<void(const JobEvent&)>;
  std::uint64_t subscribe(Subscriber subscriber);
  void unsubscribe(std::uint64_t subscription);
  std::size_t subscribers() const { return subscribers_.size(); }
  // The job's current state as an event, unless it has a change not yet
  // durable (then its event is on its way to the subscribers).
  enum class Known { no_such_job, changing, settled };
  Known current(JobId id, const std::function<void(const JobEvent&)>& see) const;
  // The same for many (ascending): those in memory one by one, the ended
  // ones read from the store a range at a time. Unknown ids are skipped.
  void current(const std::vector<JobId>& ids,
               const std::function<void(const JobEvent&)>& see) const;

 private:
  // What the service keeps of a job beside the scheduler's state: small,
  // since a million queued jobs may be held (the name is in the spec).
  struct Record {
    TextArena::Text spec;  // canonical JSON
    Time created{0};
    std::uint64_t flow = 0;
    std::unique_ptr<std::map<int, Completion>> reports;  // by attempt number, once any
  };
  const Record* record(JobId id) const;
  // The job, when `token` is its running attempt's lease.
  const sched::Job* current_lease(JobId id, std::uint64_t token) const;
  // The queue it was submitted to (the scheduler's queue adds the labels).
  static std::string_view queue_of(const sched::Job& job);
  std::string held_text(const sched::Job& job) const;  // JobView::held
  static const Completion* report(const Record& record, int attempt);
  JobView view_of(JobId id, const sched::Job& job, const Record& record) const;
  static JobView view_of(const store::StoredJob& stored);
  struct Parked {
    LeaseRequest request;
    Leased done;
    Time deadline;
  };

  // Memory as the store has it (the last start's epoch is returned).
  std::uint64_t rebuild();
  // After a write the store refused: memory as the store has it, plus the
  // leases held now.
  void recover();
  bool diverged_ = false;
  std::set<JobId> refused_;  // jobs whose changes the store refused, until recover()

  // The scheduler queue of a job: its queue, and its labels when it has some.
  struct QueueKey {
    std::string queue;
    std::vector<std::string> labels;
    bool call = false;
  };
  std::string queue_key(const std::string& queue, std::vector<std::string> labels, bool call);
  std::vector<std::string> eligible_queues(const LeaseRequest& request) const;
  // Holds a durable job in memory: its record here, and the job to give the
  // scheduler (many are admitted at once: they may depend on each other).
  sched::Job hold(const store::JobRow& row, const JobSpec& spec,
                  std::vector<sched::Attempt> attempts);
  // How a dependency the scheduler no longer holds ended, from the store.
  sched::EndedState ended_state() const;
  // With the ended jobs that ran after `retried`, skipped because of it,
  // held again (and so on downstream): those to unskip.
  std::vector<JobId> skipped_after(const std::vector<JobId>& retried);
  // Holds an ended job again (from the store), to change it.
  const sched::Job* bring_back(JobId id);
  // Lets go of an ended job whose end is durable.
  void forget(JobId id);
  // Leases up to the request's free slots into `reply`, recording attempts in `batch`.
  void grant(const LeaseRequest& request, LeaseReply& reply, store::Batch& batch);
  // The scheduler's changes since the last call, as rows.
  void collect_changes(store::Batch& batch);
  void count_change(std::string_view queue, std::optional<sched::State> from, sched::State to);
  void write(store::Batch batch, std::function<void(const std::string& error)> then);
  // Applies `act` to each job (it answers "" or why not), then makes it durable.
  // `then` sees the jobs acted on, before their changes are written.
  void for_each_job(std::vector<JobId> ids,
                    const std::function<std::string(const sched::Job&, Time)>& act, PerJob done,
                    const std::function<void(const std::vector<JobId>&, Time)>& then = {});
  void serve_parked();
  // Forgets workers silent too long, and the longest silent past kMaxWorkers.
  void forget_workers(Time now);
  // Removes a batch of ended jobs whose retention ran out.
  void expire(Time now);
  struct Changed {
    JobId id;
    sched::State to;
    std::size_t attempts;
    Step step;  // counted by metrics_ once durable; a default one is a submit
  };
  JobEvent event_of(const Changed& change) const;
  static void see_stored(const store::StoredJob& stored,
                         const std::function<void(const JobEvent&)>& see);
  void publish(const std::vector<Changed>& changes);
  // Events leave in the order their changes happened, each group once its
  // write committed (or at once, when there was nothing to write).
  struct Outgoing {
    std::vector<Changed> changes;
    bool settled = false;
    bool failed = false;  // its write failed: never announced
  };
  Outgoing& enqueue_changes();
  void send_settled();
  // Sends the changes collected so far with nothing to write for them.
  void announce();
  // Writes `batch` (if not empty) and calls `then` once it is durable.
  void commit(store::Batch batch, std::function<void(const std::string& error)> then);

  store::Store& store_;
  Post post_;
  Now now_;
  Options options_;
  sched::Scheduler scheduler_;
  std::unordered_map<JobId, Record> records_;  // the jobs held
  TextArena specs_;
  std::vector<TextArena::Text> unused_specs_;    // freed a turn later: answers may point into them
  std::unordered_map<std::string, JobId> keys_;  // of the jobs held, and those being submitted
  std::unordered_map<std::string, std::uint64_t> flow_keys_;  // of flows being submitted
  // Schedules by name. A schedule is `busy` while a write about it is on its
  // way: it does not fire meanwhile.
  struct Schedule {
    ScheduleSpec spec;
    store::ScheduleRow row;
    bool busy = false;
  };
  std::map<std::string, Schedule> schedules_;
  void fire_schedules(Time now);
  // submit() with more changes in the same transaction.
  void submit_with(Submission submission, store::Batch batch, std::function<void(Submitted)> done);
  std::uint64_t next_flow_ = 1;
  std::map<std::string, sched::Counts, std::less<>> counts_;          // every kept job, by queue
  std::map<std::string, QueueSettings, std::less<>> queue_settings_;  // those ever set
  std::map<std::string, QueueKey> queue_keys_;
  JobId next_id_ = 1;  // ids are reserved at submit, admitted at commit
  std::map<std::string, WorkerView> workers_;
  std::deque<Parked> parked_;
  std::map<std::uint64_t, Subscriber> subscribers_;
  std::uint64_t next_subscription_ = 1;
  std::vector<Changed> changed_;  // by collect_changes, for the next write's events
  std::deque<Outgoing> outbox_;
  std::unordered_map<JobId, int> changing_;  // jobs with events in the outbox
  Time next_expiry_{0};                      // when retention runs next
  bool expiring_ = false;                    // a retention batch is being written
  bool behind_ = false;                      // the last batch was full: more are due
  JobMetrics metrics_;
};

}  // namespace ferry::server
